defmodule SnakeBridge.TypesTest do
  # The type mapping table (docs/type_mapping.md), row by row, in
  # both directions: what Python receives for an Elixir value (checked by asking
  # Python about it), and what comes back from a Python identity function.
  use ExUnit.Case, async: true

  alias SnakeBridge.{Object, TestBackends}

  # Sends a value through a Python identity function.
  defp identity(value, backend), do: SnakeBridge.eval("x", %{"x" => value}, backend: backend)

  # Python's name for the type of what it received.
  defp py_type(value, backend) do
    type = SnakeBridge.call!("builtins", "type", [value], [], backend: backend)
    SnakeBridge.getattr!(type, "__name__")
  end

  defp py(expr, vars, backend), do: SnakeBridge.eval!(expr, vars, backend: backend)

  defp descend([inner], n), do: descend(inner, n + 1)
  defp descend(other, n), do: {n, other}

  for backend <- TestBackends.all() do
    describe "nil, booleans, atoms (#{TestBackends.name(backend)})" do
      @backend backend

      test "nil/true/false are None/True/False and come back unchanged" do
        assert py_type(nil, @backend) == "NoneType"
        assert py_type(true, @backend) == "bool"
        assert py_type(false, @backend) == "bool"
        assert py("x is None", %{"x" => nil}, @backend)
        assert py("x is True", %{"x" => true}, @backend)
        assert py("x is False", %{"x" => false}, @backend)

        for v <- [nil, true, false], do: assert(identity(v, @backend) == {:ok, v})
      end

      test "other atoms become str (and come back as binaries)" do
        assert py_type(:hello, @backend) == "str"
        assert py("x == 'hello'", %{"x" => :hello}, @backend)
        assert identity(:hello, @backend) == {:ok, "hello"}
        assert identity(:"with space", @backend) == {:ok, "with space"}
        assert identity(Elixir.Enum, @backend) == {:ok, "Elixir.Enum"}
      end
    end

    describe "integers (#{TestBackends.name(backend)})" do
      @backend backend

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
          assert py_type(n, @backend) == "int"
          assert identity(n, @backend) == {:ok, n}
          # Python's own arithmetic on it agrees with Elixir's
          assert py("x * 3 + 1", %{"x" => n}, @backend) == n * 3 + 1
          assert py("str(x)", %{"x" => n}, @backend) == Integer.to_string(n)
        end
      end

      test "Python-computed big integers arrive exact" do
        assert py("2 ** 200", %{}, @backend) == 2 ** 200
        assert py("-(2 ** 200)", %{}, @backend) == -(2 ** 200)
        assert py("2 ** 200 // 3", %{}, @backend) == div(2 ** 200, 3)
      end
    end

    describe "floats (#{TestBackends.name(backend)})" do
      @backend backend

      test "floats cross exactly, including extremes and the sign of zero" do
        for f <- [1.5, -2.25, 0.1, 1.0e308, 5.0e-324, -0.0, 123_456.789] do
          assert py_type(f, @backend) == "float"
          assert identity(f, @backend) == {:ok, f}
          assert {^f, ""} = py("repr(x)", %{"x" => f}, @backend) |> Float.parse()
        end

        # -0.0 == 0.0 in Elixir, so check the sign on the Python side
        assert py(
                 "math.copysign(1.0, x)",
                 %{
                   "x" => -0.0,
                   "math" => SnakeBridge.call!("importlib", "import_module", ["math"], [], backend: @backend)
                 },
                 @backend
               ) ==
                 -1.0
      end

      test ":infinity, :neg_infinity and :nan are float inf, -inf and nan" do
        math = SnakeBridge.call!("importlib", "import_module", ["math"], [], backend: @backend)

        assert py(
                 "type(x) is float and math.isinf(x) and x > 0",
                 %{
                   "x" => :infinity,
                   "math" => math
                 },
                 @backend
               )

        assert py(
                 "type(x) is float and math.isinf(x) and x < 0",
                 %{
                   "x" => :neg_infinity,
                   "math" => math
                 },
                 @backend
               )

        assert py("type(x) is float and math.isnan(x)", %{"x" => :nan, "math" => math}, @backend)

        for v <- [:infinity, :neg_infinity, :nan], do: assert(identity(v, @backend) == {:ok, v})

        assert py("float('inf')", %{}, @backend) == :infinity
        assert py("-float('inf')", %{}, @backend) == :neg_infinity
        assert py("float('nan')", %{}, @backend) == :nan
      end
    end

    describe "binaries (#{TestBackends.name(backend)})" do
      @backend backend

      test "a UTF-8 binary is str" do
        for s <- ["", "hello", "héllo ✓ 日本 🐍", "a\0b"] do
          assert py_type(s, @backend) == "str"
          assert identity(s, @backend) == {:ok, s}
          assert py("len(x)", %{"x" => s}, @backend) == String.length(s)
        end
      end

      test "a binary that is not UTF-8 is bytes" do
        for b <- [<<255>>, <<0, 255, 128>>, <<0xC3>>] do
          assert py_type(b, @backend) == "bytes"
          assert identity(b, @backend) == {:ok, b}
          assert py("list(x)", %{"x" => b}, @backend) == :binary.bin_to_list(b)
        end
      end

      test "SnakeBridge.bytes/1 forces bytes, and comes back as a plain binary" do
        assert py_type(SnakeBridge.bytes("abc"), @backend) == "bytes"
        assert py("x == b'abc'", %{"x" => SnakeBridge.bytes("abc")}, @backend)
        assert identity(SnakeBridge.bytes("abc"), @backend) == {:ok, "abc"}
        assert py("type(x[0]).__name__", %{"x" => [SnakeBridge.bytes("")]}, @backend) == "bytes"

        # as a dict key too
        assert py("[type(k).__name__ for k in x]", %{"x" => %{SnakeBridge.bytes("k") => 1}}, @backend) == [
                 "bytes"
               ]
      end

      test "bytes, bytearray and memoryview come back as binaries" do
        assert py("b'\\x00\\xffab'", %{}, @backend) == <<0, 255, ?a, ?b>>
        assert py("bytearray(b'xyz')", %{}, @backend) == "xyz"
        assert py("memoryview(b'hello')", %{}, @backend) == "hello"
        assert py("memoryview(b'hello')[1:3]", %{}, @backend) == "el"
        # a Python-built large bytes object (shared, not copied, on the way back)
        expected = :binary.copy(:binary.list_to_bin(Enum.to_list(0..255)), 64)
        assert py("bytes(range(256)) * 64", %{}, @backend) == expected
      end

      test "a non-contiguous memoryview comes back as a binary like bytes(view)" do
        view = "memoryview(b'abcdef')[::2]"
        expected = py("bytes(#{view})", %{}, @backend)
        assert expected == "ace"
        assert py(view, %{}, @backend) == expected
      end

      test "a 1 MiB binary round-trips as bytes" do
        big = :crypto.strong_rand_bytes(1024 * 1024)
        # random bytes are (overwhelmingly likely) not UTF-8; force bytes anyway
        assert py_type(SnakeBridge.bytes(big), @backend) == "bytes"
        assert identity(SnakeBridge.bytes(big), @backend) == {:ok, big}
        assert py("len(x)", %{"x" => SnakeBridge.bytes(big)}, @backend) == byte_size(big)

        assert py("__import__('hashlib').sha256(x).hexdigest()", %{"x" => SnakeBridge.bytes(big)}, @backend) ==
                 Base.encode16(:crypto.hash(:sha256, big), case: :lower)
      end
    end

    describe "lists, tuples, maps, sets (#{TestBackends.name(backend)})" do
      @backend backend

      test "lists and tuples, nested" do
        value = [1, [2, {3, "a", [nil, {}]}], {}, []]
        assert py_type([], @backend) == "list"
        assert py_type({}, @backend) == "tuple"
        assert py("type(x[1][1]).__name__", %{"x" => value}, @backend) == "tuple"
        assert identity(value, @backend) == {:ok, value}
        assert identity({1, 2.0, "three", nil, [4]}, @backend) == {:ok, {1, 2.0, "three", nil, [4]}}
        assert py("tuple(x)", %{"x" => [1, 2]}, @backend) == {1, 2}
        assert py("list(x)", %{"x" => {1, 2}}, @backend) == [1, 2]
      end

      test "a keyword list is a list of 2-tuples" do
        assert identity([a: 1, b: 2], @backend) == {:ok, [{"a", 1}, {"b", 2}]}
      end

      test "a 10,000 integer list round-trips" do
        list = Enum.to_list(1..10_000)
        assert identity(list, @backend) == {:ok, list}
        assert py("sum(x)", %{"x" => list}, @backend) == Enum.sum(list)
      end

      test "maps are dicts; keys of any convertible type" do
        map = %{1 => "int", {1, 2} => "tuple", nil => "none", "s" => [1], 2.5 => :x, false => true}
        assert py_type(map, @backend) == "dict"

        assert py("sorted(type(k).__name__ for k in x)", %{"x" => map}, @backend) ==
                 Enum.sort(["int", "tuple", "NoneType", "str", "float", "bool"])

        assert py("x[(1, 2)]", %{"x" => map}, @backend) == "tuple"
        assert py("x[None]", %{"x" => map}, @backend) == "none"
        assert identity(map, @backend) == {:ok, %{map | 2.5 => "x"}}
        assert identity(%{}, @backend) == {:ok, %{}}
        # atom keys become str keys
        assert identity(%{a: 1, b: %{c: 2}}, @backend) == {:ok, %{"a" => 1, "b" => %{"c" => 2}}}
      end

      test "MapSet is a set; as a dict key or set element a frozenset" do
        set = MapSet.new([1, "a", {2, 3}])
        assert py_type(set, @backend) == "set"
        assert py("sorted(map(repr, x))", %{"x" => set}, @backend) == Enum.sort(["1", "'a'", "(2, 3)"])
        assert identity(set, @backend) == {:ok, set}
        assert identity(MapSet.new(), @backend) == {:ok, MapSet.new()}

        key = %{MapSet.new([1, 2]) => "v"}
        assert py("[type(k).__name__ for k in x]", %{"x" => key}, @backend) == ["frozenset"]
        assert identity(key, @backend) == {:ok, key}

        nested = MapSet.new([MapSet.new([1])])
        assert py("[type(e).__name__ for e in x]", %{"x" => nested}, @backend) == ["frozenset"]
        assert identity(nested, @backend) == {:ok, nested}

        assert py("frozenset([1, 2])", %{}, @backend) == MapSet.new([1, 2])
      end

      test "a list used as a dict key becomes a tuple (documented lossy case)" do
        assert py("[type(k).__name__ for k in x]", %{"x" => %{[1, 2] => 3}}, @backend) == ["tuple"]
        assert identity(%{[1, 2] => 3}, @backend) == {:ok, %{{1, 2} => 3}}
        assert identity(MapSet.new([[1]]), @backend) == {:ok, MapSet.new([{1}])}
      end

      test "a dict whose keys would collide in Elixir stays an object" do
        assert %Object{type: "dict"} = d = py("{'a': 1, b'a': 2}", %{}, @backend)
        assert SnakeBridge.call!("builtins", "len", [d], [], backend: @backend) == 2
      end

      test "a container with an unconvertible item converts partially" do
        result = py("{'n': 1, 'obj': object(), 'list': [2, object()]}", %{}, @backend)

        assert %{"n" => 1, "obj" => %Object{type: "object"}, "list" => [2, %Object{type: "object"}]} = result

        # the embedded reference is a live object
        assert SnakeBridge.call!(
                 "builtins",
                 "isinstance",
                 [result["obj"], SnakeBridge.getattr!("builtins", "object", backend: @backend)],
                 [],
                 backend: @backend
               )

        fraction = SnakeBridge.getattr!("fractions", "Fraction", backend: @backend)
        assert [1, %Object{type: "fractions.Fraction"} = f] = py("[1, F(1, 2)]", %{"F" => fraction}, @backend)
        assert SnakeBridge.getattr!(f, "denominator") == 2
      end

      test "a str with a lone surrogate has no UTF-8 form and stays an object" do
        assert %Object{type: "str"} = s = py("'a\\ud800'", %{}, @backend)
        assert SnakeBridge.call!("builtins", "len", [s], [], backend: @backend) == 2
      end

      test "results nested deeper than the conversion limit keep objects for the deep part" do
        deep = py("(lambda: [l := [0]] and [l := [l] for _ in range(1100)] and l)()", %{}, @backend)
        # descend through converted levels until a reference is met
        {depth, leaf} = descend(deep, 0)
        assert %Object{type: "list"} = leaf
        assert depth >= 900
      end
    end

    describe "calendar types (#{TestBackends.name(backend)})" do
      @backend backend

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
          assert identity(v, @backend) == {:ok, v}
        end

        now = DateTime.utc_now()
        assert identity(now, @backend) == {:ok, now}

        assert py_type(~D[2024-02-29], @backend) == "date"
        assert py_type(~T[10:00:00], @backend) == "time"
        assert py_type(~N[2024-02-29 10:00:00], @backend) == "datetime"
        assert py("x.tzinfo is None", %{"x" => ~N[2024-02-29 10:00:00]}, @backend)
        assert py("x.utcoffset().total_seconds()", %{"x" => ~U[2024-02-29 10:00:00Z]}, @backend) == 0.0

        assert py("x.isoformat()", %{"x" => ~N[2024-02-29 10:11:12.000013]}, @backend) ==
                 "2024-02-29T10:11:12.000013"

        assert py("(x.year, x.month, x.day)", %{"x" => ~D[2024-02-29]}, @backend) == {2024, 2, 29}
      end

      test "Time round-trips; precision is 0 for zero microseconds and 6 otherwise" do
        assert identity(~T[10:00:00], @backend) == {:ok, ~T[10:00:00]}
        assert {:ok, %Time{microsecond: {0, 0}}} = identity(~T[10:00:00.000], @backend)
        assert {:ok, %Time{microsecond: {120_000, 6}} = t} = identity(~T[10:00:00.120], @backend)
        assert Time.compare(t, ~T[10:00:00.120]) == :eq
        assert identity(~T[23:59:59.999999], @backend) == {:ok, ~T[23:59:59.999999]}

        assert py("(x.hour, x.minute, x.second, x.microsecond)", %{"x" => ~T[01:02:03.000004]}, @backend) ==
                 {1, 2, 3, 4}
      end

      test "an aware datetime with a fixed non-UTC offset from Python" do
        datetime = SnakeBridge.call!("importlib", "import_module", ["datetime"], [], backend: @backend)

        dt =
          py(
            "datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))",
            %{"datetime" => datetime},
            @backend
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
            %{"x" => dt, "datetime" => datetime},
            @backend
          )

        assert DateTime.to_unix(dt, :microsecond) == epoch_us

        # and it goes back in as the same instant with the same offset
        assert py("x.utcoffset().total_seconds()", %{"x" => dt}, @backend) == 7200.0
        assert py("x == y", %{"x" => dt, "y" => DateTime.shift_zone!(dt, "Etc/UTC")}, @backend)
      end

      test "a ZoneInfo datetime carries the zone key and the DST split" do
        datetime = SnakeBridge.call!("importlib", "import_module", ["datetime"], [], backend: @backend)
        zoneinfo = SnakeBridge.call!("importlib", "import_module", ["zoneinfo"], [], backend: @backend)
        vars = %{"datetime" => datetime, "zoneinfo" => zoneinfo}

        summer = py("datetime.datetime(2020, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))", vars, @backend)

        offsets =
          py(
            "(x.utcoffset().total_seconds(), x.dst().total_seconds(), x.tzname())",
            Map.put(vars, "x", summer),
            @backend
          )

        {utc_offset, dst, abbr} = offsets

        assert %DateTime{time_zone: "Europe/Paris"} = summer
        assert summer.utc_offset + summer.std_offset == trunc(utc_offset)
        assert summer.std_offset == trunc(dst)
        assert summer.zone_abbr == abbr
        assert identity(summer, @backend) == {:ok, summer}

        # the repeated hour at the end of DST: fold picks the second (standard) one
        second =
          py(
            "datetime.datetime(2020, 10, 25, 2, 30, fold=1, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))",
            vars,
            @backend
          )

        first =
          py(
            "datetime.datetime(2020, 10, 25, 2, 30, fold=0, tzinfo=zoneinfo.ZoneInfo('Europe/Paris'))",
            vars,
            @backend
          )

        assert DateTime.diff(second, first) == 3600
        assert identity(second, @backend) == {:ok, second}
        assert identity(first, @backend) == {:ok, first}
        assert py("x.fold", %{"x" => second}, @backend) == 1
        assert py("x.fold", %{"x" => first}, @backend) == 0
      end

      test "calendar values nested in containers" do
        value = %{"when" => [~D[2024-01-01], {~T[12:00:00], ~N[2024-01-01 12:00:00]}]}
        assert identity(value, @backend) == {:ok, value}
      end
    end

    describe "objects (#{TestBackends.name(backend)})" do
      @backend backend

      test "Objects cross back as themselves inside containers" do
        f = SnakeBridge.new!("fractions", "Fraction", [1, 2], [], backend: @backend)
        assert py("x[0] is x[1]['f']", %{"x" => [f, %{"f" => f}]}, @backend)
        assert py("type(x).__name__", %{"x" => f}, @backend) == "Fraction"
      end
    end
  end
end
