defmodule SnakeBridge.Generation.GeneratorTest do
  # SnakeBridge.Generator.files/2: Elixir source for Python modules, compiled
  # here without warnings and then used, as docs/generated_modules.md documents
  # (arguments, typed argument mapping, names, docs and specs).
  #
  # Generated modules are named SnakeBridge.GenTest.* (this file only); the
  # Python probe module sbtest_gen_probe lives in a private tmp directory on
  # sys.path.
  use ExUnit.Case, async: true

  import SnakeBridge.Test.Helpers, only: [on_python_path: 1]

  alias SnakeBridge.Generator
  alias SnakeBridge.Generator.Types
  alias SnakeBridge.PythonError
  alias SnakeBridge.GenTest, as: G

  @moduletag timeout: 180_000

  # The generated modules only exist once setup_all has compiled them.
  @compile {:no_warn_undefined,
            [
              G.Json,
              G.Json.JSONDecoder,
              G.Math,
              G.Statistics,
              G.Fractions.Fraction,
              G.OsPath,
              G.Collections.Counter,
              G.Itertools.Count,
              G.Itertools.Chain,
              G.Datetime,
              G.Datetime.Date,
              G.Datetime.Datetime,
              G.Probe,
              G.Probe.Thing,
              G.Numpy
            ]}

  @probe ~S'''
  """Probe module for the generator tests."""
  from typing import Optional, Union

  __version__ = "0.3.1"

  ANSWER = 42

  def kind(b: bytes) -> str:
      """The Python type name of b."""
      return type(b).__name__

  def fkind(x: float) -> str:
      return type(x).__name__

  def tkind(t: tuple) -> str:
      return type(t).__name__

  def okind(b: Optional[bytes] = None) -> str:
      return type(b).__name__

  def count(n: int) -> int:
      return n + 1

  def row_sums(a: "numpy.ndarray", weights: "numpy.typing.ArrayLike" = 1) -> "numpy.ndarray":
      """Sums each row of a, times weights."""
      import numpy
      return numpy.asarray(a).sum(axis=-1) * numpy.asarray(weights)

  def names(xs: list[int], m: dict[str, int], u: Union[int, str], s: Optional[str] = None) -> list[str]:
      return [str(x) for x in xs]

  def end(x):
      return ["end", x]

  def receive(x):
      return ["receive", x]

  def MakeThing(a):
      return ["thing", a]

  def params(_private, X):
      return [_private, X]

  def posonly(a, b=2, c=3, /, *, d=4):
      return [a, b, c, d]

  def star(first, *rest, **kw):
      return [first, list(rest), kw]

  def kwonly(a, *, flag, mode="x"):
      return [a, flag, mode]

  class Thing:
      """A thing with a value."""

      def __init__(self, v=0):
          self.v = v

      def new(self):
          """Another thing, one more."""
          return Thing(self.v + 1)

      def value(self) -> int:
          return self.v

      @property
      def double(self):
          """Twice the value."""
          return self.v * 2

      @property
      def settable(self):
          return self.v

      @settable.setter
      def settable(self, x):
          self.v = x
  '''

  @python [
    {"json", SnakeBridge.GenTest.Json},
    {"math", SnakeBridge.GenTest.Math},
    {"statistics", SnakeBridge.GenTest.Statistics},
    {"collections", SnakeBridge.GenTest.Collections},
    {"fractions", SnakeBridge.GenTest.Fractions},
    {"datetime", SnakeBridge.GenTest.Datetime},
    {"itertools", SnakeBridge.GenTest.Itertools},
    {"os.path", SnakeBridge.GenTest.OsPath},
    {"sbtest_gen_probe", SnakeBridge.GenTest.Probe}
  ]

  setup_all do
    dir = Path.join(System.tmp_dir!(), "sbtest_gen_#{System.os_time()}_#{:rand.uniform(1_000_000)}")

    py = Path.join(dir, "py")
    src = Path.join(dir, "src")
    ebin = Path.join(dir, "ebin")
    Enum.each([py, src, ebin], &File.mkdir_p!/1)
    File.write!(Path.join(py, "sbtest_gen_probe.py"), @probe)

    on_python_path(py)
    on_exit(fn -> File.rm_rf!(dir) end)

    files =
      for {python, module} <- @python,
          {name, source} <-
            Generator.files(SnakeBridge.describe_library!(python, depth: 0), module: module) do
        path = Path.join(src, Macro.underscore(name) <> ".ex")
        File.mkdir_p!(Path.dirname(path))
        File.write!(path, source)
        {name, path}
      end

    # mix test requires test files with docs: false and debug_info: false, and
    # async modules start while other files are still being required: make sure
    # the beams carry docs and specs. (Mix restores its previous options after
    # requiring; turning these on early only gives test modules docs.)
    Code.compiler_options(docs: true, debug_info: true)

    result = Kernel.ParallelCompiler.compile_to_path(Enum.map(files, &elem(&1, 1)), ebin, return_diagnostics: true)

    %{files: files, ebin: ebin, compiled: result, dir: dir}
  end

  defp beam(ebin, module), do: Path.join(ebin, "#{module}.beam")

  defp fun_doc(docs, name, arity) do
    Enum.find_value(docs, fn
      {{:function, ^name, ^arity}, _, signature, %{"en" => doc}, _} -> {signature, doc}
      _ -> nil
    end) || flunk("no doc for #{name}/#{arity}")
  end

  defp spec_text(ebin, module, name, arity) do
    {:ok, specs} = Code.Typespec.fetch_specs(File.read!(beam(ebin, module)))

    {_, [spec]} = Enum.find(specs, &match?({{^name, ^arity}, _}, &1)) || flunk("no spec for #{name}/#{arity}")

    # one line, whatever the width (Macro.to_string/1 breaks long specs)
    Code.Typespec.spec_to_quoted(name, spec)
    |> Macro.to_string()
    |> String.replace(~r/\(\s+/, "(")
    |> String.replace(~r/,\s+/, ", ")
    |> String.replace(~r/\s+\)/, ")")
  end

  test "files/2 returns formatted source with the header, one file per Python module", %{
    files: files
  } do
    names = Enum.map(files, &elem(&1, 0))
    assert "SnakeBridge.GenTest.Json" in names
    assert "SnakeBridge.GenTest.Probe" in names
    assert length(files) == length(@python), "classes go into their module's file"

    for {_name, path} <- files do
      source = File.read!(path)
      assert String.starts_with?(source, Generator.header() <> " from Python module ")
      assert source == IO.iodata_to_binary(Code.format_string!(source)) <> "\n"
    end

    json = File.read!(Path.join(Path.dirname(hd(files) |> elem(1)), "json.ex"))
    assert json =~ "# Generated by mix snakebridge.gen from Python module json 2.0.9."
    assert json =~ "defmodule SnakeBridge.GenTest.Json.JSONDecoder do"
  end

  test "the generated modules compile without warnings", %{compiled: compiled} do
    assert {:ok, modules, warnings} = compiled
    assert warnings == []

    for m <- [
          SnakeBridge.GenTest.Json,
          SnakeBridge.GenTest.Json.JSONDecoder,
          SnakeBridge.GenTest.Fractions.Fraction,
          SnakeBridge.GenTest.Datetime.Date,
          SnakeBridge.GenTest.Collections.Counter,
          SnakeBridge.GenTest.Itertools.Chain,
          SnakeBridge.GenTest.Probe.Thing
        ] do
      assert m in modules
    end
  end

  describe "calling" do
    test "json: optional keyword arguments, kwargs as a map, options, errors" do
      expected = SnakeBridge.call!("json", "dumps", [%{"a" => 1}], indent: 2)
      assert expected == "{\n  \"a\": 1\n}"
      assert G.Json.dumps!(%{"a" => 1}, indent: 2) == expected
      assert G.Json.dumps(%{"a" => 1}, %{"indent" => 2}) == {:ok, expected}

      assert G.Json.dumps!(%{"b" => 1, "a" => 2}, [sort_keys: true], timeout: 5_000) ==
               ~s({"a": 2, "b": 1})

      assert G.Json.loads!("[1, 2]") == [1, 2]

      assert {:error, %PythonError{type: "JSONDecodeError"}} = G.Json.loads("{bad")
      assert_raise PythonError, ~r/JSONDecodeError/, fn -> G.Json.loads!("{bad") end

      decoder = G.Json.JSONDecoder.new!()
      assert %SnakeBridge.Object{} = decoder
      assert G.Json.JSONDecoder.decode!(decoder, ~s({"x": [1]})) == %{"x" => [1]}
    end

    test "statistics" do
      assert G.Statistics.mean!([1, 2, 3, 4]) == 2.5
      assert G.Statistics.median!([3, 1, 2]) == 2
      assert {:error, %PythonError{type: "StatisticsError"}} = G.Statistics.mean([])
      assert Code.ensure_loaded?(G.Statistics.StatisticsError)
    end

    test "fractions: constructor positional and by name, methods, properties, class methods" do
      three_quarters = G.Fractions.Fraction.new!(3, 4)
      assert %SnakeBridge.Object{} = three_quarters
      assert G.Fractions.Fraction.as_integer_ratio!(three_quarters) == {3, 4}
      assert G.Fractions.Fraction.numerator!(three_quarters) == 3
      assert G.Fractions.Fraction.denominator!(three_quarters) == 4
      third = G.Fractions.Fraction.new!(1, 3)

      assert G.Fractions.Fraction.limit_denominator!(third, 2)
             |> G.Fractions.Fraction.as_integer_ratio!() == {1, 2}

      assert G.Fractions.Fraction.limit_denominator!(third, max_denominator: 2)
             |> G.Fractions.Fraction.as_integer_ratio!() == {1, 2}

      assert G.Fractions.Fraction.from_float!(0.5) |> G.Fractions.Fraction.as_integer_ratio!() ==
               {1, 2}

      # the keyword form: Fraction(denominator=4) is 0/4 == 0/1
      assert G.Fractions.Fraction.new!(denominator: 4) |> G.Fractions.Fraction.as_integer_ratio!() ==
               {0, 1}

      assert G.Fractions.Fraction.new!(numerator: 6, denominator: 4)
             |> G.Fractions.Fraction.as_integer_ratio!() == {3, 2}

      assert G.Fractions.Fraction.new!(3, denominator: 4)
             |> G.Fractions.Fraction.as_integer_ratio!() == {3, 4}

      assert G.Fractions.Fraction.new!() |> G.Fractions.Fraction.as_integer_ratio!() == {0, 1}
      # read-only properties get no setter
      refute function_exported?(G.Fractions.Fraction, :set_numerator, 3)
    end

    test "math: names clashing with Kernel, constants, keyword-only arguments" do
      assert G.Math.floor!(2.5) == 2
      assert G.Math.ceil!(2.1) == 3
      assert G.Math.trunc!(-2.5) == -2
      assert G.Math.floor(2.5) == {:ok, 2}
      assert G.Math.pi() == :math.pi()
      assert G.Math.e() == :math.exp(1)
      assert G.Math.inf() == :infinity
      assert G.Math.pow!(2, 10) == 1024.0
      assert G.Math.isclose!(1.0, 1.001, rel_tol: 0.01)
      refute G.Math.isclose!(1.0, 1.001)
      assert G.Math.sqrt!(16) == 4.0
    end

    test "math.log's optional base (bracketed on its docstring) is positional" do
      assert G.Math.log!(8, 2) == 3.0
    end

    test "[] then options: no keyword arguments, whatever optional positional slots they land in" do
      # log(x, base \\ _, kwargs, opts): [] in base's slot, the options in kwargs'.
      assert %SnakeBridge.Object{} = G.Math.log!(8, [], return: :ref)
      # Fraction.new(numerator \\ _, denominator \\ _, ...): both in optional slots.
      assert G.Fractions.Fraction.new!(3, [], timeout: 5_000) |> G.Fractions.Fraction.as_integer_ratio!() == {3, 1}
      assert G.Fractions.Fraction.new!([], timeout: 5_000) |> G.Fractions.Fraction.as_integer_ratio!() == {0, 1}
      # [] as the value of an optional positional parameter, with options: give kwargs too.
      assert {:error, %PythonError{type: "TypeError"}} = G.Math.log(8, [], [], timeout: 5_000)
    end

    test "os.path.join: *args given by its Python name" do
      assert G.OsPath.join!("a", p: ["b", "c"]) == "a/b/c"
      assert G.OsPath.join!("a") == "a"
    end

    test "collections, itertools, datetime" do
      c = G.Collections.Counter.new!(["a", "b", "a"])
      assert G.Collections.Counter.most_common!(c, 1) == [{"a", 2}]

      assert SnakeBridge.call!("builtins", "next", [G.Itertools.Count.new!(5)]) == 5

      assert SnakeBridge.call!("builtins", "list", [
               G.Itertools.Chain.new!(iterables: [[1, 2], [3]])
             ]) == [1, 2, 3]

      assert SnakeBridge.call!("builtins", "list", [G.Itertools.Chain.from_iterable!([[1], [2]])]) ==
               [1, 2]

      date = G.Datetime.Date.new!(2024, 1, 2)
      assert SnakeBridge.to_elixir!(date) == ~D[2024-01-02]
      assert G.Datetime.Date.isoformat!(date) == "2024-01-02"
      # date.fromisoformat gives no signature: positional arguments go as args: [...]
      assert G.Datetime.Date.fromisoformat!(args: ["2024-02-03"]) == ~D[2024-02-03]
      assert {:error, %ArgumentError{}} = G.Datetime.Date.fromisoformat(["2024-02-03"])
      assert G.Datetime.maxyear() == 9999
      # datetime.datetime's signature comes from its docstring, optional parts in brackets
      assert SnakeBridge.to_elixir!(G.Datetime.Datetime.new!(2024, 1, 2, 3, 4, 5)) ==
               ~N[2024-01-02 03:04:05]

      assert SnakeBridge.to_elixir!(G.Datetime.Datetime.new!(2024, 1, 2)) == ~N[2024-01-02 00:00:00]
    end
  end

  describe "typed argument mapping" do
    test "bytes, float and tuple parameters" do
      assert SnakeBridge.call!("sbtest_gen_probe", "kind", ["abc"]) == "str"
      assert G.Probe.kind!("abc") == "bytes"
      assert G.Probe.kind!(<<0, 255>>) == "bytes"
      assert G.Probe.okind!("abc") == "bytes"
      assert G.Probe.okind!() == "NoneType"
      assert G.Probe.fkind!(3) == "float"
      assert G.Probe.fkind!(3.5) == "float"
      assert G.Probe.tkind!([1, 2]) == "tuple"
      assert G.Probe.tkind!({1, 2}) == "tuple"
      # by name, too
      assert G.Probe.okind!(b: "abc") == "bytes"
    end

    test "numpy.ndarray and ArrayLike parameters take a SnakeBridge.Array", %{ebin: ebin} do
      rows = [[1.0, 2.5, -1.0], [4.0, 0.25, 8.0]]
      data = for x <- List.flatten(rows), into: <<>>, do: <<x::float-64-native>>
      a = %SnakeBridge.Array{data: data, type: {:f, 64}, shape: {2, 3}}

      sums =
        G.Probe.row_sums!(a, weights: %SnakeBridge.Array{data: <<2.0::float-64-native>>, type: {:f, 64}, shape: {}})

      assert SnakeBridge.to_array!(sums) |> SnakeBridge.Array.to_flat_list() == Enum.map(rows, &(Enum.sum(&1) * 2))

      assert spec_text(ebin, G.Probe, :row_sums, 4) =~
               ~r/^row_sums\(SnakeBridge.Array.t\(\) \| SnakeBridge.Object.t\(\) \| list\(\), SnakeBridge.Array.t\(\) \| .* number\(\), /
    end
  end

  describe "names" do
    test "reserved words, special forms, CamelCase, new in a class, parameters", %{ebin: ebin} do
      assert G.Probe.end_!(1) == ["end", 1]
      assert G.Probe.receive_!(2) == ["receive", 2]
      assert G.Probe.make_thing!(3) == ["thing", 3]
      assert G.Probe.params!(1, 2) == [1, 2]
      refute function_exported?(G.Probe, :end, 1)
      refute function_exported?(G.Probe, :MakeThing, 1)

      t = G.Probe.Thing.new!(5)
      assert G.Probe.Thing.value!(t) == 5
      assert G.Probe.Thing.new_!(t) |> G.Probe.Thing.value!() == 6
      assert G.Probe.Thing.double!(t) == 10
      assert G.Probe.Thing.set_settable!(t, 7) == nil
      assert G.Probe.Thing.settable!(t) == 7
      refute function_exported?(G.Probe.Thing, :set_double, 3)

      {:docs_v1, _, :elixir, _, _, _, docs} = Code.fetch_docs(beam(ebin, G.Probe))
      {["params(private, x, kwargs \\\\ [], opts \\\\ [])"], _} = fun_doc(docs, :params, 4)
      {_, end_doc} = fun_doc(docs, :end_, 3)
      assert end_doc =~ "Python name: `end`."
      {_, make_doc} = fun_doc(docs, :make_thing, 3)
      assert make_doc =~ "Python name: `MakeThing`."
      {:docs_v1, _, :elixir, _, _, _, thing_docs} = Code.fetch_docs(beam(ebin, G.Probe.Thing))
      {_, new_doc} = fun_doc(thing_docs, :new_, 3)
      assert new_doc =~ "Python name: `new`."
      assert G.Probe.answer() == 42
    end

    test "Naming functions directly" do
      alias SnakeBridge.Generator.Naming
      assert Naming.function_name("end", MapSet.new()) == "end_"
      assert Naming.function_name("end", MapSet.new(["end_"])) == "end__"
      assert Naming.function_name("alias", MapSet.new()) == "alias_"
      assert Naming.function_name("module_info", MapSet.new()) == "module_info_"
      assert Naming.function_name("ScalarType", MapSet.new()) == "scalar_type"
      assert Naming.function_name("new", MapSet.new(), ["new"]) == "new_"
      assert Naming.function_name("floor", MapSet.new()) == "floor"
      assert Naming.variable_name("_w", MapSet.new()) == "w"
      assert Naming.variable_name("X", MapSet.new()) == "x"
      assert Naming.variable_name("kwargs", MapSet.new()) == "kwargs_"
      assert Naming.alias_name("date") == "Date"
      assert Naming.alias_name("JSONDecoder") == "JSONDecoder"
    end
  end

  describe "arguments" do
    test "positional-only optional parameters, positionally or by name" do
      assert G.Probe.posonly!(1) == [1, 2, 3, 4]
      assert G.Probe.posonly!(1, 5) == [1, 5, 3, 4]
      assert G.Probe.posonly!(1, 5, 6) == [1, 5, 6, 4]
      # named: moved to their position, earlier gaps filled with Python defaults
      assert G.Probe.posonly!(1, c: 30) == [1, 2, 30, 4]
      assert G.Probe.posonly!(1, b: 20, d: 9) == [1, 20, 3, 9]
      assert G.Probe.posonly!(1, 5, c: 30, d: 9) == [1, 5, 30, 9]
    end

    test "*args and **kwargs by name; required keyword-only parameters are arguments" do
      assert G.Probe.star!(1) == [1, [], %{}]
      assert G.Probe.star!(1, rest: [2, 3], z: 4) == [1, [2, 3], %{"z" => 4}]
      assert G.Probe.star!(1, %{"rest" => [2], "y" => 0}) == [1, [2], %{"y" => 0}]
      assert G.Probe.kwonly!(1, true) == [1, true, "x"]
      assert G.Probe.kwonly!(1, false, mode: "y") == [1, false, "y"]
      assert {:error, %PythonError{type: "TypeError"}} = G.Probe.kwonly(1, true, nope: 1)
    end
  end

  describe "docs and specs" do
    test "moduledoc names the Python module and version; function docs carry the signature", %{
      ebin: ebin
    } do
      {:docs_v1, _, :elixir, _, %{"en" => moduledoc}, _, docs} = Code.fetch_docs(beam(ebin, SnakeBridge.GenTest.Json))

      assert moduledoc =~ "Python module `json` (version 2.0.9)"
      assert moduledoc =~ "JSON (JavaScript Object Notation)"
      assert moduledoc =~ "`JSONDecoder`"

      {[signature], dumps_doc} = fun_doc(docs, :dumps, 3)
      assert signature == "dumps(obj, kwargs \\\\ [], opts \\\\ [])"
      # reStructuredText ``literals`` become Markdown code spans
      assert dumps_doc =~ "Serialize `obj` to a JSON formatted `str`."
      assert dumps_doc =~ "## Python"
      assert dumps_doc =~ "dumps(obj, *, skipkeys=False, ensure_ascii=True"
      assert dumps_doc =~ "`indent`"

      {:docs_v1, _, :elixir, _, %{"en" => probe_doc}, _, _} = Code.fetch_docs(beam(ebin, SnakeBridge.GenTest.Probe))

      assert probe_doc =~ "`sbtest_gen_probe` (version 0.3.1)"

      {:docs_v1, _, :elixir, _, %{"en" => fraction_doc}, _, _} =
        Code.fetch_docs(beam(ebin, SnakeBridge.GenTest.Fractions.Fraction))

      assert fraction_doc =~ "Python class `fractions.Fraction`"
    end

    test "@spec from annotations", %{ebin: ebin} do
      assert spec_text(ebin, G.Probe, :count!, 3) ==
               "count!(integer(), keyword() | map(), keyword()) :: integer()"

      assert spec_text(ebin, G.Probe, :count, 3) ==
               "count(integer(), keyword() | map(), keyword()) :: {:ok, integer()} | {:error, Exception.t()}"

      assert spec_text(ebin, G.Probe, :kind!, 3) ==
               "kind!(binary(), keyword() | map(), keyword()) :: String.t()"

      assert spec_text(ebin, G.Probe, :fkind!, 3) =~ ~r/^fkind!\(number\(\), /

      assert spec_text(ebin, G.Probe, :names!, 6) ==
               "names!([integer()], map(), integer() | String.t(), String.t() | nil, keyword() | map(), keyword()) :: [String.t()]"

      assert spec_text(ebin, SnakeBridge.GenTest.Json, :dumps!, 3) ==
               "dumps!(term(), keyword() | map(), keyword()) :: term()"

      assert spec_text(ebin, G.Probe.Thing, :value!, 3) ==
               "value!(SnakeBridge.Object.t(), keyword() | map(), keyword()) :: integer()"

      assert spec_text(ebin, G.Probe.Thing, :new, 3) =~ ~r/\{:ok, SnakeBridge\.Object\.t\(\)\}/
    end

    test "Types.spec/2 table" do
      assert Types.spec("int", :param) == "integer()"
      assert Types.spec("str", :return) == "String.t()"
      assert Types.spec("list[int]", :param) == "list(integer())"
      assert Types.spec("List[int]", :param) == "list(integer())"
      assert Types.spec("Optional[str]", :param) == "String.t() | nil"
      assert Types.spec("int | None", :return) == "integer() | nil"
      assert Types.spec("Union[int, str]", :param) == "integer() | String.t()"
      assert Types.spec("dict[str, int]", :param) == "map()"
      assert Types.spec("tuple[int, str]", :param) == "tuple()"
      assert Types.spec("set[int]", :param) == "MapSet.t()"
      assert Types.spec("bytes", :param) == "binary()"
      assert Types.spec("bool", :return) == "boolean()"
      assert Types.spec("None", :return) == "nil"
      assert Types.spec("float", :param) == "number()"
      assert Types.spec("float", :return) == "float()"
      assert Types.spec("datetime.date", :param) == "Date.t()"
      assert Types.spec("numpy.ndarray", :param) == "SnakeBridge.Array.t() | SnakeBridge.Object.t() | list()"
      assert Types.spec("np.ndarray", :return) == "SnakeBridge.Object.t()"
      assert Types.spec("numpy.typing.NDArray[numpy.float64]", :param) =~ "SnakeBridge.Array.t()"
      assert Types.spec("npt.ArrayLike", :param) == "SnakeBridge.Array.t() | SnakeBridge.Object.t() | list() | number()"

      assert Types.spec("Optional[numpy.ndarray]", :param) ==
               "SnakeBridge.Array.t() | SnakeBridge.Object.t() | list() | nil"

      assert Types.spec("Union[int, SomeClass]", :param) == "term()"
      assert Types.spec("Callable[[int], str]", :param) == "term()"
      assert Types.spec("not (valid", :param) == "term()"
      assert Types.spec(nil, :return) == "term()"
    end

    test "Types.coercion/1" do
      assert Types.coercion("bytes") == :bytes
      assert Types.coercion("Optional[bytes]") == :bytes
      assert Types.coercion("float") == :float
      assert Types.coercion("tuple[int, int]") == :tuple
      assert Types.coercion("int") == nil
      assert Types.coercion("Union[bytes, str]") == nil
      assert Types.coercion("str | bytes") == nil
      assert Types.coercion("AnyStr") == nil
      assert Types.coercion("bytes | None") == :bytes
      assert Types.coercion("bytes | bytearray | memoryview") == :bytes
      assert Types.coercion("Optional[collections.abc.Buffer]") == :bytes
      assert Types.coercion("_typeshed.ReadableBuffer") == :bytes
      assert Types.coercion("float | None") == :float
      assert Types.coercion("float | int") == nil
      assert Types.coercion(nil) == nil
    end
  end

  @tag :slow
  test "numpy's top-level module generates and compiles without warnings", %{dir: dir} do
    {describe, schema} = :timer.tc(fn -> SnakeBridge.describe_library!("numpy", depth: 0) end)

    {generate, files} = :timer.tc(fn -> Generator.files(schema, module: SnakeBridge.GenTest.Numpy) end)

    src = Path.join(dir, "numpy_src")
    ebin = Path.join(dir, "numpy_ebin")
    File.mkdir_p!(ebin)

    paths =
      for {name, source} <- files do
        path = Path.join(src, Macro.underscore(name) <> ".ex")
        File.mkdir_p!(Path.dirname(path))
        File.write!(path, source)
        path
      end

    {compile, result} =
      :timer.tc(fn ->
        Kernel.ParallelCompiler.compile_to_path(paths, ebin, return_diagnostics: true)
      end)

    IO.puts(
      "\n[measure] numpy: describe #{Float.round(describe / 1_000_000, 2)} s, Generator.files #{Float.round(generate / 1_000_000, 2)} s, " <>
        "compile_to_path #{Float.round(compile / 1_000_000, 2)} s (#{length(files)} file(s))"
    )

    assert {:ok, modules, []} = result
    assert G.Numpy in modules
    assert length(modules) > 50
    assert G.Numpy.add!(1, 2) == 3
    assert G.Numpy.add!(1, 2, dtype: "float64") == 3.0
    assert G.Numpy.array!([[1, 2]]) |> SnakeBridge.to_elixir!() == [[1, 2]]
    assert G.Numpy.array!([1, 2]) |> SnakeBridge.to_elixir!() == [1, 2]

    # numpy's docstring in Markdown: sections as headings, parameters as a list, doctests as code
    {:docs_v1, _, :elixir, _, _, _, docs} = Code.fetch_docs(Path.join(ebin, "#{G.Numpy}.beam"))
    {_, array_doc} = fun_doc(docs, :array, 4)

    assert array_doc =~
             "```\narray(object, dtype=None, *, copy=True, order='K', subok=False, ndmin=0,\n      like=None)\n```"

    assert array_doc =~ "\n## Parameters\n\n* `object` (array_like) - An array, any object exposing"
    assert array_doc =~ "\n* `dtype` (data-type, optional) - The desired data-type"
    assert array_doc =~ "\n## See Also\n\n* `empty_like` - Return an empty array"
    assert array_doc =~ "\n## Examples\n\n```python\n>>> np.array([1, 2, 3])\narray([1, 2, 3])\n```"
    refute array_doc =~ "----------"
    refute array_doc =~ ".. versionadded::"
    assert G.Numpy.pi() == :math.pi()
  end
end
