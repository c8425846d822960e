defmodule SnakeBridge.TypesTest do
  # The type mapping table (DESIGN.md §3, docs/type_mapping.md), row by row, in
  # both directions: what Python receives for an Elixir value (checked by asking
  # Python about it), and what comes back from a Python identity function.
  use ExUnit.Case, async: true

  alias SnakeBridge.Object

  # Sends a value through a Python identity function.
  defp identity(value), do: SnakeBridge.eval("x", %{"x" => value})

  # Python's name for the type of what it received.
  defp py_type(value) do
    type = SnakeBridge.call!("builtins", "type", [value])
    SnakeBridge.getattr!(type, "__name__")
  end

  defp py(expr, vars), do: SnakeBridge.eval!(expr, vars)

  describe "nil, booleans, atoms" do
    test "nil/true/false are None/True/False and come back unchanged" do
      assert py_type(nil) == "NoneType"
      assert py_type(true) == "bool"
      assert py_type(false) == "bool"
      assert py("x is None", %{"x" => nil})
      assert py("x is True", %{"x" => true})
      assert py("x is False", %{"x" => false})

      for v <- [nil, true, false], do: assert(identity(v) == {:ok, v})
    end

    test "other atoms become str (and come back as binaries)" do
      assert py_type(:hello) == "str"
      assert py("x == 'hello'", %{"x" => :hello})
      assert identity(:hello) == {:ok, "hello"}
      assert identity(:"with space") == {:ok, "with space"}
      assert identity(Elixir.Enum) == {:ok, "Elixir.Enum"}
    end
  end

  describe "integers" do
    test "big integers cross exactly both ways" do
      for n <- [
            2 ** 200,
            -(2 ** 200),
            0,
            1,
            -1,
            2 ** 63 - 1,
            2 ** 63,
            2 ** 64 - 1,
            2 ** 64,
            -(2 ** 63),
            -(2 ** 63) - 1
          ] do
        assert py_type(n) == "int"
        assert identity(n) == {:ok, n}
        # Python's own arithmetic on it agrees with Elixir's
        assert py("x * 3 + 1", %{"x" => n}) == n * 3 + 1
        assert py("str(x)", %{"x" => n}) == Integer.to_string(n)
      end
    end

    test "Python-computed big integers arrive exact" do
      assert py("2 ** 200", %{}) == 2 ** 200
      assert py("-(2 ** 200)", %{}) == -(2 ** 200)
      assert py("2 ** 200 // 3", %{}) == div(2 ** 200, 3)
    end
  end

  describe "floats" do
    test "floats cross exactly, including extremes and the sign of zero" do
      for f <- [1.5, -2.25, 0.1, 1.0e308, 5.0e-324, -0.0, 123_456.789] do
        assert py_type(f) == "float"
        assert identity(f) == {:ok, f}
        assert {^f, ""} = py("repr(x)", %{"x" => f}) |> Float.parse()
      end

      # -0.0 == 0.0 in Elixir, so check the sign on the Python side
      assert py("math.copysign(1.0, x)", %{
               "x" => -0.0,
               "math" => SnakeBridge.call!("importlib", "import_module", ["math"])
             }) ==
               -1.0
    end

    test ":infinity, :neg_infinity and :nan are float inf, -inf and nan" do
      math = SnakeBridge.call!("importlib", "import_module", ["math"])

      assert py("type(x) is float and math.isinf(x) and x > 0", %{
               "x" => :infinity,
               "math" => math
             })

      assert py("type(x) is float and math.isinf(x) and x < 0", %{
               "x" => :neg_infinity,
               "math" => math
             })

      assert py("type(x) is float and math.isnan(x)", %{"x" => :nan, "math" => math})

      for v <- [:infinity, :neg_infinity, :nan], do: assert(identity(v) == {:ok, v})

      assert py("float('inf')", %{}) == :infinity
      assert py("-float('inf')", %{}) == :neg_infinity
      assert py("float('nan')", %{}) == :nan
    end
  end

  describe "binaries" do
    test "a UTF-8 binary is str" do
      for s <- ["", "hello", "héllo ✓ 日本 🐍", "a\0b"] do
        assert py_type(s) == "str"
        assert identity(s) == {:ok, s}
        assert py("len(x)", %{"x" => s}) == String.length(s)
      end
    end

    test "a binary that is not UTF-8 is bytes" do
      for b <- [<<255>>, <<0, 255, 128>>, <<0xC3>>] do
        assert py_type(b) == "bytes"
        assert identity(b) == {:ok, b}
        assert py("list(x)", %{"x" => b}) == :binary.bin_to_list(b)
      end
    end

    test "SnakeBridge.bytes/1 forces bytes, and comes back as a plain binary" do
      assert py_type(SnakeBridge.bytes("abc")) == "bytes"
      assert py("x == b'abc'", %{"x" => SnakeBridge.bytes("abc")})
      assert identity(SnakeBridge.bytes("abc")) == {:ok, "abc"}
      assert py("type(x[0]).__name__", %{"x" => [SnakeBridge.bytes("")]}) == "bytes"

      # as a dict key too
      assert py("[type(k).__name__ for k in x]", %{"x" => %{SnakeBridge.bytes("k") => 1}}) == [
               "bytes"
             ]
    end

    test "bytes, bytearray and memoryview come back as binaries" do
      assert py("b'\\x00\\xffab'", %{}) == <<0, 255, ?a, ?b>>
      assert py("bytearray(b'xyz')", %{}) == "xyz"
      assert py("memoryview(b'hello')", %{}) == "hello"
      assert py("memoryview(b'hello')[1:3]", %{}) == "el"
      # a Python-built large bytes object (shared, not copied, on the way back)
      expected = :binary.copy(:binary.list_to_bin(Enum.to_list(0..255)), 64)
      assert py("bytes(range(256)) * 64", %{}) == expected
    end

    test "a non-contiguous memoryview comes back as a binary like bytes(view)" do
      view = "memoryview(b'abcdef')[::2]"
      expected = py("bytes(#{view})", %{})
      assert expected == "ace"
      assert py(view, %{}) == expected
    end

    test "a 1 MiB binary round-trips as bytes" do
      big = :crypto.strong_rand_bytes(1024 * 1024)
      # random bytes are (overwhelmingly likely) not UTF-8; force bytes anyway
      assert py_type(SnakeBridge.bytes(big)) == "bytes"
      assert identity(SnakeBridge.bytes(big)) == {:ok, big}
      assert py("len(x)", %{"x" => SnakeBridge.bytes(big)}) == byte_size(big)

      assert py("__import__('hashlib').sha256(x).hexdigest()", %{"x" => SnakeBridge.bytes(big)}) ==
               Base.encode16(:crypto.hash(:sha256, big), case: :lower)
    end
  end

  describe "lists, tuples, maps, sets" do
    test "lists and tuples, nested" do
      value = [1, [2, {3, "a", [nil, {}]}], {}, []]
      assert py_type([]) == "list"
      assert py_type({}) == "tuple"
      assert py("type(x[1][1]).__name__", %{"x" => value}) == "tuple"
      assert identity(value) == {:ok, value}
      assert identity({1, 2.0, "three", nil, [4]}) == {:ok, {1, 2.0, "three", nil, [4]}}
      assert py("tuple(x)", %{"x" => [1, 2]}) == {1, 2}
      assert py("list(x)", %{"x" => {1, 2}}) == [1, 2]
    end

    test "a keyword list is a list of 2-tuples" do
      assert identity(a: 1, b: 2) == {:ok, [{"a", 1}, {"b", 2}]}
    end

    test "a 10,000 integer list round-trips" do
      list = Enum.to_list(1..10_000)
      assert identity(list) == {:ok, list}
      assert py("sum(x)", %{"x" => list}) == Enum.sum(list)
    end

    test "maps are dicts; keys of any convertible type" do
      map = %{1 => "int", {1, 2} => "tuple", nil => "none", "s" => [1], 2.5 => :x, false => true}
      assert py_type(map) == "dict"

      assert py("sorted(type(k).__name__ for k in x)", %{"x" => map}) ==
               Enum.sort(["int", "tuple", "NoneType", "str", "float", "bool"])

      assert py("x[(1, 2)]", %{"x" => map}) == "tuple"
      assert py("x[None]", %{"x" => map}) == "none"
      assert identity(map) == {:ok, %{map | 2.5 => "x"}}
      assert identity(%{}) == {:ok, %{}}
      # atom keys become str keys
      assert identity(%{a: 1, b: %{c: 2}}) == {:ok, %{"a" => 1, "b" => %{"c" => 2}}}
    end

    test "MapSet is a set; as a dict key or set element a frozenset" do
      set = MapSet.new([1, "a", {2, 3}])
      assert py_type(set) == "set"
      assert py("sorted(map(repr, x))", %{"x" => set}) == Enum.sort(["1", "'a'", "(2, 3)"])
      assert identity(set) == {:ok, set}
      assert identity(MapSet.new()) == {:ok, MapSet.new()}

      key = %{MapSet.new([1, 2]) => "v"}
      assert py("[type(k).__name__ for k in x]", %{"x" => key}) == ["frozenset"]
      assert identity(key) == {:ok, key}

      nested = MapSet.new([MapSet.new([1])])
      assert py("[type(e).__name__ for e in x]", %{"x" => nested}) == ["frozenset"]
      assert identity(nested) == {:ok, nested}

      assert py("frozenset([1, 2])", %{}) == MapSet.new([1, 2])
    end

    test "a list used as a dict key becomes a tuple (documented lossy case)" do
      assert py("[type(k).__name__ for k in x]", %{"x" => %{[1, 2] => 3}}) == ["tuple"]
      assert identity(%{[1, 2] => 3}) == {:ok, %{{1, 2} => 3}}
      assert identity(MapSet.new([[1]])) == {:ok, MapSet.new([{1}])}
    end

    test "a dict whose keys would collide in Elixir stays an object" do
      assert %Object{type: "dict"} = d = py("{'a': 1, b'a': 2}", %{})
      assert SnakeBridge.call!("builtins", "len", [d]) == 2
    end

    test "a container with an unconvertible item converts partially" do
      result = py("{'n': 1, 'obj': object(), 'list': [2, object()]}", %{})

      assert %{"n" => 1, "obj" => %Object{type: "object"}, "list" => [2, %Object{type: "object"}]} = result

      # the embedded reference is a live object
      assert SnakeBridge.call!("builtins", "isinstance", [
               result["obj"],
               SnakeBridge.getattr!("builtins", "object")
             ])

      fraction = SnakeBridge.getattr!("fractions", "Fraction")
      assert [1, %Object{type: "fractions.Fraction"} = f] = py("[1, F(1, 2)]", %{"F" => fraction})
      assert SnakeBridge.getattr!(f, "denominator") == 2
    end

    test "a str with a lone surrogate has no UTF-8 form and stays an object" do
      assert %Object{type: "str"} = s = py("'a\\ud800'", %{})
      assert SnakeBridge.call!("builtins", "len", [s]) == 2
    end

    test "results nested deeper than the conversion limit keep objects for the deep part" do
      deep = py("(lambda: [l := [0]] and [l := [l] for _ in range(1100)] and l)()", %{})
      # descend through converted levels until a reference is met
      {depth, leaf} = descend(deep, 0)
      assert %Object{type: "list"} = leaf
      assert depth >= 900
    end
  end

  defp descend([inner], n), do: descend(inner, n + 1)
  defp descend(other, n), do: {n, other}

  describe "calendar types" do
    test "Date, NaiveDateTime and DateTime (Etc/UTC) round-trip" do
      for v <- [
            ~D[2024-02-29],
            ~D[0001-01-01],
            ~D[9999-12-31],
            ~N[2020-01-02 03:04:05.123456],
            ~N[2020-01-02 03:04:05],
            ~U[2020-01-01 00:00:00Z],
            ~U[2024-06-30 23:59:59.999999Z]
          ] do
        assert identity(v) == {:ok, v}
      end

      now = DateTime.utc_now()
      assert identity(now) == {:ok, now}

      assert py_type(~D[2024-02-29]) == "date"
      assert py_type(~T[10:00:00]) == "time"
      assert py_type(~N[2024-02-29 10:00:00]) == "datetime"
      assert py("x.tzinfo is None", %{"x" => ~N[2024-02-29 10:00:00]})
      assert py("x.utcoffset().total_seconds()", %{"x" => ~U[2024-02-29 10:00:00Z]}) == 0.0

      assert py("x.isoformat()", %{"x" => ~N[2024-02-29 10:11:12.000013]}) ==
               "2024-02-29T10:11:12.000013"

      assert py("(x.year, x.month, x.day)", %{"x" => ~D[2024-02-29]}) == {2024, 2, 29}
    end

    test "Time round-trips; precision is 0 for zero microseconds and 6 otherwise" do
      assert identity(~T[10:00:00]) == {:ok, ~T[10:00:00]}
      assert {:ok, %Time{microsecond: {0, 0}}} = identity(~T[10:00:00.000])
      assert {:ok, %Time{microsecond: {120_000, 6}} = t} = identity(~T[10:00:00.120])
      assert Time.compare(t, ~T[10:00:00.120]) == :eq
      assert identity(~T[23:59:59.999999]) == {:ok, ~T[23:59:59.999999]}

      assert py("(x.hour, x.minute, x.second, x.microsecond)", %{"x" => ~T[01:02:03.000004]}) ==
               {1, 2, 3, 4}
    end

    test "an aware datetime with a fixed non-UTC offset from Python" do
      datetime = SnakeBridge.call!("importlib", "import_module", ["datetime"])

      dt =
        py(
          "datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))",
          %{"datetime" => datetime}
        )

      assert %DateTime{
               utc_offset: 7200,
               std_offset: 0,
               year: 2020,
               month: 1,
               day: 2,
               hour: 3,
               minute: 4,
               second: 5,
               microsecond: {6, 6}
             } = dt

      # the same instant: microseconds since the epoch, computed by Python exactly
      epoch_us =
        py(
          "(x - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // datetime.timedelta(microseconds=1)",
          %{"x" => dt, "datetime" => datetime}
        )

      assert DateTime.to_unix(dt, :microsecond) == epoch_us

      # and it goes back in as the same instant with the same offset
      assert py("x.utcoffset().total_seconds()", %{"x" => dt}) == 7200.0
      assert py("x == y", %{"x" => dt, "y" => DateTime.shift_zone!(dt, "Etc/UTC")})
    end

    test "a ZoneInfo datetime carries the zone key and the DST split" do
      datetime = SnakeBridge.call!("importlib", "import_module", ["datetime"])
      zoneinfo = SnakeBridge.call!("importlib", "import_module", ["zoneinfo"])
      vars = %{"datetime" => datetime, "zoneinfo" => zoneinfo}

      summer = py("datetime.datetime(2020, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))", vars)

      offsets =
        py(
          "(x.utcoffset().total_seconds(), x.dst().total_seconds(), x.tzname())",
          Map.put(vars, "x", summer)
        )

      {utc_offset, dst, abbr} = offsets

      assert %DateTime{time_zone: "Europe/Paris"} = summer
      assert summer.utc_offset + summer.std_offset == trunc(utc_offset)
      assert summer.std_offset == trunc(dst)
      assert summer.zone_abbr == abbr
      assert identity(summer) == {:ok, summer}

      # the repeated hour at the end of DST: fold picks the second (standard) one
      second =
        py(
          "datetime.datetime(2020, 10, 25, 2, 30, fold=1, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))",
          vars
        )

      first =
        py(
          "datetime.datetime(2020, 10, 25, 2, 30, fold=0, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))",
          vars
        )

      assert DateTime.diff(second, first) == 3600
      assert identity(second) == {:ok, second}
      assert identity(first) == {:ok, first}
      assert py("x.fold", %{"x" => second}) == 1
      assert py("x.fold", %{"x" => first}) == 0
    end

    test "calendar values nested in containers" do
      value = %{"when" => [~D[2024-01-01], {~T[12:00:00], ~N[2024-01-01 12:00:00]}]}
      assert identity(value) == {:ok, value}
    end
  end

  test "Objects cross back as themselves inside containers" do
    f = SnakeBridge.new!("fractions", "Fraction", [1, 2])
    assert py("x[0] is x[1]['f']", %{"x" => [f, %{"f" => f}]})
    assert py("type(x).__name__", %{"x" => f}) == "Fraction"
  end
end
