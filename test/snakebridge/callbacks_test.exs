defmodule SnakeBridge.CallbacksTest do
  # Python calling Elixir (docs/callbacks.md), on both backends: functions as
  # Python callables, where they run, errors both ways, snakebridge.call/send,
  # pids and references held by Python.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers, only: [proper_check: 3, wait_until: 2, without_busy_finding: 1]

  alias SnakeBridge.{PythonError, TestBackends}
  alias SnakeBridge.Test.PythonTerms, as: Terms

  @moduletag timeout: 120_000

  # Requests running in the backend's interpreter.
  defp in_flight(:nif), do: SnakeBridge.Native.stats().busy_threads

  defp in_flight({:pool, pool}) do
    for {worker, _} <- SnakeBridge.Pool.workers(pool), reduce: 0 do
      n -> n + (SnakeBridge.Runtime.run({:stats}, backend: {:worker, worker}) |> elem(1) |> Map.fetch!("requests"))
    end
  end

  # Python calls back, the callback calls Python, `n` levels deep.
  defp nest(0, _o), do: 0
  defp nest(n, o), do: SnakeBridge.eval!("f(n - 1) + 1", %{"f" => fn m -> nest(m, o) end, "n" => n}, o)

  for backend <- TestBackends.all() do
    describe "callbacks (#{TestBackends.name(backend)})" do
      @backend backend

      setup do
        {:ok, o: [backend: @backend]}
      end

      test "a sort key, and functools.reduce with a 2-arity fun", %{o: o} do
        xs = [3, -10, 2, -5, 7, 0]

        assert SnakeBridge.call("builtins", "sorted", [xs], [key: fn x -> abs(x) end], o) ==
                 {:ok, Enum.sort_by(xs, &abs/1)}

        assert SnakeBridge.call("functools", "reduce", [fn a, b -> a * 10 + b end, [1, 2, 3, 4]], [], o) ==
                 {:ok, Enum.reduce([2, 3, 4], 1, fn b, a -> a * 10 + b end)}
      end

      test "re.sub with a callback that calls back into Python on the match", %{o: o} do
        replace = fn match -> match |> SnakeBridge.method!("group", [0], [], o) |> String.upcase() end
        assert SnakeBridge.call("re", "sub", ["[a-z]+", replace, "ab 12 cd"], [], o) == {:ok, "AB 12 CD"}
      end

      test "keywords reach a fun of arity n + 1 as a map; other arities are a Python TypeError", %{o: o} do
        assert SnakeBridge.eval("f(1, b=2)", %{"f" => fn a, kw -> {a, kw} end}, o) == {:ok, {1, %{"b" => 2}}}
        assert SnakeBridge.eval("f(1)", %{"f" => fn a, kw -> {a, kw} end}, o) == {:ok, {1, %{}}}

        for code <- ["f(1, 2)", "f(1, b=2)"] do
          assert {:error, %PythonError{type: "TypeError"}} = SnakeBridge.eval(code, %{"f" => fn a -> a end}, o)
        end

        # Python can catch it.
        assert SnakeBridge.eval!("__import__('snakebridge') and 1", %{}, o) == 1

        assert {:ok, %{"r" => "TypeError"}} =
                 SnakeBridge.exec(
                   "try:\n    f(1, 2)\nexcept TypeError as e:\n    r = type(e).__name__\n",
                   %{"f" => & &1},
                   o
                 )
      end

      test "nesting: a callback calls Python, which calls another callback, three levels deep", %{o: o} do
        level3 = fn x -> x * 1000 end
        level2 = fn x -> SnakeBridge.eval!("g(x) + 100", %{"g" => level3, "x" => x}, o) end
        level1 = fn x -> SnakeBridge.eval!("g(x) + 10", %{"g" => level2, "x" => x}, o) end
        assert SnakeBridge.eval("f(1) + 1", %{"f" => level1}, o) == {:ok, 1111}
      end

      test "nesting 100 deep completes; the BEAM's schedulers stay responsive meanwhile", %{o: o} do
        # A 1 ms heartbeat's worst gap while nesting, against its worst gap
        # while an OS process keeps a core busy (this machine's own noise).
        {_, _, control} =
          SnakeBridge.Heartbeat.measure(fn -> System.cmd("timeout", ["0.3", "sh", "-c", "while :; do :; done"]) end, 20)

        {depth, _elapsed, gap} = SnakeBridge.Heartbeat.measure(fn -> nest(100, o) end, 20)
        assert depth == 100
        assert gap < 100_000 + control, "heartbeat gap #{gap} µs while nesting (control #{control} µs)"
      end

      test "Python's output before, inside and after a nested call reaches the caller, in order", %{o: o} do
        f = fn -> SnakeBridge.exec!("print('nested')", %{}, o) end
        code = "print('before')\nf()\nprint('after')\n"
        out = ExUnit.CaptureIO.capture_io(fn -> SnakeBridge.exec!(code, %{"f" => f}, o) end)
        assert out == "before\nnested\nafter\n"
      end

      test "nested calls run on the caller's Python thread", %{o: o} do
        ident = "__import__('threading').get_ident()"
        outer = SnakeBridge.eval!(ident, %{}, o)
        inner = SnakeBridge.eval!("f()", %{"f" => fn -> SnakeBridge.eval!(ident, %{}, o) end}, o)
        assert inner == outer
      end

      test "an Elixir raise is snakebridge.ElixirError in Python, which can catch it", %{o: o} do
        code = """
        import snakebridge
        try:
            f()
        except snakebridge.ElixirError as e:
            message, trace = str(e), e.elixir_stacktrace
        """

        {:ok, %{"message" => message, "trace" => trace}} =
          SnakeBridge.exec(code, %{"f" => fn -> raise ArgumentError, "bad input" end}, o)

        assert message == "** (ArgumentError) bad input"
        assert trace =~ "callbacks_test.exs"
      end

      test "an Elixir error Python lets escape keeps the original error", %{o: o} do
        assert {:error, %PythonError{type: "ElixirError", python_type: "snakebridge.ElixirError"} = e} =
                 SnakeBridge.eval("f()", %{"f" => fn -> raise KeyError, key: :k end}, o)

        assert {:error, %KeyError{key: :k}, [_ | _]} = e.elixir
        assert e.traceback =~ "ElixirError"

        # An Erlang error reason comes normalized, as `rescue` would see it.
        assert {:error, %PythonError{elixir: {:error, %KeyError{key: :k}, _}}} =
                 SnakeBridge.eval("f()", %{"f" => fn -> Map.fetch!(%{}, :k) end}, o)

        # exits and throws too
        assert {:error, %PythonError{elixir: {:exit, :gone, _}}} =
                 SnakeBridge.eval("f()", %{"f" => fn -> exit(:gone) end}, o)

        assert {:error, %PythonError{elixir: {:throw, 42, _}}} =
                 SnakeBridge.eval("f()", %{"f" => fn -> throw(42) end}, o)
      end

      test "snakebridge.call and snakebridge.send", %{o: o} do
        assert SnakeBridge.eval("__import__('snakebridge').call('Enum', 'sum', [1, 2, 3])", %{}, o) == {:ok, 6}
        assert SnakeBridge.eval("__import__('snakebridge').call('lists', 'reverse', [1, 2])", %{}, o) == {:ok, [2, 1]}

        assert {:error, %PythonError{type: "ElixirError", message: message}} =
                 SnakeBridge.eval("__import__('snakebridge').call('Enum', 'no_such_function', 1)", %{}, o)

        assert message =~ "Enum.no_such_function/1"

        ref = make_ref()

        assert SnakeBridge.eval(
                 "__import__('snakebridge').send(p, ('progress', r, 0.5))",
                 %{"p" => self(), "r" => ref},
                 o
               ) ==
                 {:ok, nil}

        assert_receive {"progress", ^ref, 0.5}, 5_000
      end

      test "pids, references, ports and functions round-trip, and compare in Python", %{o: o} do
        port = hd(Port.list())
        fun = &String.upcase/1
        terms = {self(), make_ref(), port, fun}
        assert SnakeBridge.eval("__import__('copy').copy(t)", %{"t" => terms}, o) == {:ok, terms}
        assert SnakeBridge.eval("__import__('copy').deepcopy({'k': t})", %{"t" => terms}, o) == {:ok, %{"k" => terms}}
        assert SnakeBridge.eval("a == b and hash(a) == hash(b)", %{"a" => self(), "b" => self()}, o) == {:ok, true}
        assert SnakeBridge.eval("a == b", %{"a" => self(), "b" => make_ref()}, o) == {:ok, false}

        assert SnakeBridge.eval("[type(x).__name__ for x in t]", %{"t" => terms}, o) ==
                 {:ok, ["Pid", "Reference", "Port", "Function"]}
      end

      test "a callback Python keeps and calls later from its own thread runs under SnakeBridge's supervisor",
           %{o: o} do
        me = self()

        handler = fn x ->
          send(me, {:called, x, self(), Process.get(:"$ancestors")})
          x * 2
        end

        code = """
        import threading, snakebridge
        t = threading.Timer(0.05, lambda: snakebridge.send(me, ("result", f(21))))
        t.start()
        """

        %{"t" => timer} = SnakeBridge.exec!(code, %{"f" => handler, "me" => me}, o)
        assert_receive {:called, 21, runner, ancestors}, 5_000
        assert runner != me
        assert SnakeBridge.CallbackTasks in ancestors
        assert_receive {"result", 42}, 5_000
        SnakeBridge.method!(timer, "join", [], [], o)
      end

      test "a callback past the outer timeout: TimeoutError, Python interrupted, the runner gone", %{o: o} do
        me = self()

        slow = fn ->
          send(me, {:runner, self()})
          Process.sleep(5_000)
        end

        started = System.monotonic_time(:millisecond)
        assert {:error, %SnakeBridge.TimeoutError{}} = SnakeBridge.eval("f()", %{"f" => slow}, o ++ [timeout: 300])
        assert System.monotonic_time(:millisecond) - started < 2_000
        assert_receive {:runner, runner}
        refute Process.alive?(runner)
        # The interpreter and this process's thread serve the next call.
        assert SnakeBridge.eval("1 + 1", %{}, o) == {:ok, 2}
      end

      test "the calling process killed mid-callback: Python is interrupted, nothing hangs", %{o: o} do
        me = self()
        assert wait_until(5_000, fn -> in_flight(@backend) == 0 end)

        caller =
          spawn(fn ->
            SnakeBridge.eval("f()", %{"f" => fn -> send(me, {:in_callback, self()}) && Process.sleep(:infinity) end}, o)
          end)

        assert_receive {:in_callback, runner}, 5_000
        assert in_flight(@backend) == 1
        Process.exit(caller, :kill)
        # The Python side gave up its wait (Cancelled) and the request ended.
        assert wait_until(5_000, fn -> in_flight(@backend) == 0 end)
        refute Process.alive?(runner)
        assert SnakeBridge.eval("2 + 2", %{}, o) == {:ok, 4}
      end

      if backend != :nif do
        test "the worker dies during a callback: WorkerCrashError, no hang", %{o: o} do
          pool = SnakeBridge.CallbacksTest.CrashPool
          start_supervised!({SnakeBridge.Pool, name: pool, size: 1})
          o = Keyword.put(o, :backend, {:pool, pool})
          os_pid = SnakeBridge.call!("os", "getpid", [], [], o)
          kill = fn -> System.cmd("kill", ["-9", to_string(os_pid)]) && :ok end

          assert {:error, %SnakeBridge.WorkerCrashError{}} =
                   SnakeBridge.eval("f()", %{"f" => kill}, o ++ [timeout: 10_000])

          assert wait_until(10_000, fn -> match?({:ok, 2}, SnakeBridge.eval("1 + 1", %{}, o)) end)
        end
      end

      test "10,000 callbacks in one call", %{o: o} do
        xs = Enum.shuffle(1..10_000)
        {:ok, sorted} = SnakeBridge.call("builtins", "sorted", [xs], [key: fn x -> -x end], o)
        assert sorted == Enum.sort(xs, :desc)
      end

      test "100 processes sorting with callbacks at once", %{o: o} do
        results =
          1..100
          |> Task.async_stream(
            fn i ->
              xs = Enum.shuffle(1..50)
              {:ok, sorted} = SnakeBridge.call("builtins", "sorted", [xs], [key: fn x -> rem(x * i, 97) end], o)
              sorted == Enum.sort_by(xs, &rem(&1 * i, 97))
            end,
            max_concurrency: 100,
            timeout: 60_000
          )
          |> Enum.map(fn {:ok, same} -> same end)

        assert Enum.all?(results)
      end

      test "funs through a stream: a generator calling back per item", %{o: o} do
        gen = SnakeBridge.exec!("def g(f, n):\n    for i in range(n):\n        yield f(i)\n", %{}, o)["g"]
        assert SnakeBridge.stream(gen, nil, [fn i -> i * i end, 5], [], o) |> Enum.to_list() == [0, 1, 4, 9, 16]
      end

      test "random terms pass through an Elixir identity callback unchanged", %{o: o} do
        prop =
          :proper.forall(Terms.mappable(), fn term ->
            SnakeBridge.eval("f(x)", %{"f" => & &1, "x" => term}, o) == {:ok, term}
          end)

        proper_check(prop, 100, fn [term] ->
          "#{inspect(term)} came back as #{inspect(SnakeBridge.eval("f(x)", %{"f" => & &1, "x" => term}, o))}"
        end)
      end
    end
  end

  describe "a callback runner that just answered" do
    test "in-process, takes the same call's next callbacks straight from the Python thread" do
      xs = Enum.shuffle(1..2_000)
      # (The runner does not poll while the machine is found busy.)
      {before, handed} =
        without_busy_finding(fn ->
          before = SnakeBridge.Native.stats().handed_callbacks
          assert {:ok, sorted} = SnakeBridge.call("builtins", "sorted", [xs], key: fn x -> -x end)
          assert sorted == Enum.sort(xs, :desc)
          {before, SnakeBridge.Native.stats().handed_callbacks}
        end)

      # (The first callback goes to the caller, which starts the runner.)
      assert handed > before
      # Nothing was left in the caller's mailbox either way.
      assert {:messages, []} = Process.info(self(), :messages)
    end

    test "nested calls and several runners at once still get every callback once" do
      results =
        1..20
        |> Task.async_stream(
          fn i ->
            inner = fn x -> SnakeBridge.eval!("k(x) * 2", %{"k" => fn y -> rem(y * i, 13) end, "x" => x}) end
            {:ok, out} = SnakeBridge.call("builtins", "sorted", [Enum.to_list(1..30)], key: inner)
            out == Enum.sort_by(1..30, &rem(&1 * i, 13))
          end,
          max_concurrency: 20,
          timeout: 60_000
        )
        |> Enum.map(fn {:ok, same} -> same end)

      assert Enum.all?(results)
    end
  end

  describe "on a busy machine (a busy loop per core)" do
    test "in-process callbacks stop polling and block, so each hand-off is not a time slice lost" do
      xs = Enum.shuffle(1..3_000)
      # (Earlier tests may have left the machine marked busy, for 100 ms:
      # polls then do not yield, and nothing new is found until it passes.)
      assert wait_until(5_000, fn -> not SnakeBridge.Native.stats().machine_busy end)
      before = SnakeBridge.Native.stats().busy_found

      # Sorts until a poller's yield loses its core to a busy loop for 1 ms or
      # more (from then on, for 100 ms, polls stop after their first
      # microseconds), at most 20: a sort whose answers all come within a
      # poll's first microseconds never yields, and finds nothing.
      results =
        SnakeBridge.BusyLoops.run(System.schedulers_online(), fn ->
          Enum.reduce_while(1..20, [], fn _, acc ->
            result = SnakeBridge.call("builtins", "sorted", [xs], [key: fn x -> -x end], timeout: 60_000)

            if SnakeBridge.Native.stats().busy_found > before,
              do: {:halt, [result | acc]},
              else: {:cont, [result | acc]}
          end)
        end)

      assert Enum.all?(results, &(&1 == {:ok, Enum.sort(xs, :desc)}))
      assert SnakeBridge.Native.stats().busy_found > before
    end
  end
end
