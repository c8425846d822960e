defmodule SnakeBridge.Generation.DescribeTest do
  # SnakeBridge.describe_library/2 (docs/generated_modules.md, SnakeBridge.Schema): the shape of
  # the schemas of standard-library modules and numpy, and the rules of
  # priv/python/snakebridge_introspect.py — members read from __dict__ (no module
  # __getattr__, no descriptors run), failing members skipped and reported.
  #
  # Python probe modules are written into a private tmp directory put on sys.path;
  # their names start with sbtest_describe_ so no other test imports them.
  use ExUnit.Case, async: true

  import SnakeBridge.Test.Helpers, only: [on_python_path: 1]

  alias SnakeBridge.PythonError

  @moduletag timeout: 120_000

  @weird """
  \"\"\"Members that fail when looked at.\"\"\"
  CALLS = []

  class BadSig:
      \"\"\"A callable whose __signature__ raises something inspect does not expect.\"\"\"
      @property
      def __signature__(self):
          raise RuntimeError("no signature for you")

      def __call__(self, x):
          return x

  bad_sig = BadSig()

  class Lazy:
      \"\"\"A lazy proxy whose loading fails: even isinstance() on it raises.\"\"\"
      @property
      def __class__(self):
          raise RuntimeError("lazy load failed")

  lazy = Lazy()

  def ok(a, b=1):
      return [a, b]
  """

  @quiet """
  \"\"\"Describing this module must not run any of its code.\"\"\"
  __all__ = ["Counter", "counter", "lazy_name", "plain", "HITS"]
  CALLS = []
  HITS = 0

  def __getattr__(name):
      CALLS.append(name)
      raise AttributeError(name)

  class Counter:
      \"\"\"Reading `hit` counts.\"\"\"
      @property
      def hit(self):
          global HITS
          HITS += 1
          return HITS

  counter = Counter()

  def plain(x):
      return x
  """

  @descriptor """
  CALLS = []

  class Tool:
      @property
      def __signature__(self):
          CALLS.append("__signature__")
          raise AttributeError("__signature__")

      def __call__(self, x):
          return x

  tool = Tool()
  """

  @private """
  \"\"\"Public and private names.\"\"\"
  _SECRET = 7
  VISIBLE = 1

  def visible(x):
      return _hidden(x)

  def _hidden(x):
      return x

  class _Internal:
      pass
  """

  @private_all """
  __all__ = ["visible"]

  def visible(x):
      return _hidden(x)

  def _hidden(x):
      return x
  """

  setup_all do
    dir =
      Path.join(
        System.tmp_dir!(),
        "sbtest_describe_#{System.os_time()}_#{:rand.uniform(1_000_000)}"
      )

    File.mkdir_p!(dir)

    for {name, source} <- [
          sbtest_describe_weird: @weird,
          sbtest_describe_quiet: @quiet,
          sbtest_describe_descriptor: @descriptor,
          sbtest_describe_private: @private,
          sbtest_describe_private_all: @private_all
        ] do
      File.write!(Path.join(dir, "#{name}.py"), source)
    end

    on_python_path(dir)

    on_exit(fn ->
      File.rm_rf!(dir)
    end)

    schemas =
      for name <- ~w(json math statistics collections fractions datetime itertools os.path),
          into: %{} do
        {name, SnakeBridge.describe_library!(name)}
      end

    {micros, {:ok, numpy}} = :timer.tc(fn -> SnakeBridge.describe_library("numpy") end)
    IO.puts("\n[measure] describe_library(\"numpy\"): #{Float.round(micros / 1_000_000, 3)} s")

    %{schemas: schemas, dir: dir, numpy: numpy}
  end

  defp fun(schema, name),
    do:
      Enum.find(schema.functions, &(&1.name == name)) ||
        flunk("no function #{name} in #{schema.name}")

  defp class(schema, name),
    do: Enum.find(schema.classes, &(&1.name == name)) || flunk("no class #{name} in #{schema.name}")

  defp param(callable, name),
    do:
      Enum.find(callable.parameters, &(&1.name == name)) ||
        flunk("no parameter #{name} in #{callable.name}")

  defp names(items), do: Enum.map(items, & &1.name)

  describe "json" do
    test "module fields and version from __version__", %{schemas: %{"json" => json}} do
      assert json.name == "json"
      assert json.version == "2.0.9"
      assert json.doc =~ "JSON (JavaScript Object Notation)"
      assert json.file =~ ~r{/json/__init__\.py$}
      assert json.errors == []
      assert Enum.sort(names(json.functions)) == ["dump", "dumps", "load", "loads"]

      assert MapSet.subset?(
               MapSet.new(["JSONDecoder", "JSONEncoder", "JSONDecodeError"]),
               MapSet.new(names(json.classes))
             )
    end

    test "json.dumps: parameter kinds and defaults", %{schemas: %{"json" => json}} do
      dumps = fun(json, "dumps")
      assert dumps.kind == :function
      assert dumps.qualname == "json.dumps"
      assert dumps.has_signature
      assert String.starts_with?(dumps.signature, "(obj, *, skipkeys=False")
      assert dumps.doc =~ "Serialize"
      assert dumps.return_annotation == nil
      refute dumps.generator
      refute dumps.coroutine

      assert %{kind: :positional_or_keyword, default: :none, annotation: nil} = param(dumps, "obj")

      assert %{kind: :keyword_only, default: {:value, false}} = param(dumps, "skipkeys")
      assert %{kind: :keyword_only, default: {:value, true}} = param(dumps, "ensure_ascii")
      assert %{kind: :keyword_only, default: {:value, nil}} = param(dumps, "indent")
      assert %{kind: :keyword_only, default: {:value, false}} = param(dumps, "sort_keys")
      assert %{kind: :var_keyword, default: :none} = param(dumps, "kw")
      # in order, kw last
      assert hd(dumps.parameters).name == "obj"
      assert List.last(dumps.parameters).name == "kw"
    end

    test "classes: methods without self, exception flag, bases", %{schemas: %{"json" => json}} do
      decoder = class(json, "JSONDecoder")
      assert decoder.qualname == "json.decoder.JSONDecoder"
      refute decoder.exception
      assert %{kind: :class, has_signature: true} = decoder.init
      assert %{kind: :keyword_only, default: {:value, nil}} = param(decoder.init, "object_hook")

      decode = Enum.find(decoder.methods, &(&1.name == "decode"))
      assert decode.kind == :method
      assert decode.defined_in == "json.decoder.JSONDecoder"
      assert hd(decode.parameters).name == "s", "self is dropped from methods"
      # a default that is not a literal is carried as its repr
      assert {:repr, repr} = param(decode, "_w").default
      assert repr =~ "match"

      error = class(json, "JSONDecodeError")
      assert error.exception
      assert "builtins.ValueError" in error.bases
    end

    test "depth 1 describes the imported submodules, lists the others by name", %{
      schemas: %{"json" => json}
    } do
      sub_names = names(json.submodules)
      assert "json.decoder" in sub_names
      assert "json.encoder" in sub_names
      assert "json.scanner" in sub_names
      assert "json.tool" in json.unimported_submodules
      refute "json.tool" in sub_names

      decoder = Enum.find(json.submodules, &(&1.name == "json.decoder"))
      assert decoder.file =~ ~r{/json/decoder\.py$}
      assert "JSONDecoder" in names(decoder.classes)
      # at depth 1 submodules are leaves
      assert decoder.submodules == []

      # listing json.tool did not import it
      assert SnakeBridge.eval!("'json.tool' in __import__('sys').modules") == false
    end

    test "depth 0 describes no submodules; the module can be given as an atom" do
      json = SnakeBridge.describe_library!(:json, depth: 0)
      assert json.name == "json"
      assert json.submodules == []
      assert json.unimported_submodules == []
      assert "dumps" in names(json.functions)
    end
  end

  describe "math" do
    test "keyword-only parameters with float defaults (math.isclose)", %{
      schemas: %{"math" => math}
    } do
      isclose = fun(math, "isclose")
      assert isclose.kind == :builtin
      assert isclose.has_signature
      assert isclose.signature == "(a, b, *, rel_tol=1e-09, abs_tol=0.0)"
      assert %{kind: :positional_or_keyword, default: :none} = param(isclose, "a")
      assert %{kind: :keyword_only, default: {:value, rel_tol}} = param(isclose, "rel_tol")
      assert rel_tol === 1.0e-9
      assert %{kind: :keyword_only, default: {:value, abs_tol}} = param(isclose, "abs_tol")
      assert abs_tol === 0.0
    end

    test "positional-only parameters (math.pow)", %{schemas: %{"math" => math}} do
      pow = fun(math, "pow")
      assert pow.signature == "(x, y, /)"

      assert [
               %{name: "x", kind: :positional_only, default: :none},
               %{name: "y", kind: :positional_only, default: :none}
             ] = pow.parameters
    end

    test "constants carry their values; version of a standard-library module", %{
      schemas: %{"math" => math}
    } do
      constants = Map.new(math.constants, &{&1.name, &1})
      assert constants["pi"].value == :math.pi()
      assert constants["pi"].type == "float"
      assert constants["pi"].repr == "3.141592653589793"
      assert constants["e"].value == :math.exp(1)
      assert constants["inf"].value == :infinity
      assert constants["nan"].value == :nan
      assert String.starts_with?(math.version, "python-3.11.")

      assert math.version ==
               "python-" <>
                 SnakeBridge.eval!("'.'.join(map(str, __import__('sys').version_info[:3]))")

      # math is a C module: functions only, no file
      assert math.classes == []
      assert math.submodules == [] and math.unimported_submodules == []
    end
  end

  describe "statistics" do
    test "statistics.mean(data) and positional-only statistics.correlation(x, y, /)", %{
      schemas: %{"statistics" => st}
    } do
      assert [%{name: "data", kind: :positional_or_keyword, default: :none}] = fun(st, "mean").parameters

      assert [%{name: "x", kind: :positional_only}, %{name: "y", kind: :positional_only}] =
               fun(st, "correlation").parameters

      assert String.starts_with?(st.version, "python-3.11.")
    end

    test "exception classes and class methods", %{schemas: %{"statistics" => st}} do
      assert class(st, "StatisticsError").exception
      normal = class(st, "NormalDist")
      refute normal.exception
      assert "from_samples" in names(normal.class_methods)
      assert Enum.all?(normal.class_methods, &(&1.kind == :classmethod))
      assert %{kind: :positional_or_keyword, default: {:value, mu}} = param(normal.init, "mu")
      assert mu === 0.0
      assert "mean" in names(normal.properties)
    end

    test "only public names by default", %{schemas: %{"statistics" => st}} do
      refute Enum.any?(
               st.functions ++ st.classes ++ st.constants,
               &String.starts_with?(&1.name, "_")
             )
    end
  end

  describe "fractions" do
    test "Fraction: constructor defaults, class methods, methods, read-only properties", %{
      schemas: %{"fractions" => fr}
    } do
      fraction = class(fr, "Fraction")
      assert fraction.qualname == "fractions.Fraction"
      assert %{kind: :class, has_signature: true} = fraction.init

      assert %{kind: :positional_or_keyword, default: {:value, 0}} = param(fraction.init, "numerator")

      assert %{kind: :positional_or_keyword, default: {:value, nil}} = param(fraction.init, "denominator")

      from_float = Enum.find(fraction.class_methods, &(&1.name == "from_float"))
      assert from_float.kind == :classmethod

      assert [%{name: "f", kind: :positional_or_keyword}] = from_float.parameters,
             "cls is dropped"

      assert "from_decimal" in names(fraction.class_methods)

      limit = Enum.find(fraction.methods, &(&1.name == "limit_denominator"))
      assert limit.kind == :method
      assert [%{name: "max_denominator", default: {:value, 1_000_000}}] = limit.parameters
      assert limit.defined_in == "fractions.Fraction"
      assert "as_integer_ratio" in names(fraction.methods)

      props = Map.new(fraction.properties, &{&1.name, &1})
      assert %{readonly: true} = props["numerator"]
      assert %{readonly: true} = props["denominator"]
      assert props["real"].doc =~ "real component"
      assert "numbers.Rational" in fraction.bases
    end
  end

  describe "var_positional" do
    test "os.path.join(a, *p), itertools.chain(*iterables), print(*args)", %{
      schemas: %{"os.path" => path, "itertools" => it}
    } do
      join = fun(path, "join")
      assert join.signature == "(a, *p)"

      assert [
               %{name: "a", kind: :positional_or_keyword},
               %{name: "p", kind: :var_positional, default: :none}
             ] = join.parameters

      chain = class(it, "chain")
      assert [%{name: "iterables", kind: :var_positional}] = chain.init.parameters
      from_iterable = Enum.find(chain.class_methods, &(&1.name == "from_iterable"))
      assert [%{name: "iterable", kind: :positional_only}] = from_iterable.parameters

      builtins = SnakeBridge.describe_library!("builtins", depth: 0)
      print = fun(builtins, "print")
      assert %{kind: :var_positional} = param(print, "args")
      assert %{kind: :keyword_only, default: {:value, "\n"}} = param(print, "end")
    end
  end

  describe "other standard modules" do
    test "collections", %{schemas: %{"collections" => co}} do
      for c <- ~w(Counter OrderedDict defaultdict deque ChainMap),
          do: assert(c in names(co.classes))

      namedtuple = fun(co, "namedtuple")
      assert %{kind: :keyword_only, default: {:value, false}} = param(namedtuple, "rename")
      assert %{kind: :positional_or_keyword, default: :none} = param(namedtuple, "typename")
      assert "collections.abc" in names(co.submodules)
      counter = class(co, "Counter")
      assert "most_common" in names(counter.methods)
      assert "builtins.dict" in counter.bases
    end

    test "datetime: a C class's signature from its docstring; constants", %{
      schemas: %{"datetime" => dt}
    } do
      assert Enum.sort(names(dt.classes)) == ~w(date datetime time timedelta timezone tzinfo)
      date = class(dt, "date")
      assert date.init.has_signature
      assert date.init.signature == "(year, month, day)"

      assert Enum.map(date.init.parameters, &{&1.name, &1.kind, &1.default}) ==
               [
                 {"year", :positional_or_keyword, :none},
                 {"month", :positional_or_keyword, :none},
                 {"day", :positional_or_keyword, :none}
               ]

      assert "fromisoformat" in names(date.class_methods)
      assert "isoformat" in names(date.methods)
      assert MapSet.subset?(MapSet.new(~w(year month day)), MapSet.new(names(date.properties)))
      assert %{value: 9999, type: "int"} = Enum.find(dt.constants, &(&1.name == "MAXYEAR"))
    end

    test "read-only C attributes (datetime.date.year) are reported read-only", %{
      schemas: %{"datetime" => dt}
    } do
      year = Enum.find(class(dt, "date").properties, &(&1.name == "year"))

      assert {:error, %PythonError{type: "AttributeError"}} =
               SnakeBridge.setattr(
                 SnakeBridge.new!("datetime", "date", [2024, 1, 2]),
                 "year",
                 2000
               )

      assert year.readonly
    end

    test "itertools: classes with signatures from metadata or docstrings", %{
      schemas: %{"itertools" => it}
    } do
      assert names(it.functions) == ["tee"]
      count = class(it, "count")

      assert [%{name: "start", default: {:value, 0}}, %{name: "step", default: {:value, 1}}] = count.init.parameters

      assert [%{name: "iterable"}, %{name: "r", default: :none}] = class(it, "combinations").init.parameters

      assert String.starts_with?(it.version, "python-3.11.")
    end
  end

  describe "numpy" do
    test "version from numpy.__version__", %{numpy: numpy} do
      assert numpy.version =~ ~r/^1\.24\.\d+$/
      assert numpy.version == SnakeBridge.getattr!("numpy", "__version__")
      assert length(numpy.functions) > 300
      assert "ndarray" in names(numpy.classes)
    end

    test "numpy.array's signature is read over the two lines of its docstring", %{numpy: numpy} do
      array = fun(numpy, "array")
      assert %{kind: :builtin, has_signature: true, overloads: []} = array
      assert array.doc =~ "array(object, dtype=None, *, copy=True, order='K', subok=False, ndmin=0,\n"

      assert array.signature == "(object, dtype=None, *, copy=True, order='K', subok=False, ndmin=0, like=None)"

      assert Enum.map(array.parameters, &{&1.name, &1.kind, &1.default}) == [
               {"object", :positional_or_keyword, :none},
               {"dtype", :positional_or_keyword, {:value, nil}},
               {"copy", :keyword_only, {:value, true}},
               {"order", :keyword_only, {:value, "K"}},
               {"subok", :keyword_only, {:value, false}},
               {"ndmin", :keyword_only, {:value, 0}},
               {"like", :keyword_only, {:value, nil}}
             ]

      assert {:ok, ref} = SnakeBridge.call("numpy", "array", [[1, 2]])
      assert SnakeBridge.to_elixir!(ref) == [1, 2]
    end

    test "documented forms: a leading optional (arange), a tuple of arrays (concatenate), a list default", %{
      numpy: numpy
    } do
      # arange([start,] stop[, step,], dtype=None, *, like=None): in the short
      # form only stop is positional (more would shift: arange(10, float) is start=10)
      assert [short, full] = fun(numpy, "arange").overloads

      assert Enum.map(short.parameters, &{&1.name, &1.kind}) ==
               [
                 {"stop", :positional_or_keyword},
                 {"step", :keyword_only},
                 {"dtype", :keyword_only},
                 {"like", :keyword_only}
               ]

      assert Enum.map(full.parameters, &{&1.name, &1.default}) ==
               [
                 {"start", :none},
                 {"stop", :none},
                 {"step", {:repr, "(optional)"}},
                 {"dtype", {:value, nil}},
                 {"like", {:value, nil}}
               ]

      assert [%{name: "seq", default: :none}, %{name: "axis", default: {:value, 0}} | _] =
               fun(numpy, "concatenate").parameters

      assert %{name: "holidays", default: {:value, []}} =
               Enum.find(fun(numpy, "busday_count").parameters, &(&1.name == "holidays"))
    end

    test "methods documented with a prefix (a.reshape) keep their first parameter", %{numpy: numpy} do
      ndarray = class(numpy, "ndarray")
      reshape = Enum.find(ndarray.methods, &(&1.name == "reshape"))
      assert reshape.signature == "(shape, order='C')"
      assert [%{name: "shape", default: :none}, %{name: "order", default: {:value, "C"}}] = reshape.parameters
      assert ndarray.init.signature == "(shape, dtype=float, buffer=None, offset=0, strides=None, order=None)"
    end

    test "ufuncs: kind :ufunc, parameters parsed from the docstring (numpy.add)", %{numpy: numpy} do
      add = fun(numpy, "add")
      assert add.kind == :ufunc
      assert add.has_signature
      assert String.starts_with?(add.signature, "(x1, x2, /, out=None, *, where=True")

      assert [
               %{name: "x1", kind: :positional_only, default: :none},
               %{name: "x2", kind: :positional_only, default: :none},
               %{name: "out", kind: :positional_or_keyword, default: {:value, nil}} | keyword_only
             ] = add.parameters

      assert %{kind: :keyword_only, default: {:value, true}} = Enum.find(keyword_only, &(&1.name == "where"))

      assert %{kind: :keyword_only, default: {:value, "same_kind"}} = Enum.find(keyword_only, &(&1.name == "casting"))

      assert SnakeBridge.call!("numpy", "add", [1, 2]) == 3
    end

    test "builtins: docstring signatures, overloads one a line, and callables still without one" do
      builtins = SnakeBridge.describe_library!("builtins", depth: 0)
      # max has none from inspect, but two forms on its docstring's first lines
      max = fun(builtins, "max")

      assert %{has_signature: true, parameters: [%{name: "iterable"}, %{name: "default", kind: :keyword_only} | _]} =
               max

      assert Enum.map(max.overloads, & &1.signature) ==
               ["(iterable, * [, default=obj, key=func])", "(arg1, arg2, *args, * [, key=func])"]

      assert [
               %{name: "arg1"},
               %{name: "arg2"},
               %{name: "args", kind: :var_positional},
               %{name: "key", kind: :keyword_only}
             ] = Enum.at(max.overloads, 1).parameters

      assert SnakeBridge.call!("builtins", "max", [[3, 1, 2]]) == 3

      # range(stop) / range(start, stop[, step]); the docstring of a C type whose
      # class dict has none (type) is its tp_doc
      range = class(builtins, "range").init

      assert Enum.map(range.overloads, &Enum.map(&1.parameters, fn p -> p.name end)) == [
               ["stop"],
               ["start", "stop", "step"]
             ]

      assert length(class(builtins, "type").init.overloads) == 2

      # 'async anext(aiterator[, default])' and 'filter(function or None, iterable)'
      assert ["aiterator", "default"] = Enum.map(fun(builtins, "anext").parameters, & &1.name)
      assert ["function", "iterable"] = Enum.map(class(builtins, "filter").init.parameters, & &1.name)

      # 'D.pop(k[,d]) -> v': a method documented with a prefix
      pop = Enum.find(class(builtins, "dict").methods, &(&1.name == "pop"))
      assert [%{name: "k", default: :none}, %{name: "d", default: {:repr, "(optional)"}}] = pop.parameters

      # an exception class documents no call
      assert %{has_signature: false, parameters: []} = class(builtins, "ValueError").init
      assert String.starts_with?(builtins.version, "python-3.11.")

      # functools.cmp_to_key: neither a text signature nor a documented one
      functools = SnakeBridge.describe_library!("functools", depth: 0)
      assert %{kind: :builtin, has_signature: false, parameters: []} = fun(functools, "cmp_to_key")
      assert SnakeBridge.call!("builtins", "callable", [SnakeBridge.getattr!("functools", "cmp_to_key")])
    end

    test "itertools and operator: overloads, [...] and ... as more arguments of the same kind" do
      it = SnakeBridge.describe_library!("itertools", depth: 0)
      islice = class(it, "islice").init
      assert Enum.map(islice.overloads, & &1.signature) == ["(iterable, stop)", "(iterable, start, stop [, step])"]

      zip_longest = class(it, "zip_longest").init

      assert Enum.map(zip_longest.parameters, &{&1.name, &1.kind}) == [
               {"iter1", :positional_only},
               {"iter2", :positional_only},
               {"iters", :var_positional},
               {"fillvalue", :keyword_only}
             ]

      op = SnakeBridge.describe_library!("operator", depth: 0)
      assert [%{name: "item"}, %{name: "items", kind: :var_positional}] = class(op, "itemgetter").init.parameters
    end
  end

  describe "private names" do
    test "excluded by default, included with private: true" do
      public = SnakeBridge.describe_library!("sbtest_describe_private")
      assert names(public.functions) == ["visible"]
      assert names(public.constants) == ["VISIBLE"]
      assert public.classes == []

      all = SnakeBridge.describe_library!("sbtest_describe_private", private: true)
      assert "_hidden" in names(all.functions)
      assert "visible" in names(all.functions)
      assert "_SECRET" in names(all.constants)
      assert "_Internal" in names(all.classes)
    end

    test "private: true also lists names that __all__ leaves out" do
      all = SnakeBridge.describe_library!("sbtest_describe_private_all", private: true)
      assert "_hidden" in names(all.functions)
    end
  end

  describe "failures" do
    test "a missing module is a ModuleNotFoundError" do
      assert {:error, %PythonError{type: "ModuleNotFoundError", message: message}} =
               SnakeBridge.describe_library("sbtest_describe_no_such_module")

      assert message =~ "sbtest_describe_no_such_module"

      assert_raise PythonError, ~r/ModuleNotFoundError/, fn ->
        SnakeBridge.describe_library!("sbtest_describe_no_such_module")
      end
    end

    test "a member that raises when looked at is skipped and reported in :errors" do
      schema = SnakeBridge.describe_library!("sbtest_describe_weird", depth: 0)
      errors = Map.new(schema.errors, &{&1.name, &1.error})

      assert errors["sbtest_describe_weird.lazy"] == "RuntimeError: lazy load failed"
      refute "lazy" in names(schema.functions ++ schema.classes ++ schema.constants)

      # a callable instance: its __signature__ property is never read (it would
      # run the library's code); the signature comes from its class's __call__
      refute Map.has_key?(errors, "sbtest_describe_weird.bad_sig")
      assert %{has_signature: true, kind: :callable, parameters: [%{name: "x"}]} = fun(schema, "bad_sig")

      # the rest of the module is described
      assert [%{name: "a"}, %{name: "b", default: {:value, 1}}] = fun(schema, "ok").parameters
      assert Enum.sort(names(schema.classes)) == ["BadSig", "Lazy"]
    end

    test "with depth >= 1 (the default) such a member is skipped as well" do
      assert {:ok, schema} = SnakeBridge.describe_library("sbtest_describe_weird")
      assert "sbtest_describe_weird.lazy" in Enum.map(schema.errors, & &1.name)
    end
  end

  describe "describing runs nothing but the import" do
    test "no module __getattr__, no property of a class" do
      for opts <- [[], [private: true], [depth: 0]] do
        schema = SnakeBridge.describe_library!("sbtest_describe_quiet", opts)
        assert "plain" in names(schema.functions)
        assert "Counter" in names(schema.classes)
        # lazy_name in __all__ only exists through __getattr__: left out
        refute "lazy_name" in names(schema.functions ++ schema.classes ++ schema.constants)
        assert [%{name: "hit", readonly: true} | _] = class(schema, "Counter").properties
      end

      assert SnakeBridge.getattr!("sbtest_describe_quiet", "CALLS") == []
      assert SnakeBridge.getattr!("sbtest_describe_quiet", "HITS") == 0
    end

    test "describing a callable instance runs none of its class's descriptors" do
      schema = SnakeBridge.describe_library!("sbtest_describe_descriptor", depth: 0)
      assert %{has_signature: true} = fun(schema, "tool")
      assert SnakeBridge.getattr!("sbtest_describe_descriptor", "CALLS") == []
    end
  end

  test "[measure] describe_library(\"json\")" do
    {micros, {:ok, _}} = :timer.tc(fn -> SnakeBridge.describe_library("json") end)
    IO.puts("\n[measure] describe_library(\"json\"): #{Float.round(micros / 1000, 1)} ms")
  end
end
