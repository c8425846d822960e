Code.require_file("parity_support.exs", __DIR__)

defmodule SnakeBridge.Parity.Corpus do
  @moduledoc false
  # The parity corpus: named requests, each a function of the backend options
  # (`[backend: :nif]` or `[backend: {:pool, SnakeBridge.TestPool}]`), run once on
  # each backend. A case is `{name, run, expect}`; `expect` is what the contract
  # (docs/type_mapping.md) says the result is, when it says:
  #
  #   * `nil` — nothing stated beyond "both backends agree";
  #   * `{:eq, term}` — the normalised result is `===` the normalised `term`;
  #   * `{:check, description, fun}` — `fun.(result)` is truthy.
  #
  # The corpus is built anew in each test (pids, refs and funs are made once and
  # shared by both runs, so error messages naming them can be compared).

  import SnakeBridge.Parity, only: [nest: 1, negative_zero: 0, unnest: 1]

  alias SnakeBridge.{ConversionError, Object, PythonError}
  alias SnakeBridge.Test.EncoderFixtures.{Opaque, Point, Segment}

  def names, do: Enum.map(cases(), &elem(&1, 0))

  def fetch!(name), do: List.keyfind(cases(), name, 0) || raise("no parity case #{inspect(name)}")

  def cases do
    List.flatten([
      elixir_to_python(),
      python_to_elixir(),
      return_modes(),
      operations(),
      streams(),
      errors(),
      depth()
    ])
  end

  # ------------------------------------------------------------------ helpers

  defp c(name, run, expect \\ nil), do: {name, run, expect}

  # The three ways a term goes to Python and back: an eval global, a positional
  # argument (inside a one-item tuple), a keyword argument (inside a dict).
  defp rt(term, o) do
    %{
      eval: SnakeBridge.eval("x", %{"x" => term}, o),
      call: SnakeBridge.call("builtins", "tuple", [[term]], [], o),
      kwarg: SnakeBridge.call("builtins", "dict", [], %{"v" => term}, o)
    }
  end

  defp rt_ok(v), do: {:eq, %{eval: {:ok, v}, call: {:ok, {v}}, kwarg: {:ok, %{"v" => v}}}}

  # A round-trip case: `term` goes through Python and must come back as `back`.
  defp round_trip(name, term, back), do: c("round trip: " <> name, fn o -> rt(term, o) end, rt_ok(back))
  defp round_trip(name, term), do: round_trip(name, term, term)

  # Evaluates Python source, with the stdlib modules it names bound (as lambda
  # defaults, so one request does it all and everything lives in one worker).
  @modules ~w(datetime collections fractions decimal enum zoneinfo math types array itertools functools)
  def py(src, o) do
    used = Enum.filter(@modules, &Regex.match?(~r/\b#{&1}\b/, src))
    used = if String.contains?(src, "np."), do: used ++ ["np"], else: used

    binds =
      Enum.map_join(used, ", ", fn
        "np" -> "np=__import__('numpy')"
        m -> "#{m}=__import__('#{m}')"
      end)

    SnakeBridge.eval("(lambda #{binds}: #{src})()", %{}, o)
  end

  defp py_case(name, src, expect), do: c("python value: " <> name, fn o -> py(src, o) end, expect)

  defp object_of(type), do: {:check, "an object of type #{type}", &match?({:ok, %Object{type: ^type}}, &1)}

  defp python_error(type), do: {:check, "a PythonError #{type}", &match?({:error, %PythonError{type: ^type}}, &1)}

  defp raised_python(type),
    do: {:check, "raises PythonError #{type}", &match?({:raised, %PythonError{type: ^type}}, &1)}

  defp argument_error(fragment) do
    {:check, "an ArgumentError mentioning #{inspect(fragment)}",
     fn
       {:error, %ArgumentError{message: m}} -> String.contains?(m, fragment)
       _ -> false
     end}
  end

  defp all_argument_errors(fragment) do
    {:check, "ArgumentError mentioning #{inspect(fragment)} on every path",
     fn r ->
       Enum.all?(Map.values(r), fn
         {:error, %ArgumentError{message: m}} -> String.contains?(m, fragment)
         _ -> false
       end)
     end}
  end

  defp conversion_error, do: {:check, "a ConversionError", &match?({:error, %ConversionError{}}, &1)}

  # A namespace built by `exec` on one backend (on the pool: one worker).
  defp ns(code, o), do: SnakeBridge.exec!(code, %{}, o)

  # ------------------------------------------------------------------ Elixir -> Python

  defp elixir_to_python do
    paris_summer = %DateTime{
      year: 2020,
      month: 7,
      day: 1,
      hour: 12,
      minute: 0,
      second: 0,
      microsecond: {0, 0},
      time_zone: "Europe/Paris",
      zone_abbr: "CEST",
      utc_offset: 3600,
      std_offset: 3600
    }

    # The repeated hour at the end of DST: the second (standard time) 02:30.
    paris_fold = %DateTime{paris_summer | month: 10, day: 25, hour: 2, minute: 30, zone_abbr: "CET", std_offset: 0}
    paris_first = %DateTime{paris_fold | zone_abbr: "CEST", std_offset: 3600}

    fixed = %DateTime{paris_summer | time_zone: "Etc/GMT-2", zone_abbr: "+02", utc_offset: 7200, std_offset: 0}

    unknown_zone = %DateTime{
      paris_summer
      | time_zone: "Nowhere/Special",
        zone_abbr: "NWS",
        utc_offset: 5400,
        std_offset: 0,
        microsecond: {7, 6}
    }

    [
      round_trip("nil", nil),
      round_trip("true", true),
      round_trip("false", false),
      round_trip("atom :hello", :hello, "hello"),
      round_trip("atom with a space", :"with space", "with space"),
      round_trip("module atom", Elixir.Enum, "Elixir.Enum"),
      round_trip("Latin-1 atom :héllo", :héllo, "héllo"),
      round_trip("non-Latin-1 atom :\"héllo✓\"", :"héllo✓", "héllo✓"),
      round_trip("atoms in containers", %{a: [:b, {:c}]}, %{"a" => ["b", {"c"}]}),
      round_trip("small integers", [0, 1, -1, 255, -256]),
      round_trip("int64 edges", [Integer.pow(2, 63) - 1, -Integer.pow(2, 63), -Integer.pow(2, 63) - 1]),
      round_trip("uint64 edges", [Integer.pow(2, 63), Integer.pow(2, 64) - 1, Integer.pow(2, 64)]),
      round_trip("big integer 2^200", Integer.pow(2, 200)),
      round_trip("big integer -2^200", -Integer.pow(2, 200)),
      round_trip("big integer 2^4096+1", Integer.pow(2, 4096) + 1),
      round_trip("big integer -2^4096", -Integer.pow(2, 4096)),
      round_trip("floats", [1.5, 0.1, 1 / 3, 123_456.789]),
      round_trip("float extremes", [5.0e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308]),
      round_trip("float 0.0", 0.0),
      round_trip("float -0.0", negative_zero()),
      round_trip("float 1.0 is not 1", [1.0, 1]),
      round_trip(":infinity", :infinity),
      round_trip(":neg_infinity", :neg_infinity),
      round_trip(":nan", :nan),
      round_trip("UTF-8 binaries", ["", "hello", "héllo ✓ 日本 🐍", "a\0b", "👨‍👩‍👧‍👦", "\uFEFFbom", <<0x10FFFF::utf8>>]),
      round_trip("UTF-8 binary of 8 KiB", String.duplicate("aé日😀", 820)),
      round_trip("non-UTF-8 binaries", [<<255>>, <<0, 255, 128>>, <<0xC3>>, <<0xED, 0xA0, 0x80>>, <<0xC0, 0x80>>]),
      round_trip("non-UTF-8 binary of 9 KiB", <<0xFF>> <> :binary.copy(<<1, 2, 3>>, 3000)),
      round_trip("SnakeBridge.bytes", SnakeBridge.bytes("abc"), "abc"),
      round_trip("SnakeBridge.bytes empty", SnakeBridge.bytes(""), ""),
      round_trip("SnakeBridge.bytes in list and as key", [SnakeBridge.bytes("a"), %{SnakeBridge.bytes("k") => 1}], [
        "a",
        %{"k" => 1}
      ]),
      round_trip("nested lists and tuples", [1, [2, {3, "a", [nil, {}]}], {}, []]),
      round_trip("tuple", {1, 2.0, "three", nil, [4]}),
      round_trip("keyword list", [a: 1, b: 2], [{"a", 1}, {"b", 2}]),
      round_trip("10,000 integer list", Enum.to_list(1..10_000)),
      round_trip(
        "map with mixed keys",
        %{1 => "int", {1, 2} => "tuple", nil => "none", "s" => [1], 2.5 => :x, false => true, <<255>> => 3},
        %{1 => "int", {1, 2} => "tuple", nil => "none", "s" => [1], 2.5 => "x", false => true, <<255>> => 3}
      ),
      round_trip("map with atom keys", %{a: 1, b: %{c: 2}}, %{"a" => 1, "b" => %{"c" => 2}}),
      round_trip("empty map", %{}),
      round_trip("map with calendar and float keys", %{~D[2020-01-01] => 1, ~T[10:00:00] => 2, 0.5 => 3, -7 => 4}),
      round_trip("list as map key becomes tuple", %{[1, 2] => 3}, %{{1, 2} => 3}),
      round_trip("MapSet", MapSet.new([1, "a", {2, 3}, <<255>>])),
      round_trip("empty MapSet", MapSet.new()),
      round_trip("MapSet as map key (frozenset)", %{MapSet.new([1, 2]) => "v"}),
      round_trip("MapSet in MapSet (frozenset)", MapSet.new([MapSet.new([1]), MapSet.new()])),
      round_trip("MapSet in tuple in map key", %{{1, MapSet.new(["x"])} => MapSet.new([{2}])}),
      round_trip("list in MapSet becomes tuple", MapSet.new([[1]]), MapSet.new([{1}])),
      round_trip("Dates", [~D[2024-02-29], ~D[0001-01-01], ~D[9999-12-31]]),
      round_trip("Times", [~T[00:00:00], ~T[10:00:00], ~T[23:59:59.999999], ~T[01:02:03.000004]]),
      round_trip("Time precision normalised", [~T[10:00:00.120], ~T[10:00:00.000]], [
        ~T[10:00:00.120000],
        ~T[10:00:00]
      ]),
      round_trip("NaiveDateTimes", [~N[2020-01-02 03:04:05.123456], ~N[2020-01-02 03:04:05], ~N[0001-01-01 00:00:00]]),
      round_trip("DateTime UTC", [~U[2020-01-01 00:00:00Z], ~U[2024-06-30 23:59:59.999999Z], ~U[9999-12-31 23:59:59Z]]),
      round_trip("DateTime Europe/Paris summer", paris_summer),
      round_trip("DateTime Europe/Paris fold (second 02:30)", paris_fold),
      round_trip("DateTime Europe/Paris first 02:30", paris_first),
      round_trip("DateTime fixed zone Etc/GMT-2", fixed),
      c("round trip: DateTime in a zone Python does not know", fn o -> rt(unknown_zone, o) end),
      round_trip("calendar values nested", %{"when" => [~D[2024-01-01], {~T[12:00:00], ~N[2024-01-01 12:00:00]}]}),
      round_trip("Encoder struct", %Point{x: 1, y: 2}, %{"x" => 1, "y" => 2}),
      round_trip("nested Encoder structs", %Segment{from: %Point{x: 0, y: 0}, to: %Point{x: 1, y: 1}}, [
        %{"x" => 0, "y" => 0},
        %{"x" => 1, "y" => 1}
      ]),
      c(
        "Python types of Elixir values",
        fn o ->
          values = [
            nil,
            true,
            1,
            Integer.pow(2, 100),
            1.5,
            :infinity,
            :nan,
            :atom,
            "s",
            <<255>>,
            SnakeBridge.bytes("a"),
            [],
            {},
            %{},
            MapSet.new(),
            ~D[2020-01-01],
            ~T[10:00:00],
            ~N[2020-01-01 00:00:00],
            ~U[2020-01-01 00:00:00Z]
          ]

          SnakeBridge.eval("[type(v).__module__ + '.' + type(v).__name__ for v in x]", %{"x" => values}, o)
        end,
        {:eq,
         {:ok, ~w(builtins.NoneType builtins.bool builtins.int builtins.int builtins.float builtins.float builtins.float
             builtins.str builtins.str builtins.bytes builtins.bytes builtins.list builtins.tuple builtins.dict
             builtins.set datetime.date datetime.time datetime.datetime datetime.datetime)}}
      ),
      c(
        "Python values of special Elixir values",
        fn o ->
          SnakeBridge.eval(
            "(repr(a), repr(b), repr(c), __import__('math').copysign(1.0, d), e.tzinfo is None, f.utcoffset().total_seconds(), str(g.tzinfo), g.fold)",
            %{
              "a" => :infinity,
              "b" => :neg_infinity,
              "c" => :nan,
              "d" => negative_zero(),
              "e" => ~N[2020-01-01 00:00:00],
              "f" => ~U[2020-01-01 00:00:00Z],
              "g" => paris_fold
            },
            o
          )
        end,
        {:eq, {:ok, {"inf", "-inf", "nan", -1.0, true, 0.0, "Europe/Paris", 1}}}
      ),
      c(
        "hashable forms of map keys and set elements",
        fn o ->
          SnakeBridge.eval(
            "([type(k).__name__ for k in a], [type(e).__name__ for e in b], [type(k).__name__ for k in c])",
            %{"a" => %{[1] => 1}, "b" => MapSet.new([MapSet.new([1])]), "c" => %{SnakeBridge.bytes("k") => 1}},
            o
          )
        end,
        {:eq, {:ok, {["tuple"], ["frozenset"], ["bytes"]}}}
      ),
      # Python dicts are ordered: the order an Elixir map's keys are inserted in
      # is visible (iteration, repr, json.dumps).
      c(
        "dict order: json.dumps of an Elixir map",
        fn o -> SnakeBridge.call("json", "dumps", [%{"a" => 1, "b" => 2, "c" => 3}], [], o) end
      ),
      c(
        "dict order: keys of a 40-key map",
        fn o -> SnakeBridge.eval("list(x)", %{"x" => Map.new(1..40, &{&1, &1})}, o) end,
        {:check, "all 40 keys", &match?({:ok, keys} when length(keys) == 40, &1)}
      ),
      c(
        "dict order: repr of a map with atom keys",
        fn o -> SnakeBridge.eval("repr(x)", %{"x" => %{nil => 1, true => 2}}, o) end
      ),
      c(
        "objects cross back as themselves",
        fn o ->
          f = SnakeBridge.new!("fractions", "Fraction", [1, 3], [], o)
          SnakeBridge.eval("(x is y[0], x is y[1]['f'], type(x).__name__)", %{"x" => f, "y" => [f, %{"f" => f}]}, o)
        end,
        {:eq, {:ok, {true, true, "Fraction"}}}
      ),
      c("round trip: Date outside Python's range", fn o -> rt(%Date{year: 0, month: 1, day: 1}, o) end),
      c("round trip: struct without Encoder", fn o -> rt(%Opaque{secret: 1}, o) end, all_argument_errors("Opaque"))
    ]
  end

  # ------------------------------------------------------------------ Python -> Elixir

  defp python_to_elixir do
    [
      py_case("None True False", "(None, True, False)", {:eq, {:ok, {nil, true, false}}}),
      py_case("bool vs int", "[True, 1, False, 0]", {:eq, {:ok, [true, 1, false, 0]}}),
      py_case("int", "42", {:eq, {:ok, 42}}),
      py_case("big int 2**200", "2**200", {:eq, {:ok, Integer.pow(2, 200)}}),
      py_case("big int -(2**200)", "-(2**200)", {:eq, {:ok, -Integer.pow(2, 200)}}),
      py_case(
        "big int 2**64 and -(2**63)-1",
        "(2**64, -(2**63) - 1)",
        {:eq, {:ok, {Integer.pow(2, 64), -Integer.pow(2, 63) - 1}}}
      ),
      py_case("big int 7**2000", "7**2000", {:eq, {:ok, Integer.pow(7, 2000)}}),
      py_case("float", "0.1", {:eq, {:ok, 0.1}}),
      py_case("float integral is a float", "2.0", {:eq, {:ok, 2.0}}),
      py_case("float inf", "float('inf')", {:eq, {:ok, :infinity}}),
      py_case("float -inf", "-float('inf')", {:eq, {:ok, :neg_infinity}}),
      py_case("float nan", "float('nan')", {:eq, {:ok, :nan}}),
      py_case("float -0.0", "-0.0", {:eq, {:ok, negative_zero()}}),
      py_case("float extremes", "(5e-324, 1.7976931348623157e308)", {:eq, {:ok, {5.0e-324, 1.7976931348623157e308}}}),
      py_case("str", "'héllo ✓ 日本 🐍'", {:eq, {:ok, "héllo ✓ 日本 🐍"}}),
      py_case("str empty and NUL", "('', 'a\\x00b')", {:eq, {:ok, {"", "a\0b"}}}),
      py_case("str of 8 KiB", "'aé' * 4096", {:eq, {:ok, String.duplicate("aé", 4096)}}),
      py_case("str with a lone surrogate stays an object", "'a\\ud800'", object_of("str")),
      py_case("lone surrogate inside a list", "[1, '\\udfff']", nil),
      py_case("bytes", "b'\\x00\\xffab'", {:eq, {:ok, <<0, 255, ?a, ?b>>}}),
      py_case(
        "bytes of 16 KiB",
        "bytes(range(256)) * 64",
        {:eq, {:ok, :binary.copy(:binary.list_to_bin(Enum.to_list(0..255)), 64)}}
      ),
      py_case("bytes that are valid UTF-8", "b'abc'", {:eq, {:ok, "abc"}}),
      py_case("bytearray", "bytearray(b'xyz')", {:eq, {:ok, "xyz"}}),
      py_case("memoryview", "memoryview(b'hello')", {:eq, {:ok, "hello"}}),
      py_case("memoryview slice", "memoryview(b'hello')[1:3]", {:eq, {:ok, "el"}}),
      py_case("memoryview non-contiguous", "memoryview(b'abcdef')[::2]", {:eq, {:ok, "ace"}}),
      py_case("memoryview of int array", "memoryview(array.array('i', [1, 2]))", nil),
      py_case("list", "[1, 'a', None, [2.5], []]", {:eq, {:ok, [1, "a", nil, [2.5], []]}}),
      py_case("tuple", "(1, (2,), ())", {:eq, {:ok, {1, {2}, {}}}}),
      py_case(
        "dict with mixed keys",
        "{'a': 1, 1: 'x', None: [], (1, 2): {}, 2.5: True, b'\\xff': 0}",
        {:eq, {:ok, %{"a" => 1, 1 => "x", nil => [], {1, 2} => %{}, 2.5 => true, <<255>> => 0}}}
      ),
      py_case("dict keys 'a' and b'a' collide: stays an object", "{'a': 1, b'a': 2}", object_of("dict")),
      py_case("dict keys 'a' and bytearray-equal collide in a list", "[{'k': 1, b'k': 2}, 3]", nil),
      py_case("dict with a lone-surrogate key", "{'a\\ud800': 1, 'b': 2}", nil),
      py_case("set", "{1, 'a', (2, 3)}", {:eq, {:ok, MapSet.new([1, "a", {2, 3}])}}),
      py_case("frozenset", "frozenset({1, 2})", {:eq, {:ok, MapSet.new([1, 2])}}),
      py_case("empty set", "set()", {:eq, {:ok, MapSet.new()}}),
      py_case("frozenset as dict key", "{frozenset({1}): 'v'}", {:eq, {:ok, %{MapSet.new([1]) => "v"}}}),
      py_case(
        "set of frozensets",
        "{frozenset({1}), frozenset()}",
        {:eq, {:ok, MapSet.new([MapSet.new([1]), MapSet.new()])}}
      ),
      py_case("set with 'a' and b'a' collides: stays an object", "{'a', b'a'}", object_of("set")),
      py_case(
        "set of strings (hash order)",
        "set('abcdefghij')",
        {:eq, {:ok, MapSet.new(String.graphemes("abcdefghij"))}}
      ),
      py_case("date", "datetime.date(2024, 2, 29)", {:eq, {:ok, ~D[2024-02-29]}}),
      py_case(
        "date min and max",
        "(datetime.date.min, datetime.date.max)",
        {:eq, {:ok, {~D[0001-01-01], ~D[9999-12-31]}}}
      ),
      py_case("time", "datetime.time(10, 0)", {:eq, {:ok, ~T[10:00:00]}}),
      py_case("time with microseconds", "datetime.time(1, 2, 3, 4)", {:eq, {:ok, ~T[01:02:03.000004]}}),
      py_case(
        "aware time stays an object",
        "datetime.time(10, tzinfo=datetime.timezone.utc)",
        object_of("datetime.time")
      ),
      py_case(
        "naive datetime",
        "datetime.datetime(2020, 1, 2, 3, 4, 5, 6)",
        {:eq, {:ok, ~N[2020-01-02 03:04:05.000006]}}
      ),
      py_case("datetime max", "datetime.datetime.max", {:eq, {:ok, ~N[9999-12-31 23:59:59.999999]}}),
      py_case(
        "datetime UTC",
        "datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)",
        {:eq, {:ok, ~U[2020-01-01 00:00:00Z]}}
      ),
      py_case(
        "datetime Europe/Paris summer",
        "datetime.datetime(2020, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))",
        {:check, "Europe/Paris CEST +1h+1h",
         &match?(
           {:ok, %DateTime{time_zone: "Europe/Paris", zone_abbr: "CEST", utc_offset: 3600, std_offset: 3600, hour: 12}},
           &1
         )}
      ),
      py_case(
        "datetime Europe/Paris fold=1",
        "datetime.datetime(2020, 10, 25, 2, 30, fold=1, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))",
        {:check, "Europe/Paris CET",
         &match?({:ok, %DateTime{time_zone: "Europe/Paris", zone_abbr: "CET", utc_offset: 3600, std_offset: 0}}, &1)}
      ),
      py_case(
        "datetime fixed offset +02:00",
        "datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))",
        {:check, "utc_offset 7200",
         &match?({:ok, %DateTime{utc_offset: 7200, std_offset: 0, hour: 3, microsecond: {6, 6}}}, &1)}
      ),
      py_case(
        "datetime fixed named offset -03:30",
        "datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone(-datetime.timedelta(hours=3, minutes=30), 'XST'))",
        {:check, "utc_offset -12600", &match?({:ok, %DateTime{utc_offset: -12_600}}, &1)}
      ),
      py_case(
        "datetime offset with seconds",
        "datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(seconds=30)))",
        nil
      ),
      py_case(
        "datetime sub-second offset",
        "datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(microseconds=1)))",
        nil
      ),
      py_case("Counter stays an object", "collections.Counter('aab')", object_of("collections.Counter")),
      py_case(
        "OrderedDict stays an object",
        "collections.OrderedDict([('a', 1)])",
        object_of("collections.OrderedDict")
      ),
      py_case(
        "defaultdict stays an object",
        "collections.defaultdict(int, {'a': 1})",
        object_of("collections.defaultdict")
      ),
      py_case("namedtuple stays an object", "collections.namedtuple('P', 'x y')(1, 2)", nil),
      py_case("IntEnum member stays an object", "enum.IntEnum('E', 'A B').B", nil),
      py_case("str subclass stays an object", "type('S', (str,), {})('x')", nil),
      py_case("int subclass stays an object", "type('I', (int,), {})(3)", nil),
      py_case("module", "math", object_of("module")),
      py_case("builtin function", "len", nil),
      py_case("class", "int", nil),
      py_case("instance of object", "object()", object_of("object")),
      py_case("iterator", "iter([1, 2])", nil),
      py_case("complex", "1+2j", object_of("complex")),
      py_case("Fraction", "fractions.Fraction(1, 3)", object_of("fractions.Fraction")),
      py_case("Decimal", "decimal.Decimal('1.10')", object_of("decimal.Decimal")),
      py_case("range", "range(3)", object_of("range")),
      py_case("Ellipsis", "...", nil),
      py_case("MappingProxyType", "types.MappingProxyType({'a': 1})", nil),
      py_case(
        "container with unconvertible items",
        "{'n': 1, 'obj': object(), 'list': [2, object()]}",
        {:check, "objects inside a map",
         &match?({:ok, %{"n" => 1, "obj" => %Object{type: "object"}, "list" => [2, %Object{type: "object"}]}}, &1)}
      ),
      py_case("Counter inside a list", "[collections.Counter('ab'), 1]", nil),
      py_case("numpy int64", "np.int64(7)", {:eq, {:ok, 7}}),
      py_case("numpy uint64 max", "np.uint64(2**64 - 1)", {:eq, {:ok, Integer.pow(2, 64) - 1}}),
      py_case("numpy int8 negative", "np.int8(-5)", {:eq, {:ok, -5}}),
      py_case("numpy float32", "np.float32(1.5)", {:eq, {:ok, 1.5}}),
      py_case("numpy float16", "np.float16(0.5)", {:eq, {:ok, 0.5}}),
      py_case(
        "numpy float64 nan and -inf",
        "(np.float64('nan'), np.float32('-inf'))",
        {:eq, {:ok, {:nan, :neg_infinity}}}
      ),
      py_case("numpy float64 -0.0", "np.float64(-0.0)", {:eq, {:ok, negative_zero()}}),
      py_case("numpy bool_", "(np.bool_(True), np.bool_(False))", {:eq, {:ok, {true, false}}}),
      py_case("numpy longdouble", "np.longdouble(0.5)", nil),
      py_case("numpy complex stays an object", "np.complex128(1 + 2j)", nil),
      py_case("numpy str_", "np.str_('x')", nil),
      py_case("numpy datetime64", "np.datetime64('2020-01-01')", nil),
      py_case("numpy array stays an object", "np.arange(6).reshape(2, 3)", object_of("numpy.ndarray")),
      py_case("numpy 0-d array", "np.array(5)", nil),
      py_case("numpy scalars in a list", "[np.int32(1), np.float64(2.5), np.uint8(255)]", {:eq, {:ok, [1, 2.5, 255]}}),
      py_case(
        "numpy scalars as dict keys",
        "{np.int64(1): 'a', np.float64(2.5): 'b'}",
        {:eq, {:ok, %{1 => "a", 2.5 => "b"}}}
      ),
      py_case(
        "numpy int and int keys collide in Python",
        "{1: 'a', np.int64(2): 'b'}",
        {:eq, {:ok, %{1 => "a", 2 => "b"}}}
      )
    ]
  end

  # ------------------------------------------------------------------ return modes

  @mode_values [
    {"int", "7"},
    {"float nan", "float('nan')"},
    {"str", "'héllo'"},
    {"list", "[1, (2, 3)]"},
    {"dict with set", "{'a': [1, {2}]}"},
    {"bytes", "b'ab'"},
    {"bytearray", "bytearray(b'ab')"},
    {"memoryview", "memoryview(b'ab')"},
    {"date", "datetime.date(2020, 1, 1)"},
    {"aware datetime", "datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)"},
    {"aware time", "datetime.time(10, tzinfo=datetime.timezone.utc)"},
    {"Counter", "collections.Counter('aab')"},
    {"OrderedDict", "collections.OrderedDict([('b', 1), ('a', 2)])"},
    {"namedtuple", "collections.namedtuple('P', 'x y')(1, 2)"},
    {"IntEnum", "enum.IntEnum('E', 'A B').B"},
    {"str subclass", "type('S', (str,), {})('x')"},
    {"MappingProxyType", "types.MappingProxyType({'a': 1})"},
    {"module", "math"},
    {"object()", "object()"},
    {"partial list", "[1, object()]"},
    {"lone surrogate", "'a\\ud800'"},
    {"colliding dict", "{'a': 1, b'a': 2}"},
    {"colliding set", "{'a', b'a'}"},
    {"Fraction", "fractions.Fraction(1, 3)"},
    {"generator", "(i for i in range(3))"},
    {"numpy array", "np.arange(4).reshape(2, 2)"},
    {"numpy float array", "np.array([0.5, float('nan')])"},
    {"numpy int64", "np.int64(7)"},
    {"numpy complex", "np.complex128(1 + 2j)"}
  ]

  # What the contract says for :value (deep conversion) where it says it.
  @value_expect %{
    "int" => {:ok, 7},
    "list" => {:ok, [1, {2, 3}]},
    "Counter" => {:ok, %{"a" => 2, "b" => 1}},
    "OrderedDict" => {:ok, %{"b" => 1, "a" => 2}},
    "namedtuple" => {:ok, {1, 2}},
    "IntEnum" => {:ok, 2},
    "str subclass" => {:ok, "x"},
    "MappingProxyType" => {:ok, %{"a" => 1}},
    "numpy array" => {:ok, [[0, 1], [2, 3]]},
    "numpy int64" => {:ok, 7}
  }

  defp return_modes do
    for {label, src} <- @mode_values, mode <- [:auto, :ref, :value] do
      expect =
        case mode do
          :ref ->
            {:check, "an object", &match?({:ok, %Object{}}, &1)}

          :value ->
            cond do
              Map.has_key?(@value_expect, label) ->
                {:eq, @value_expect[label]}

              label in ["module", "object()", "partial list", "generator", "Fraction", "aware time"] ->
                conversion_error()

              true ->
                nil
            end

          :auto ->
            nil
        end

      c("return #{mode}: #{label}", fn o -> py(src, o ++ [return: mode]) end, expect)
    end
  end

  # ------------------------------------------------------------------ operations

  @holder """
  import dataclasses, types

  class Holder:
      closed = False
      def __init__(self, v):
          self.v = v
      def __repr__(self):
          return f"Holder({self.v!r})"
      @property
      def broken(self):
          raise RuntimeError("property failed ✓")
      def echo(self, *args, **kwargs):
          return (args, kwargs)

  @dataclasses.dataclass(frozen=True)
  class Frozen:
      x: int = 1
  """

  defp operations do
    [
      # call
      c("call: math.sqrt float", fn o -> SnakeBridge.call("math", "sqrt", [16.0], [], o) end, {:eq, {:ok, 4.0}}),
      c("call: math.sqrt int", fn o -> SnakeBridge.call("math", "sqrt", [16], [], o) end, {:eq, {:ok, 4.0}}),
      c("call: divmod", fn o -> SnakeBridge.call("builtins", "divmod", [7, 2], [], o) end, {:eq, {:ok, {3, 1}}}),
      c(
        "call: json.dumps with keyword list",
        fn o -> SnakeBridge.call("json", "dumps", [[1, 2]], [indent: 2], o) end,
        {:eq, {:ok, "[\n  1,\n  2\n]"}}
      ),
      c(
        "call: json.dumps with kwargs map",
        fn o -> SnakeBridge.call("json", "dumps", [%{"b" => 1, "a" => [nil]}], %{"sort_keys" => true}, o) end,
        {:eq, {:ok, ~s({"a": [null], "b": 1})}}
      ),
      c("call: dotted module", fn o -> SnakeBridge.call("os.path", "join", ["a", "b"], [], o) end, {:eq, {:ok, "a/b"}}),
      c(
        "call: dotted function",
        fn o -> SnakeBridge.call("datetime", "date.fromisoformat", ["2020-02-03"], [], o) end,
        {:eq, {:ok, ~D[2020-02-03]}}
      ),
      c("call: atom names", fn o -> SnakeBridge.call(:math, :floor, [2.5], [], o) end, {:eq, {:ok, 2}}),
      c(
        "call: an object itself (nil function)",
        fn o ->
          f = SnakeBridge.eval!("lambda a, b=10: (a, b)", %{}, o)
          {SnakeBridge.call(f, nil, [1], [], o), SnakeBridge.call(f, "", [1], [b: 2], o)}
        end,
        {:eq, {{:ok, {1, 10}}, {:ok, {1, 2}}}}
      ),
      c(
        "call: return :ref",
        fn o -> SnakeBridge.call("math", "floor", [2.5], [], o ++ [return: :ref]) end,
        object_of("int")
      ),
      c("call: Counter result", fn o -> SnakeBridge.call("collections", "Counter", ["abca"], [], o) end, nil),
      c("call: wrong arguments", fn o -> SnakeBridge.call("math", "sqrt", [], [], o) end, python_error("TypeError")),
      c(
        "call: unexpected keyword",
        fn o -> SnakeBridge.call("math", "sqrt", [1.0], [nope: 1], o) end,
        python_error("TypeError")
      ),
      c(
        "call: kwargs that are not pairs",
        fn o -> SnakeBridge.call("math", "sqrt", [1.0], [1, 2], o) end,
        argument_error("keyword arguments")
      ),
      # new
      c(
        "new: Fraction",
        fn o -> SnakeBridge.new("fractions", "Fraction", [1, 3], [], o) end,
        object_of("fractions.Fraction")
      ),
      c(
        "new: int is still an object",
        fn o -> SnakeBridge.new("builtins", "int", ["5"], [], o) end,
        object_of("int")
      ),
      c(
        "new: with kwargs",
        fn o -> SnakeBridge.new("datetime", "timedelta", [], [days: 1, hours: 2], o) end,
        object_of("datetime.timedelta")
      ),
      c(
        "new: Decimal then method",
        fn o ->
          d = SnakeBridge.new!("decimal", "Decimal", ["1.10"], [], o)
          {d, SnakeBridge.method(d, "as_tuple", [], [], o)}
        end
      ),
      c(
        "new: constructor raises",
        fn o -> SnakeBridge.new("fractions", "Fraction", [1, 0], [], o) end,
        python_error("ZeroDivisionError")
      ),
      c(
        "new: missing class",
        fn o -> SnakeBridge.new("fractions", "Nope", [], [], o) end,
        python_error("AttributeError")
      ),
      # method
      c(
        "method: Fraction.limit_denominator and as_integer_ratio",
        fn o ->
          f = SnakeBridge.new!("fractions", "Fraction", [1, 3], [], o)
          {SnakeBridge.method(f, "limit_denominator", [2], [], o), SnakeBridge.method(f, "as_integer_ratio", [], [], o)}
        end,
        {:check, "an object and {1, 3}", &match?({{:ok, %Object{type: "fractions.Fraction"}}, {:ok, {1, 3}}}, &1)}
      ),
      c(
        "method: mutate a list held by reference",
        fn o ->
          l = SnakeBridge.eval!("[1]", %{}, o ++ [return: :ref])
          {SnakeBridge.method(l, "append", [{2, "x"}], [], o), SnakeBridge.to_elixir(l, o)}
        end,
        {:eq, {{:ok, nil}, {:ok, [1, {2, "x"}]}}}
      ),
      c(
        "method: keyword arguments",
        fn o ->
          s = SnakeBridge.eval!("'a,b,c'", %{}, o ++ [return: :ref])
          SnakeBridge.method(s, "split", [","], [maxsplit: 1], o)
        end,
        {:eq, {:ok, ["a", "b,c"]}}
      ),
      c(
        "method: args and kwargs echoed",
        fn o ->
          %{"Holder" => cls} = ns(@holder, o)
          h = SnakeBridge.call!(cls, nil, [1], [], o)
          SnakeBridge.method(h, "echo", [1, "two", [3]], %{"k" => {4}}, o)
        end,
        {:eq, {:ok, {{1, "two", [3]}, %{"k" => {4}}}}}
      ),
      c(
        "method: classmethod on a class object",
        fn o ->
          cls = SnakeBridge.getattr!("datetime", "datetime", o)
          SnakeBridge.method(cls, "fromisoformat", ["2020-01-02T03:04:05"], [], o)
        end,
        {:eq, {:ok, ~N[2020-01-02 03:04:05]}}
      ),
      c(
        "method: missing method",
        fn o -> SnakeBridge.method(SnakeBridge.new!("fractions", "Fraction", [1], [], o), "nope", [], [], o) end,
        python_error("AttributeError")
      ),
      c(
        "method: return :value of a Counter",
        fn o ->
          c = SnakeBridge.call!("collections", "Counter", ["aab"], [], o)
          SnakeBridge.method(c, "copy", [], [], o ++ [return: :value])
        end,
        {:eq, {:ok, %{"a" => 2, "b" => 1}}}
      ),
      c(
        "method: most_common on a Counter",
        fn o ->
          c = SnakeBridge.call!("collections", "Counter", ["aab"], [], o)
          SnakeBridge.method(c, "most_common", [], [], o)
        end,
        {:eq, {:ok, [{"a", 2}, {"b", 1}]}}
      ),
      # getattr
      c("getattr: module constant", fn o -> SnakeBridge.getattr("math", "pi", o) end, {:eq, {:ok, :math.pi()}}),
      c(
        "getattr: dotted name",
        fn o -> SnakeBridge.getattr("sys", "version_info.major", o) end,
        {:eq, {:ok, 3}}
      ),
      c("getattr: dotted module", fn o -> SnakeBridge.getattr("os.path", "sep", o) end, {:eq, {:ok, "/"}}),
      c(
        "getattr: object attribute",
        fn o -> SnakeBridge.getattr(SnakeBridge.new!("fractions", "Fraction", [3, 4], [], o), "denominator", o) end,
        {:eq, {:ok, 4}}
      ),
      c("getattr: module object", fn o -> SnakeBridge.getattr("os", "path", o) end, object_of("module")),
      c(
        "getattr: return :ref",
        fn o -> SnakeBridge.getattr("math", "pi", o ++ [return: :ref]) end,
        object_of("float")
      ),
      c(
        "getattr: return :value of a class",
        fn o -> SnakeBridge.getattr("collections", "Counter", o ++ [return: :value]) end,
        conversion_error()
      ),
      c(
        "getattr: missing on module",
        fn o -> SnakeBridge.getattr("math", "nope", o) end,
        python_error("AttributeError")
      ),
      c(
        "getattr: missing on object",
        fn o -> SnakeBridge.getattr(SnakeBridge.new!("fractions", "Fraction", [1], [], o), "nope", o) end,
        python_error("AttributeError")
      ),
      c(
        "getattr: property that raises",
        fn o ->
          %{"Holder" => cls} = ns(@holder, o)
          SnakeBridge.getattr(SnakeBridge.call!(cls, nil, [1], [], o), "broken", o)
        end,
        python_error("RuntimeError")
      ),
      # setattr
      c(
        "setattr: then getattr and vars",
        fn o ->
          n = SnakeBridge.new!("types", "SimpleNamespace", [], [a: 1], o)

          {SnakeBridge.setattr(n, "b", [1, MapSet.new([2]), ~D[2020-01-01]], o), SnakeBridge.getattr(n, "b", o),
           SnakeBridge.call("builtins", "vars", [n], [], o)}
        end,
        {:eq,
         {{:ok, nil}, {:ok, [1, MapSet.new([2]), ~D[2020-01-01]]},
          {:ok, %{"a" => 1, "b" => [1, MapSet.new([2]), ~D[2020-01-01]]}}}}
      ),
      # (On the pool a module-level change is seen only by the worker that made
      # it, so the value is read back through a module object pinned to one.)
      c(
        "setattr: on a module by name",
        fn o -> SnakeBridge.setattr("__main__", "snakebridge_parity_x", {1, "y"}, o) end,
        {:eq, {:ok, nil}}
      ),
      c(
        "setattr: on a module object",
        fn o ->
          m = SnakeBridge.call!("importlib", "import_module", ["__main__"], [], o)

          {SnakeBridge.setattr(m, "snakebridge_parity_y", {1, "y"}, o),
           SnakeBridge.getattr(m, "snakebridge_parity_y", o)}
        end,
        {:eq, {{:ok, nil}, {:ok, {1, "y"}}}}
      ),
      c(
        "setattr: an object value",
        fn o ->
          n = SnakeBridge.new!("types", "SimpleNamespace", [], [], o)
          # made next to n (on the pool: in the same worker)
          f = SnakeBridge.eval!("__import__('fractions').Fraction(1, 2)", %{"n" => n}, o)
          {SnakeBridge.setattr(n, "f", f, o), SnakeBridge.eval("n.f is f", %{"n" => n, "f" => f}, o)}
        end,
        {:eq, {{:ok, nil}, {:ok, true}}}
      ),
      c(
        "setattr: on an int",
        fn o -> SnakeBridge.setattr(SnakeBridge.eval!("1", %{}, o ++ [return: :ref]), "x", 1, o) end,
        python_error("AttributeError")
      ),
      c(
        "setattr: on a frozen dataclass",
        fn o ->
          %{"Frozen" => cls} = ns(@holder, o)
          SnakeBridge.setattr(SnakeBridge.call!(cls, nil, [], [], o), "x", 2, o)
        end,
        python_error("FrozenInstanceError")
      ),
      c(
        "setattr: unconvertible value",
        fn o -> SnakeBridge.setattr(SnakeBridge.new!("types", "SimpleNamespace", [], [], o), "p", <<1::3>>, o) end,
        argument_error("bitstring")
      ),
      # eval
      c(
        "eval: arithmetic with globals",
        fn o -> SnakeBridge.eval("x * y", %{"x" => 6, "y" => 7}, o) end,
        {:eq, {:ok, 42}}
      ),
      c("eval: atom-keyed globals", fn o -> SnakeBridge.eval("x + 1", %{x: 1}, o) end),
      c("eval: syntax error", fn o -> SnakeBridge.eval("1 +", %{}, o) end, python_error("SyntaxError")),
      c("eval: name error", fn o -> SnakeBridge.eval("nope", %{}, o) end, python_error("NameError")),
      c(
        "eval: statement is a syntax error",
        fn o -> SnakeBridge.eval("x = 1", %{}, o) end,
        python_error("SyntaxError")
      ),
      c("eval: lambda object", fn o -> SnakeBridge.eval("lambda: 1", %{}, o) end, object_of("function")),
      # exec
      c(
        "exec: returns the new globals",
        fn o -> SnakeBridge.exec("y = x + 1\nz = [y, 'a']", %{"x" => 1}, o) end,
        {:eq, {:ok, %{"x" => 1, "y" => 2, "z" => [2, "a"]}}}
      ),
      c(
        "exec: imports and functions are objects",
        fn o -> SnakeBridge.exec("import math\ndef f():\n    return 1\nv = math.floor(2.5)", %{}, o) end,
        {:check, "math, f objects and v = 2",
         &match?({:ok, %{"math" => %Object{type: "module"}, "f" => %Object{type: "function"}, "v" => 2}}, &1)}
      ),
      c(
        "exec: return :value with an unconvertible global",
        fn o -> SnakeBridge.exec("import os\nm = os", %{}, o ++ [return: :value]) end,
        conversion_error()
      ),
      c(
        "exec: return :value with a module and a dict global",
        fn o ->
          SnakeBridge.exec("import collections\nc = dict(collections.Counter('aa'))", %{}, o ++ [return: :value])
        end
      ),
      c("exec: return :ref", fn o -> SnakeBridge.exec("y = 1", %{}, o ++ [return: :ref]) end),
      c(
        "exec: return :value with a Counter global",
        fn o ->
          SnakeBridge.exec(
            "import collections\nc = collections.Counter('aa')\ndel collections",
            %{},
            o ++ [return: :value]
          )
        end,
        {:eq, {:ok, %{"c" => %{"a" => 2}}}}
      ),
      c(
        "exec: with an unconvertible global under :auto",
        fn o -> SnakeBridge.exec("s = 'a\\ud800'\nd = {'a': 1, b'a': 2}", %{}, o) end
      ),
      c(
        "exec: an object in the globals",
        fn o ->
          f = SnakeBridge.new!("fractions", "Fraction", [1, 3], [], o)
          SnakeBridge.exec("y = f * 3\nz = f * 2", %{"f" => f}, o)
        end,
        {:check, "f and z objects, y = 1",
         &match?({:ok, %{"f" => %Object{type: "fractions.Fraction"}, "y" => %Object{}, "z" => %Object{}}}, &1)}
      ),
      c("exec: syntax error", fn o -> SnakeBridge.exec("def f(:\n  pass", %{}, o) end, python_error("SyntaxError")),
      c(
        "exec: __name__ given",
        fn o -> SnakeBridge.exec("n = __name__", %{"__name__" => "parity_mod"}, o) end,
        {:eq, {:ok, %{"__name__" => "parity_mod", "n" => "parity_mod"}}}
      ),
      # to_elixir
      c(
        "to_elixir: Counter",
        fn o -> SnakeBridge.to_elixir(SnakeBridge.call!("collections", "Counter", ["aab"], [], o), o) end,
        {:eq, {:ok, %{"a" => 2, "b" => 1}}}
      ),
      c(
        "to_elixir: nested subclasses",
        fn o ->
          SnakeBridge.to_elixir(
            SnakeBridge.eval!(
              "[__import__('collections').OrderedDict(a=(1, 2)), __import__('collections').defaultdict(list, b=[3])]",
              %{},
              o
            ),
            o
          )
        end
      ),
      c(
        "to_elixir: a list held by reference",
        fn o -> SnakeBridge.to_elixir(SnakeBridge.eval!("[1, {'a': (2, b'x')}]", %{}, o ++ [return: :ref]), o) end,
        {:eq, {:ok, [1, %{"a" => {2, "x"}}]}}
      ),
      c(
        "to_elixir: numpy array",
        fn o ->
          SnakeBridge.to_elixir(
            SnakeBridge.call!("numpy", "arange", [6], [], o) |> SnakeBridge.method!("reshape", [2, 3], [], o),
            o
          )
        end,
        {:eq, {:ok, [[0, 1, 2], [3, 4, 5]]}}
      ),
      c(
        "to_elixir: numpy float array with nan",
        fn o ->
          SnakeBridge.to_elixir(SnakeBridge.eval!("__import__('numpy').array([0.5, float('nan'), -0.0])", %{}, o), o)
        end,
        {:eq, {:ok, [0.5, :nan, negative_zero()]}}
      ),
      c(
        "to_elixir: object()",
        fn o -> SnakeBridge.to_elixir(SnakeBridge.eval!("object()", %{}, o), o) end,
        conversion_error()
      ),
      c(
        "to_elixir: lone surrogate",
        fn o -> SnakeBridge.to_elixir(SnakeBridge.eval!("'a\\ud800'", %{}, o), o) end
      ),
      c(
        "to_elixir: colliding dict",
        fn o -> SnakeBridge.to_elixir(SnakeBridge.eval!("{'a': 1, b'a': 2}", %{}, o), o) end
      ),
      c(
        "to_elixir: aware time",
        fn o ->
          SnakeBridge.to_elixir(
            SnakeBridge.eval!("__import__('datetime').time(1, tzinfo=__import__('datetime').timezone.utc)", %{}, o),
            o
          )
        end
      ),
      # describe_library
      # (Signatures show default values' reprs, which hold addresses: masked.)
      c("describe_library: json", fn o -> describe("json", o ++ [depth: 0]) end, described("json")),
      c("describe_library: fractions", fn o -> describe("fractions", o ++ [depth: 0]) end, described("fractions")),
      c("describe_library: math (C functions)", fn o -> describe("math", o) end, described("math")),
      c("describe_library: json with submodules", fn o -> describe("json", o ++ [depth: 1]) end, described("json")),
      c(
        "describe_library: missing module",
        fn o -> describe("snakebridge_no_such_module", o) end,
        python_error("ModuleNotFoundError")
      ),
      # repr / inspect
      c(
        "inspect: Fraction",
        fn o -> inspect(SnakeBridge.new!("fractions", "Fraction", [1, 3], [], o)) end,
        {:eq, "#Python<fractions.Fraction Fraction(1, 3)>"}
      ),
      c(
        "inspect: Counter",
        fn o -> inspect(SnakeBridge.call!("collections", "Counter", ["aab"], [], o)) end,
        {:eq, "#Python<collections.Counter Counter({'a': 2, 'b': 1})>"}
      ),
      c("inspect: long repr is shortened", fn o ->
        inspect(SnakeBridge.eval!("list(range(100))", %{}, o ++ [return: :ref]))
      end),
      c("inspect: unicode repr", fn o -> inspect(SnakeBridge.eval!("'héllo ✓ 😀'", %{}, o ++ [return: :ref])) end),
      c("inspect: lone surrogate", fn o -> inspect(SnakeBridge.eval!("'a\\ud800'", %{}, o)) end),
      c(
        "inspect: repr that raises",
        fn o -> inspect(SnakeBridge.eval!("type('R', (), {'__repr__': lambda s: 1/0})()", %{}, o)) end
      ),
      c(
        "repr: __repr__ method of an object",
        fn o ->
          %{"Holder" => cls} = ns(@holder, o)
          SnakeBridge.call(SnakeBridge.call!(cls, nil, [[1, "é"]], [], o), "__repr__", [], [], o)
        end,
        {:eq, {:ok, "Holder([1, 'é'])"}}
      )
    ]
  end

  defp describe(module, o) do
    case SnakeBridge.describe_library(module, o) do
      {:ok, schema} -> {:ok, SnakeBridge.Parity.mask_all(schema)}
      error -> error
    end
  end

  defp described(name),
    do:
      {:check, "a schema of #{name}",
       &(match?({:ok, %{name: ^name, classes: [_ | _] = _}}, &1) or
           match?({:ok, %{name: ^name, functions: [_ | _]}}, &1))}

  # ------------------------------------------------------------------ streams and iterators

  @generators """
  class State:
      closed = []

  def gen(label):
      try:
          i = 0
          while True:
              yield i
              i += 1
      finally:
          State.closed.append(label)

  def bad(n):
      for i in range(n):
          yield i
      raise ValueError("mid-stream ✓ %d" % n)

  def items():
      import collections
      yield collections.Counter('ab')
      yield 'a\\ud800'
      yield [1, object()]
  """

  # Consumes `stream`; returns the items seen before it ended and how it ended.
  defp consume(stream) do
    key = {__MODULE__, make_ref()}
    Process.put(key, [])

    ending =
      try do
        stream |> Stream.each(fn x -> Process.put(key, [x | Process.get(key)]) end) |> Stream.run()
        :done
      rescue
        e -> {:raised, e}
      end

    {Enum.reverse(Process.delete(key)), ending}
  end

  defp streams do
    [
      c(
        "stream: Enum.take of itertools.count",
        fn o -> SnakeBridge.stream("itertools", "count", [10], [], o) |> Enum.take(3) end,
        {:eq, [10, 11, 12]}
      ),
      c(
        "stream: whole range, several batches",
        fn o -> SnakeBridge.stream("builtins", "range", [3000], [], o) |> Enum.to_list() end,
        {:eq, Enum.to_list(0..2999)}
      ),
      c(
        "stream: kwargs",
        fn o -> SnakeBridge.stream("itertools", "repeat", ["x"], [times: 3], o) |> Enum.to_list() end,
        {:eq, ["x", "x", "x"]}
      ),
      c(
        "stream: early halt closes the generator",
        fn o ->
          %{"gen" => gen, "State" => state} = ns(@generators, o)
          taken = SnakeBridge.stream(gen, nil, ["a"], [], o) |> Enum.take(5)
          {taken, SnakeBridge.getattr(state, "closed", o)}
        end,
        {:eq, {[0, 1, 2, 3, 4], {:ok, ["a"]}}}
      ),
      c(
        "stream: exception mid-stream",
        fn o ->
          %{"bad" => bad} = ns(@generators, o)
          consume(SnakeBridge.stream(bad, nil, [3], [], o))
        end,
        {:check, "[0, 1, 2] then ValueError",
         &match?({[0, 1, 2], {:raised, %PythonError{type: "ValueError", message: "mid-stream ✓ 3"}}}, &1)}
      ),
      c(
        "stream: exception after a full batch",
        fn o ->
          %{"bad" => bad} = ns(@generators, o)
          {items, ending} = consume(SnakeBridge.stream(bad, nil, [20], [], o))
          {length(items), ending}
        end,
        {:check, "20 items then ValueError", &match?({20, {:raised, %PythonError{type: "ValueError"}}}, &1)}
      ),
      c(
        "stream: items that stay objects",
        fn o ->
          %{"items" => items} = ns(@generators, o)
          SnakeBridge.stream(items, nil, [], [], o) |> Enum.to_list()
        end
      ),
      c(
        "stream: return :ref",
        fn o -> SnakeBridge.stream("builtins", "range", [3], [], o ++ [return: :ref]) |> Enum.to_list() end,
        {:check, "three int objects", &match?([%Object{type: "int"}, %Object{type: "int"}, %Object{type: "int"}], &1)}
      ),
      c(
        "stream: return :value of objects",
        fn o ->
          %{"items" => items} = ns(@generators, o)
          consume(SnakeBridge.stream(items, nil, [], [], o ++ [return: :value]))
        end
      ),
      c(
        "stream: not iterable",
        fn o -> SnakeBridge.stream("builtins", "len", [[1, 2]], [], o) |> Enum.to_list() end,
        raised_python("TypeError")
      ),
      c(
        "stream: missing function",
        fn o -> SnakeBridge.stream("itertools", "nope", [], [], o) |> Enum.to_list() end,
        raised_python("AttributeError")
      ),
      c(
        "stream: unconvertible argument",
        fn o -> SnakeBridge.stream("builtins", "iter", [[<<1::3>>]], [], o) |> Enum.to_list() end
      ),
      c(
        "iter: list held by reference",
        fn o ->
          SnakeBridge.iter(SnakeBridge.eval!("[1, 'a', (2,)]", %{}, o ++ [return: :ref]), o) |> Enum.to_list()
        end,
        {:eq, [1, "a", {2}]}
      ),
      c(
        "iter: dict iterates keys",
        fn o ->
          SnakeBridge.iter(SnakeBridge.eval!("{'a': 1, 'b': 2}", %{}, o ++ [return: :ref]), o) |> Enum.to_list()
        end,
        {:eq, ["a", "b"]}
      ),
      c(
        "iter: Enum.take of an infinite iterator",
        fn o -> SnakeBridge.iter(SnakeBridge.call!("itertools", "count", [], [], o), o) |> Enum.take(4) end,
        {:eq, [0, 1, 2, 3]}
      ),
      c(
        "iter: early halt closes a generator object",
        fn o ->
          %{"gen" => gen, "State" => state} = ns(@generators, o)
          g = SnakeBridge.call!(gen, nil, ["b"], [], o)
          taken = SnakeBridge.iter(g, o) |> Enum.take(2)

          {taken, SnakeBridge.call("builtins", "next", [g, "exhausted"], [], o),
           SnakeBridge.getattr(state, "closed", o)}
        end,
        {:eq, {[0, 1], {:ok, "exhausted"}, {:ok, ["b"]}}}
      ),
      c(
        "iter: exception mid-iteration",
        fn o ->
          %{"bad" => bad} = ns(@generators, o)
          consume(SnakeBridge.iter(SnakeBridge.call!(bad, nil, [2], [], o), o))
        end,
        {:check, "[0, 1] then ValueError", &match?({[0, 1], {:raised, %PythonError{type: "ValueError"}}}, &1)}
      ),
      c(
        "iter: sqlite cursor rows",
        fn o ->
          conn = SnakeBridge.call!("sqlite3", "connect", [":memory:"], [], o)

          cur =
            SnakeBridge.method!(
              conn,
              "execute",
              ["select 1, 'a', x'ff', 2.5, null union all select 2, 'b', x'00', 0.5, null"],
              [],
              o
            )

          SnakeBridge.iter(cur, o) |> Enum.to_list()
        end,
        {:eq, [{1, "a", <<255>>, 2.5, nil}, {2, "b", <<0>>, 0.5, nil}]}
      ),
      c(
        "iter: set of strings",
        fn o -> SnakeBridge.iter(SnakeBridge.eval!("set('abcdef')", %{}, o ++ [return: :ref]), o) |> Enum.sort() end,
        {:eq, ["a", "b", "c", "d", "e", "f"]}
      ),
      c(
        "iter: not iterable",
        fn o -> SnakeBridge.iter(SnakeBridge.eval!("object()", %{}, o), o) |> Enum.to_list() end,
        raised_python("TypeError")
      ),
      c(
        "iter: return :value",
        fn o ->
          SnakeBridge.iter(
            SnakeBridge.eval!("[__import__('collections').Counter('a'), (1, 2)]", %{}, o ++ [return: :ref]),
            o ++ [return: :value]
          )
          |> Enum.to_list()
        end,
        {:eq, [%{"a" => 1}, {1, 2}]}
      )
    ]
  end

  # ------------------------------------------------------------------ errors

  @exceptions """
  class MyError(Exception):
      pass

  class Outer:
      class Inner(Exception):
          pass

  class WithArgs(Exception):
      def __init__(self, a, b):
          super().__init__(a, b)

  class BadStr(Exception):
      def __str__(self):
          raise RuntimeError("no str")

  def raise_custom(msg):
      raise MyError(msg)

  def raise_nested():
      raise Outer.Inner('deep')

  def raise_args():
      raise WithArgs(1, 'two')

  def raise_bad_str():
      raise BadStr()

  def chained():
      try:
          1 / 0
      except ZeroDivisionError as e:
          raise RuntimeError('wrapped') from e
  """

  defp errors do
    dead = spawn(fn -> :ok end)
    ref = make_ref()
    other_ref = make_ref()
    fun = fn x -> x end
    port = hd(Port.list())

    unconvertible = [
      {"bitstring", <<1::3>>, "bitstring"},
      {"improper list", [1 | 2], "improper list"},
      {"unknown struct", %URI{host: "x"}, "URI"},
      {"Version struct", Version.parse!("1.2.3"), "Version"},
      {"bitstring deep inside", [1, %{"k" => {2, [<<1::1>>]}}], "bitstring"}
    ]

    # Held by Python as they are, and back as the same terms.
    held = [
      {"pid", self()},
      {"dead pid", dead},
      {"reference", ref},
      {"anonymous function", fun},
      {"captured function", &String.upcase/1},
      {"port", port},
      {"pid deep inside", [1, %{"k" => {2, [self()]}}]},
      {"fun as map key", %{fun => 1}},
      {"ref in MapSet", MapSet.new([ref])}
    ]

    [
      c(
        "error: ValueError with unicode message",
        fn o -> SnakeBridge.exec("raise ValueError('héllo ✓ 日本語 😀')", %{}, o) end,
        {:check, "ValueError with the message",
         &match?({:error, %PythonError{type: "ValueError", message: "héllo ✓ 日本語 😀"}}, &1)}
      ),
      c("error: message with a lone surrogate", fn o -> SnakeBridge.exec("raise ValueError('a\\ud800')", %{}, o) end),
      c(
        "error: ZeroDivisionError from eval",
        fn o -> SnakeBridge.eval("1 / 0", %{}, o) end,
        python_error("ZeroDivisionError")
      ),
      c(
        "error: JSONDecodeError (module-qualified type)",
        fn o -> SnakeBridge.call("json", "loads", ["{bad"], [], o) end,
        {:check, "json.decoder.JSONDecodeError",
         &match?({:error, %PythonError{type: "JSONDecodeError", python_type: "json.decoder.JSONDecodeError"}}, &1)}
      ),
      c("error: KeyError message", fn o -> SnakeBridge.eval("{}['k']", %{}, o) end, python_error("KeyError")),
      c(
        "error: custom exception class",
        fn o -> SnakeBridge.call(ns(@exceptions, o)["raise_custom"], nil, ["custom ✓"], [], o) end,
        {:check, "MyError", &match?({:error, %PythonError{type: "MyError", message: "custom ✓"}}, &1)}
      ),
      c(
        "error: custom exception from exec with __name__",
        fn o ->
          SnakeBridge.exec("class E(Exception):\n    pass\nraise E('x')", %{"__name__" => "parity_errors"}, o)
        end,
        {:check, "parity_errors.E", &match?({:error, %PythonError{type: "E", python_type: "parity_errors.E"}}, &1)}
      ),
      c("error: nested exception class", fn o ->
        SnakeBridge.call(ns(@exceptions, o)["raise_nested"], nil, [], [], o)
      end),
      c("error: exception with several args", fn o ->
        SnakeBridge.call(ns(@exceptions, o)["raise_args"], nil, [], [], o)
      end),
      c("error: exception whose str raises", fn o ->
        SnakeBridge.call(ns(@exceptions, o)["raise_bad_str"], nil, [], [], o)
      end),
      c(
        "error: chained exception",
        fn o -> SnakeBridge.call(ns(@exceptions, o)["chained"], nil, [], [], o) end,
        {:check, "RuntimeError wrapped", &match?({:error, %PythonError{type: "RuntimeError", message: "wrapped"}}, &1)}
      ),
      c("error: SystemExit", fn o -> SnakeBridge.eval("(_ for _ in ()).throw(SystemExit(3))", %{}, o) end),
      c("error: StopIteration from call", fn o ->
        SnakeBridge.call("builtins", "next", [SnakeBridge.call!("builtins", "iter", [[]], [], o)], [], o)
      end),
      c(
        "error: missing module",
        fn o -> SnakeBridge.call("snakebridge_no_such_module", "f", [], [], o) end,
        python_error("ModuleNotFoundError")
      ),
      c(
        "error: missing module in getattr",
        fn o -> SnakeBridge.getattr("snakebridge_no_such_module", "x", o) end,
        python_error("ModuleNotFoundError")
      ),
      c(
        "error: missing attribute",
        fn o -> SnakeBridge.call("math", "no_such_function", [], [], o) end,
        python_error("AttributeError")
      ),
      c(
        "error: missing dotted attribute",
        fn o -> SnakeBridge.getattr("sys", "version_info.nope", o) end,
        python_error("AttributeError")
      ),
      c(
        "error: calling a non-callable",
        fn o -> SnakeBridge.call("math", "pi", [], [], o) end,
        python_error("TypeError")
      ),
      for {label, term, fragment} <- unconvertible do
        c("unconvertible: " <> label, fn o -> rt(term, o) end, all_argument_errors(fragment))
      end,
      for {label, term} <- held do
        c(
          "held: " <> label,
          fn o -> rt(term, o) end,
          {:eq, %{eval: {:ok, term}, call: {:ok, {term}}, kwarg: {:ok, %{"v" => term}}}}
        )
      end,
      c(
        "held: pid as eval global",
        fn o -> SnakeBridge.eval("type(p).__name__", %{"p" => self()}, o) end,
        {:eq, {:ok, "Pid"}}
      ),
      c(
        "held: pid in keyword list kwargs",
        fn o -> SnakeBridge.call("builtins", "dict", [], [k: [1, self()]], o) end,
        {:eq, {:ok, %{"k" => [1, self()]}}}
      ),
      c(
        "held: method argument",
        fn o ->
          list = SnakeBridge.eval!("[]", %{}, o ++ [return: :ref])
          SnakeBridge.method!(list, "append", [other_ref], [], o)
          SnakeBridge.to_elixir(list, o)
        end,
        {:eq, {:ok, [other_ref]}}
      ),
      c(
        "collision: 1 and 1.0",
        fn o -> rt(%{1 => :a, 1.0 => :b}, o) end,
        all_argument_errors("equal in Python")
      ),
      c("collision: \"a\" and :a", fn o -> rt(%{"a" => 1, a: 2}, o) end, all_argument_errors("equal in Python")),
      c("collision: 0 and false", fn o -> rt(%{0 => 1, false => 2}, o) end, all_argument_errors("equal in Python")),
      c(
        "collision: 1 and true in a MapSet",
        fn o -> rt(MapSet.new([1, true]), o) end,
        all_argument_errors("equal in Python")
      ),
      c(
        "collision: 0 and -0.0",
        fn o -> rt(%{0 => 1, negative_zero() => 2}, o) end,
        all_argument_errors("equal in Python")
      ),
      c(
        "collision: [1] and {1} keys",
        fn o -> rt(%{[1] => 1, {1} => 2}, o) end,
        all_argument_errors("equal in Python")
      ),
      c(
        "collision: nested in a list",
        fn o -> rt([1, %{"k" => MapSet.new([2, 2.0])}], o) end,
        all_argument_errors("equal in Python")
      ),
      c("collision: :nan keys are distinct", fn o -> rt(MapSet.new([:nan, 1]), o) end, rt_ok(MapSet.new([:nan, 1]))),
      c("unhashable: map as map key", fn o -> rt(%{%{} => 1}, o) end, all_argument_errors("unhashable")),
      c("unhashable: map in MapSet", fn o -> rt(MapSet.new([%{"a" => 1}]), o) end, all_argument_errors("unhashable")),
      c(
        "unhashable: map inside a tuple key",
        fn o -> rt(%{{1, %{}} => 1}, o) end,
        all_argument_errors("unhashable")
      ),
      c(
        "unhashable: Python object used as a key",
        fn o ->
          l = SnakeBridge.eval!("[1]", %{}, o ++ [return: :ref])
          SnakeBridge.eval("1", %{"x" => %{l => 1}}, o)
        end
      )
    ]
  end

  # ------------------------------------------------------------------ nesting depth

  defp deep_result(n), do: "(lambda: [l := 0] and [l := [l] for _ in range(#{n})] and l)()"
  defp deep_dict(n), do: "(lambda: [d := 0] and [d := {'k': d} for _ in range(#{n})] and d)()"

  defp depth do
    short = [timeout: 5_000]

    [
      c(
        "depth: result nested 999 deep",
        fn o -> SnakeBridge.eval(deep_result(999), %{}, o) end,
        {:eq, {:ok, nest(999)}}
      ),
      c(
        "depth: result nested 1000 deep",
        fn o -> SnakeBridge.eval(deep_result(1000), %{}, o) end,
        {:eq, {:ok, nest(1000)}}
      ),
      c(
        "depth: result nested 1001 deep",
        fn o -> SnakeBridge.eval(deep_result(1001), %{}, o) end,
        {:check, "an object in the deep part",
         fn {:ok, v} ->
           {d, leaf} = unnest(v)
           d >= 1000 and match?(%Object{}, leaf)
         end}
      ),
      c("depth: result nested 1100 deep", fn o -> SnakeBridge.eval(deep_result(1100), %{}, o) end),
      c("depth: dict result nested 1001 deep", fn o -> SnakeBridge.eval(deep_dict(1001), %{}, o) end),
      c("depth: result nested 1001 deep, return :value", fn o ->
        SnakeBridge.eval(deep_result(1001), %{}, o ++ [return: :value])
      end),
      c(
        "depth: to_elixir of a result nested 1001 deep",
        fn o -> SnakeBridge.to_elixir(SnakeBridge.eval!(deep_result(1001), %{}, o ++ [return: :ref]), o) end
      ),
      for n <- [1023, 1024, 1025] do
        [
          c("depth: eval global nested #{n} deep", fn o -> SnakeBridge.eval("0", %{"x" => nest(n)}, o ++ short) end),
          c("depth: call argument nested #{n} deep", fn o ->
            SnakeBridge.call("builtins", "id", [nest(n)], [], o ++ short) |> ok_or_error()
          end),
          c("depth: map argument nested #{n} deep", fn o ->
            SnakeBridge.call("builtins", "len", [deep_map(n)], [], o ++ short)
          end)
        ]
      end,
      c(
        "depth: argument nested 1025 deep is refused",
        fn o -> SnakeBridge.eval("0", %{"x" => nest(1025)}, o ++ short) end,
        argument_error("nested more than 1024 levels")
      ),
      c(
        "depth: argument nested 1023 deep round-trips to the result limit",
        fn o -> SnakeBridge.eval("x", %{"x" => nest(1023)}, o ++ short) end
      )
    ]
  end

  defp deep_map(0), do: 0
  defp deep_map(n), do: %{"k" => deep_map(n - 1)}

  # id() is an address: keep only whether it succeeded.
  defp ok_or_error({:ok, n}) when is_integer(n), do: :ok
  defp ok_or_error(other), do: other
end

defmodule SnakeBridge.ParityTest do
  # One corpus of requests (SnakeBridge.Parity.Corpus), run on the in-process
  # backend and on the port-worker pool: the normalised results must be
  # identical (docs/architecture.md, "One semantics, two wires"), and where the contract
  # states a value, both must give it.
  #
  # Not async: the corpus makes pool requests that hang until their timeout and
  # may get a worker restarted; running alone keeps that from reaching other
  # tests' pool calls, and theirs from reaching ours.
  use ExUnit.Case, async: false

  alias SnakeBridge.Parity
  alias SnakeBridge.Parity.Corpus

  @moduletag :parity
  @moduletag timeout: 60_000

  for name <- Corpus.names() do
    @name name
    test "parity: #{name}" do
      {name, run, expect} = Corpus.fetch!(@name)

      nif = Parity.capture(fn -> run.(Parity.opts(:nif)) end)
      pool = Parity.capture(fn -> run.(Parity.opts(:pool)) end)
      n = Parity.normalise(nif)
      p = Parity.normalise(pool)

      assert n === p, "the backends differ on #{inspect(name)}\n" <> Parity.explain(n, p)

      check_expectation(expect, nif: nif, pool: pool)
    end
  end

  defp check_expectation(nil, _results), do: :ok

  defp check_expectation({:eq, expected}, results) do
    want = Parity.normalise(expected)

    for {backend, result} <- results do
      got = Parity.normalise(result)

      assert got === want, """
      #{backend} does not give the contract's value
      expected: #{Parity.show(want)}
      got:      #{Parity.show(got)}
      first differences (expected, got): #{inspect(Parity.diff(want, got, 3), limit: 20, printable_limit: 200)}
      """
    end
  end

  defp check_expectation({:check, description, fun}, results) do
    for {backend, result} <- results do
      ok =
        try do
          fun.(result)
        rescue
          _ -> false
        end

      assert ok, "#{backend} result is not #{description}: #{Parity.show(result)}"
    end
  end
end
