defmodule SnakeBridge.StdlibTest do
  # The Python standard library driven from Elixir, end to end, on each backend
  # (the embedded interpreter and a pool of port workers). Expected values are
  # computed in Elixir (or follow from the documented semantics of the Python
  # function), never copied from a run.
  use ExUnit.Case, async: true

  alias SnakeBridge.{Object, TestBackends}

  for backend <- TestBackends.all() do
    describe "json (#{TestBackends.name(backend)})" do
      @backend backend

      test "dumps a map to the JSON string Python writes" do
        assert SnakeBridge.call!("json", "dumps", [%{"test" => "data"}], [], backend: @backend) ==
                 ~s({"test": "data"})

        assert {:ok, ~s({"test": "data"})} =
                 SnakeBridge.call("json", "dumps", [%{"test" => "data"}], [], backend: @backend)
      end

      test "passes keyword arguments (indent, sort_keys) as Python keyword arguments" do
        assert SnakeBridge.call!("json", "dumps", [[1, 2]], [indent: 2], backend: @backend) == "[\n  1,\n  2\n]"

        assert SnakeBridge.call!("json", "dumps", [%{"b" => 1, "a" => [true, nil]}], [indent: 2, sort_keys: true],
                 backend: @backend
               ) ==
                 "{\n  \"a\": [\n    true,\n    null\n  ],\n  \"b\": 1\n}"

        # kwargs given as a map with string keys work the same
        assert SnakeBridge.call!("json", "dumps", [[1]], %{"indent" => 1}, backend: @backend) == "[\n 1\n]"
      end

      test "loads(dumps(v)) round-trips JSON-compatible data" do
        value = %{
          "name" => "snake",
          "n" => 42,
          "pi" => 3.25,
          "big" => 2 ** 70,
          "flags" => [true, false, nil],
          "nested" => %{"list" => [1, [2, [3]]], "empty" => %{}},
          "unicode" => "héllo ✓ 日本"
        }

        json = SnakeBridge.call!("json", "dumps", [value], [], backend: @backend)
        assert is_binary(json)
        assert SnakeBridge.call!("json", "loads", [json], [], backend: @backend) == value
      end

      test "loads an Elixir-built JSON document" do
        doc = ~s({"a": [1, 2.5, "x"], "b": {"c": null}})

        assert SnakeBridge.call!("json", "loads", [doc], [], backend: @backend) == %{
                 "a" => [1, 2.5, "x"],
                 "b" => %{"c" => nil}
               }
      end
    end

    describe "math (#{TestBackends.name(backend)})" do
      @backend backend

      test "sqrt matches Erlang's :math.sqrt" do
        for x <- [0.0, 2.0, 16.0, 1.0e10, 12_345.678] do
          assert SnakeBridge.call!("math", "sqrt", [x], [], backend: @backend) == :math.sqrt(x)
        end

        # An integer argument is fine: math.sqrt converts it
        assert SnakeBridge.call!("math", "sqrt", [81], [], backend: @backend) == 9.0
        # module and function names may be atoms
        assert SnakeBridge.call!(:math, :sqrt, [16.0], [], backend: @backend) == 4.0
        assert SnakeBridge.getattr!(:math, :pi, backend: @backend) == :math.pi()
      end

      test "isclose takes keyword-only tolerances" do
        a = 1.0
        b = 1.0 + 1.0e-6
        # default rel_tol is 1e-9: not close
        refute SnakeBridge.call!("math", "isclose", [a, b], [], backend: @backend)
        assert SnakeBridge.call!("math", "isclose", [a, b], [rel_tol: 1.0e-3], backend: @backend)
        assert SnakeBridge.call!("math", "isclose", [0.0, 1.0e-12], [abs_tol: 1.0e-9], backend: @backend)

        # rel_tol is keyword-only: passing it positionally is Python's TypeError
        assert {:error, %SnakeBridge.PythonError{type: "TypeError"}} =
                 SnakeBridge.call("math", "isclose", [a, b, 1.0e-3], [], backend: @backend)
      end

      test "constants through getattr" do
        assert SnakeBridge.getattr!("math", "pi", backend: @backend) == :math.pi()
        assert SnakeBridge.getattr!("math", "e", backend: @backend) == :math.exp(1)
        assert SnakeBridge.getattr!("math", "tau", backend: @backend) == 2 * :math.pi()
        assert SnakeBridge.getattr!("math", "inf", backend: @backend) == :infinity
        assert SnakeBridge.getattr!("math", "nan", backend: @backend) == :nan
      end

      test "factorial and comb return exact big integers" do
        assert SnakeBridge.call!("math", "factorial", [30], [], backend: @backend) == Enum.reduce(1..30, 1, &*/2)
        # comb(100, 50) = 100! / (50! * 50!)
        f = fn n -> Enum.reduce(1..n, 1, &*/2) end

        assert SnakeBridge.call!("math", "comb", [100, 50], [], backend: @backend) ==
                 div(f.(100), f.(50) * f.(50))

        assert SnakeBridge.call!("math", "gcd", [2 ** 100, 6 ** 50], [], backend: @backend) ==
                 Integer.gcd(2 ** 100, 6 ** 50)
      end
    end

    describe "statistics (#{TestBackends.name(backend)})" do
      @backend backend
      @data [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, 11.5]

      test "mean, median and stdev agree with values computed in Elixir" do
        n = length(@data)
        mean = Enum.sum(@data) / n
        sorted = Enum.sort(@data)
        median = Enum.at(sorted, div(n, 2))
        stdev = :math.sqrt(Enum.sum(Enum.map(@data, &((&1 - mean) ** 2))) / (n - 1))

        assert_in_delta SnakeBridge.call!("statistics", "mean", [@data], [], backend: @backend), mean, 1.0e-12
        assert SnakeBridge.call!("statistics", "median", [@data], [], backend: @backend) == median
        assert_in_delta SnakeBridge.call!("statistics", "stdev", [@data], [], backend: @backend), stdev, 1.0e-12
      end

      test "median of an even-length list averages the middle pair; mean of ints stays exact" do
        assert SnakeBridge.call!("statistics", "median", [[1, 3, 2, 4]], [], backend: @backend) == (2 + 3) / 2
        # statistics.mean of integers is computed exactly; 10/4 is 2.5
        assert SnakeBridge.call!("statistics", "mean", [[1, 2, 3, 4]], [], backend: @backend) == 2.5
        assert SnakeBridge.call!("statistics", "mean", [[2, 4, 6]], [], backend: @backend) == 4
      end

      test "errors for empty data are StatisticsError" do
        assert {:error,
                %SnakeBridge.PythonError{
                  type: "StatisticsError",
                  python_type: "statistics.StatisticsError"
                }} = SnakeBridge.call("statistics", "mean", [[]], [], backend: @backend)
      end
    end

    describe "collections (#{TestBackends.name(backend)})" do
      @backend backend

      test "Counter stays an object in :auto mode and converts with to_elixir" do
        words = ~w(a b a c a b d)
        counter = SnakeBridge.call!("collections", "Counter", [words], [], backend: @backend)

        # dict subclasses are objects, so that their methods remain usable
        assert %Object{type: "collections.Counter"} = counter

        expected = Enum.frequencies(words)

        top2 =
          expected
          |> Enum.sort_by(fn {w, c} -> {-c, w} end)
          |> Enum.take(2)

        assert SnakeBridge.method!(counter, "most_common", [2]) == top2
        assert SnakeBridge.to_elixir!(counter) == expected
        # Counter semantics: a missing key counts zero
        assert SnakeBridge.method!(counter, "__getitem__", ["zzz"]) == 0
        assert SnakeBridge.method!(counter, "__getitem__", ["a"]) == expected["a"]

        # update mutates the Python object held by the reference
        assert SnakeBridge.method!(counter, "update", [["d", "d", "e"]]) == nil

        assert SnakeBridge.to_elixir!(counter) ==
                 Enum.frequencies(words ++ ["d", "d", "e"])

        assert SnakeBridge.call!("collections", "Counter", [words], [], return: :value, backend: @backend) ==
                 expected
      end

      test "OrderedDict keeps insertion order on the Python side" do
        pairs = [{"b", 1}, {"a", 2}, {"c", 3}]
        od = SnakeBridge.call!("collections", "OrderedDict", [pairs], [], backend: @backend)
        assert %Object{type: "collections.OrderedDict"} = od

        assert SnakeBridge.call!("builtins", "list", [od], [], backend: @backend) == Enum.map(pairs, &elem(&1, 0))
        assert SnakeBridge.method!(od, "move_to_end", ["b"]) == nil
        assert SnakeBridge.call!("builtins", "list", [od], [], backend: @backend) == ["a", "c", "b"]
        assert SnakeBridge.method!(od, "popitem", [], last: false) == {"a", 2}
        assert SnakeBridge.to_elixir!(od) == %{"c" => 3, "b" => 1}
      end
    end

    describe "fractions.Fraction (#{TestBackends.name(backend)})" do
      @backend backend

      test "new(3, 4) is an object with numerator and denominator" do
        f = SnakeBridge.new!("fractions", "Fraction", [3, 4], [], backend: @backend)
        assert %Object{type: "fractions.Fraction"} = f
        assert SnakeBridge.getattr!(f, "numerator") == 3
        assert SnakeBridge.getattr!(f, "denominator") == 4
        assert SnakeBridge.method!(f, "as_integer_ratio") == {3, 4}
        assert SnakeBridge.call!("builtins", "float", [f], [], backend: @backend) == 0.75
      end

      test "normalises like Python: Fraction(6, -8) is -3/4" do
        f = SnakeBridge.new!("fractions", "Fraction", [6, -8], [], backend: @backend)
        g = Integer.gcd(6, 8)
        assert SnakeBridge.method!(f, "as_integer_ratio") == {-div(6, g), div(8, g)}
      end

      test "limit_denominator finds the closest fraction with a bounded denominator" do
        f = SnakeBridge.new!("fractions", "Fraction", [355, 113], [], backend: @backend)

        # brute force in Elixir: the closest n/d to 355/113 with d <= 10
        {n, d} =
          for(d <- 1..10, n <- [div(355 * d, 113), div(355 * d, 113) + 1], do: {n, d})
          |> Enum.min_by(fn {n, d} -> abs(n * 113 - 355 * d) / (113 * d) end)

        g = Integer.gcd(n, d)

        limited = SnakeBridge.method!(f, "limit_denominator", [10])
        assert %Object{type: "fractions.Fraction"} = limited
        assert SnakeBridge.method!(limited, "as_integer_ratio") == {div(n, g), div(d, g)}

        # the module docstring's example
        half =
          SnakeBridge.method!(
            SnakeBridge.new!("fractions", "Fraction", [3, 4], [], backend: @backend),
            "limit_denominator",
            [2]
          )

        assert SnakeBridge.getattr!(half, "denominator") == 1
      end

      test "arithmetic through __add__ / __mul__ with another Fraction object" do
        a = SnakeBridge.new!("fractions", "Fraction", [3, 4], [], backend: @backend)
        b = SnakeBridge.new!("fractions", "Fraction", [5, 6], [], backend: @backend)

        sum = SnakeBridge.method!(a, "__add__", [b])
        # 3/4 + 5/6 = (18 + 20) / 24 = 38/24
        {n, d} = {3 * 6 + 5 * 4, 4 * 6}
        g = Integer.gcd(n, d)
        assert SnakeBridge.method!(sum, "as_integer_ratio") == {div(n, g), div(d, g)}

        prod = SnakeBridge.method!(a, "__mul__", [b])
        {n, d} = {3 * 5, 4 * 6}
        g = Integer.gcd(n, d)
        assert SnakeBridge.method!(prod, "as_integer_ratio") == {div(n, g), div(d, g)}

        # and through operator.add, with the two objects as plain arguments
        sum2 = SnakeBridge.call!("operator", "add", [a, b], [], backend: @backend)
        assert SnakeBridge.call!("operator", "eq", [sum, sum2], [], backend: @backend) == true
      end
    end

    describe "datetime (#{TestBackends.name(backend)})" do
      @backend backend

      test "date, time and naive datetime come back as Elixir calendar types" do
        assert SnakeBridge.call!("datetime", "date", [2024, 2, 29], [], backend: @backend) == ~D[2024-02-29]
        assert SnakeBridge.call!("datetime", "time", [1, 2, 3, 4], [], backend: @backend) == ~T[01:02:03.000004]

        assert SnakeBridge.call!("datetime", "datetime", [2024, 2, 29, 1, 2, 3, 4], [], backend: @backend) ==
                 ~N[2024-02-29 01:02:03.000004]
      end

      test "Elixir calendar values go in as Python datetime objects" do
        date = SnakeBridge.new!("datetime", "date", [2024, 2, 29], [], backend: @backend)
        assert SnakeBridge.method!(date, "isoformat") == Date.to_iso8601(~D[2024-02-29])

        # Python receives a date: its methods work on it
        assert SnakeBridge.call!("datetime", "date.isoformat", [~D[2021-03-04]], [], backend: @backend) ==
                 "2021-03-04"

        assert SnakeBridge.call!("datetime", "date.weekday", [~D[2021-03-04]], [], backend: @backend) ==
                 Date.day_of_week(~D[2021-03-04]) - 1

        assert SnakeBridge.call!("datetime", "datetime.isoformat", [~N[2021-03-04 05:06:07.000008]], [],
                 backend: @backend
               ) ==
                 NaiveDateTime.to_iso8601(~N[2021-03-04 05:06:07.000008])
      end

      test "aware datetimes round-trip, UTC and fixed offsets" do
        utc = SnakeBridge.getattr!("datetime", "timezone.utc", backend: @backend)
        assert %Object{type: "datetime.timezone"} = utc

        assert SnakeBridge.call!("datetime", "datetime", [2024, 2, 29, 1, 2, 3, 4], [tzinfo: utc], backend: @backend) ==
                 ~U[2024-02-29 01:02:03.000004Z]

        # DateTime in, aware datetime with utcoffset 0 on the Python side
        assert SnakeBridge.call!("datetime", "datetime.utcoffset", [~U[2024-02-29 01:02:03Z]], [], backend: @backend)
               |> SnakeBridge.method!("total_seconds") == 0.0

        two_hours = SnakeBridge.call!("datetime", "timedelta", [], [hours: 2], backend: @backend)
        tz = SnakeBridge.call!("datetime", "timezone", [two_hours], [], backend: @backend)
        dt = SnakeBridge.call!("datetime", "datetime", [2024, 6, 1, 12, 0, 0], [tzinfo: tz], backend: @backend)
        assert %DateTime{utc_offset: 7200, std_offset: 0} = dt
        assert DateTime.compare(dt, ~U[2024-06-01 10:00:00Z]) == :eq
      end

      test "datetime.datetime.now via a dotted function name on module datetime" do
        before = NaiveDateTime.local_now()
        now = SnakeBridge.call!("datetime", "datetime.now", [], [], backend: @backend)
        assert %NaiveDateTime{} = now
        assert abs(NaiveDateTime.diff(now, before, :second)) <= 5

        utc = SnakeBridge.getattr!("datetime", "timezone.utc", backend: @backend)
        now_utc = SnakeBridge.call!("datetime", "datetime.now", [utc], [], backend: @backend)
        assert %DateTime{time_zone: "Etc/UTC"} = now_utc
        assert abs(DateTime.diff(now_utc, DateTime.utc_now(), :second)) <= 5
      end

      test "timedelta has no Elixir equivalent and stays an object" do
        td = SnakeBridge.call!("datetime", "timedelta", [], [days: 1, hours: 2], backend: @backend)
        assert %Object{type: "datetime.timedelta"} = td
        assert SnakeBridge.method!(td, "total_seconds") == (24 + 2) * 3600.0
        assert SnakeBridge.getattr!(td, "days") == 1

        # date + timedelta computed by Python, checked against Date.add
        assert SnakeBridge.call!("operator", "add", [~D[2024-02-28], td], [], backend: @backend) ==
                 Date.add(~D[2024-02-28], 1)

        # datetime - datetime is a timedelta
        diff =
          SnakeBridge.call!("operator", "sub", [~N[2024-03-01 00:00:00], ~N[2024-02-28 12:00:00]], [], backend: @backend)

        assert %Object{type: "datetime.timedelta"} = diff

        assert SnakeBridge.method!(diff, "total_seconds") ==
                 NaiveDateTime.diff(~N[2024-03-01 00:00:00], ~N[2024-02-28 12:00:00]) * 1.0
      end
    end

    describe "sqlite3 (in-memory) (#{TestBackends.name(backend)})" do
      @backend backend

      test "connect, create, insert with parameters, executemany, fetchall, commit, close" do
        conn = SnakeBridge.call!("sqlite3", "connect", [":memory:"], [], backend: @backend)
        assert %Object{type: "sqlite3.Connection"} = conn
        cur = SnakeBridge.method!(conn, "cursor")
        assert %Object{type: "sqlite3.Cursor"} = cur

        SnakeBridge.method!(cur, "execute", [
          "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)"
        ])

        rows = [
          {"alice", 1.5, <<0, 255, 1>>},
          {"bob", 2.5, nil},
          {"carol", -3.0, SnakeBridge.bytes("xyz")},
          {"dan ✓", 4.0, "text blob"}
        ]

        [first | rest] = rows

        SnakeBridge.method!(cur, "execute", [
          "INSERT INTO t (name, score, data) VALUES (?, ?, ?)",
          first
        ])

        assert SnakeBridge.getattr!(cur, "rowcount") == 1

        SnakeBridge.method!(cur, "executemany", [
          "INSERT INTO t (name, score, data) VALUES (?, ?, ?)",
          rest
        ])

        assert SnakeBridge.getattr!(cur, "rowcount") == length(rest)
        assert SnakeBridge.method!(conn, "commit") == nil

        SnakeBridge.method!(cur, "execute", ["SELECT id, name, score, data FROM t ORDER BY id"])

        expected =
          rows
          |> Enum.with_index(1)
          |> Enum.map(fn {{name, score, data}, id} ->
            data = if is_struct(data, SnakeBridge.Bytes), do: data.data, else: data
            {id, name, score, data}
          end)

        assert SnakeBridge.method!(cur, "fetchall") == expected

        # an aggregate computed by SQLite
        [{total}] =
          conn
          |> SnakeBridge.method!("execute", ["SELECT sum(score) FROM t WHERE score > ?", [0]])
          |> SnakeBridge.method!("fetchall")

        assert total == rows |> Enum.map(&elem(&1, 1)) |> Enum.filter(&(&1 > 0)) |> Enum.sum()

        assert SnakeBridge.method!(conn, "close") == nil

        assert {:error,
                %SnakeBridge.PythonError{
                  type: "ProgrammingError",
                  python_type: "sqlite3.ProgrammingError"
                }} = SnakeBridge.method(conn, "execute", ["SELECT 1"])
      end

      # One Elixir process is one Python thread (docs/backends.md): sqlite3's
      # default thread check holds across the process's calls, and another
      # process is another thread, refused as in Python.
      test "the default thread check: this process's many calls pass, another process is refused" do
        conn = SnakeBridge.call!("sqlite3", "connect", [":memory:"], [], backend: @backend)

        for i <- 1..30 do
          cursor = SnakeBridge.method!(conn, "execute", ["SELECT ?", [i]])
          assert SnakeBridge.method!(cursor, "fetchall") == [{i}]
        end

        other = Task.async(fn -> SnakeBridge.method(conn, "execute", ["SELECT 1"]) end) |> Task.await()
        assert {:error, %SnakeBridge.PythonError{type: "ProgrammingError", message: message}} = other
        assert message =~ "same thread"
        SnakeBridge.method!(conn, "close")
      end
    end

    describe "subprocess and os (#{TestBackends.name(backend)})" do
      @backend backend

      test "subprocess.run captures output and the exit status (SIGCHLD is handled)" do
        done = SnakeBridge.call!("subprocess", "run", [["echo", "hi"]], [capture_output: true], backend: @backend)

        assert %Object{type: "subprocess.CompletedProcess"} = done
        assert SnakeBridge.getattr!(done, "stdout") == "hi\n"
        assert SnakeBridge.getattr!(done, "returncode") == 0
        assert SnakeBridge.getattr!(done, "stderr") == ""

        failed =
          SnakeBridge.call!(
            "subprocess",
            "run",
            [["sh", "-c", "echo oops >&2; exit 3"]],
            [capture_output: true, text: true],
            backend: @backend
          )

        assert SnakeBridge.getattr!(failed, "returncode") == 3
        assert SnakeBridge.getattr!(failed, "stderr") == "oops\n"

        assert SnakeBridge.call!("subprocess", "check_output", [["printf", "%s-%s", "a", "b"]], [], backend: @backend) ==
                 "a-b"
      end

      test "os.environ sees the BEAM's environment" do
        assert SnakeBridge.call!("os", "getenv", ["PATH"], [], backend: @backend) == System.get_env("PATH")
      end
    end
  end

  describe "where Python runs" do
    # NIF-only: the in-process backend embeds Python in the BEAM's own OS process.
    test "in-process, Python runs inside the BEAM's OS process" do
      assert SnakeBridge.call!("os", "getpid") == String.to_integer(System.pid())
    end

    test "on a pool, Python runs in one of the workers' OS processes, not the BEAM's" do
      pool = TestBackends.pool()

      worker_os_pids =
        for {pid, _node} <- SnakeBridge.Pool.workers(pool),
            {port, _ids, _channel} <- [SnakeBridge.Workers.lookup(pid)],
            {:os_pid, os_pid} <- [Port.info(port, :os_pid)],
            do: os_pid

      assert worker_os_pids != []
      python_pid = SnakeBridge.call!("os", "getpid", [], [], backend: {:pool, pool})
      assert python_pid in worker_os_pids
      refute python_pid == String.to_integer(System.pid())
    end

    # docs/backends.md: a pool started with `threads: 1` runs all of a worker's
    # Python on one thread, so sqlite3's default thread check passes.
    test "on a threads: 1 pool, an object's calls all run on one thread (sqlite3's default check passes)" do
      pool = SnakeBridge.StdlibTest.OneThread
      start_supervised!({SnakeBridge.Pool, name: pool, size: 1, threads: 1})
      conn = SnakeBridge.call!("sqlite3", "connect", [":memory:"], [], backend: {:pool, pool})

      for i <- 1..30 do
        assert {:ok, cursor} = SnakeBridge.method(conn, "execute", ["SELECT ?", [i]])
        assert SnakeBridge.method!(cursor, "fetchall") == [{i}]
      end

      # Concurrent callers queue for that one thread.
      tasks =
        for _ <- 1..3,
            do: Task.async(fn -> SnakeBridge.call!("threading", "get_ident", [], [], backend: {:pool, pool}) end)

      assert tasks |> Task.await_many() |> Enum.uniq() |> length() == 1
    end
  end
end
