defmodule SnakeBridge.ThreadAffinityTest.Sqlite3 do
  use SnakeBridge, python: "sqlite3", only: ["connect"]
end

defmodule SnakeBridge.ThreadAffinityTest do
  # An Elixir process is a Python thread (docs/backends.md, "Threading model"):
  # on both backends, the calls one process makes behave as the statements of
  # one Python thread, and another process is another thread.
  use ExUnit.Case, async: false

  alias SnakeBridge.{PythonError, TestBackends}

  # Other processes calling all the while, on other threads.
  defp with_noise(backend, fun) do
    stop = :atomics.new(1, [])

    noise =
      for _ <- 1..6 do
        Task.async(fn ->
          Stream.repeatedly(fn -> SnakeBridge.call!("math", "sqrt", [2.0], [], backend: backend) end)
          |> Enum.reduce_while(0, fn _, n -> if :atomics.get(stop, 1) == 1, do: {:halt, n}, else: {:cont, n + 1} end)
        end)
      end

    try do
      fun.()
    after
      :atomics.put(stop, 1, 1)
      Enum.each(noise, &Task.await(&1, 30_000))
    end
  end

  defp ident(o), do: SnakeBridge.call!("threading", "get_ident", [], [], o)

  for backend <- TestBackends.all() do
    describe "(#{TestBackends.name(backend)})" do
      @backend backend

      test "sqlite3 with default settings across a process's calls, while others call" do
        o = [backend: @backend]

        with_noise(@backend, fn ->
          conn = SnakeBridge.call!("sqlite3", "connect", [":memory:"], [], o)
          SnakeBridge.method!(conn, "execute", ["create table t (x integer)"], [], o)

          for i <- 1..200 do
            SnakeBridge.method!(conn, "execute", ["insert into t values (?)", [i]], [], o)
          end

          cursor = SnakeBridge.method!(conn, "execute", ["select count(*), sum(x) from t"], [], o)
          assert SnakeBridge.method!(cursor, "fetchone", [], [], o) == {200, Enum.sum(1..200)}
          # Streamed, and through async_call: the same thread.
          rows = SnakeBridge.method!(conn, "execute", ["select x from t order by x limit 5"], [], o)
          assert SnakeBridge.iter(rows, o) |> Enum.to_list() == Enum.map(1..5, &{&1})
          async = SnakeBridge.async_call(conn, "execute", ["select max(x) from t"], [], o)
          assert {:ok, cursor} = SnakeBridge.await(async, 10_000)
          assert SnakeBridge.method!(cursor, "fetchone", [], [], o) == {200}
          SnakeBridge.method!(conn, "close", [], [], o)
        end)
      end

      test "decimal's context, threading.local and asyncio's loop persist for the process, not for others" do
        o = [backend: @backend]

        set = fn prec, x ->
          SnakeBridge.exec!(
            # A module shared by every caller (of the interpreter), holding a threading.local.
            "import sys, types, threading\n" <>
              "if 'sb_affinity' not in sys.modules:\n" <>
              "    m = types.ModuleType('sb_affinity')\n" <>
              "    m.local = threading.local()\n" <>
              "    sys.modules['sb_affinity'] = m\n" <>
              "import decimal, asyncio, sb_affinity\n" <>
              "decimal.getcontext().prec = #{prec}\n" <>
              "sb_affinity.local.x = #{x}\n" <>
              "asyncio.set_event_loop(asyncio.new_event_loop())\n" <>
              "sb_affinity.local.loop = asyncio.get_event_loop()\n",
            %{},
            o
          )
        end

        read = fn ->
          SnakeBridge.eval!(
            "(str(__import__('decimal').Decimal(1) / 7), getattr(__import__('sb_affinity').local, 'x', None), " <>
              "__import__('asyncio').get_event_loop() is getattr(__import__('sb_affinity').local, 'loop', 0))",
            %{},
            o
          )
        end

        with_noise(@backend, fn ->
          set.(5, 1)
          # Python's own answers in one thread, for comparison.
          {p5, p28} =
            SnakeBridge.eval!(
              "(str(__import__('decimal').Context(prec=5).divide(1, 7)), " <>
                "str(__import__('decimal').Context(prec=28).divide(1, 7)))",
              %{},
              o
            )

          for _ <- 1..20, do: assert(read.() == {p5, 1, true})

          # Another process: its own thread, Python's defaults there.
          other =
            Task.async(fn ->
              prec = SnakeBridge.eval!("__import__('decimal').getcontext().prec", %{}, o)
              set.(9, 2)
              {prec, read.() |> elem(1)}
            end)
            |> Task.await()

          assert other == {28, 2}
          # Ours is untouched by the other's.
          assert read.() == {p5, 1, true}
          assert p28 != p5
        end)
      end

      test "a process's calls share one thread identity; other processes have others" do
        o = [backend: @backend]
        mine = for _ <- 1..50, uniq: true, do: ident(o)
        assert [_one] = mine
        # Eight processes alive together (a process gone leaves its thread to the next).
        parent = self()

        tasks =
          for _ <- 1..8 do
            Task.async(fn ->
              i = ident(o)
              send(parent, :called)
              receive do: (:go -> i)
            end)
          end

        for _ <- tasks, do: assert_receive(:called, 10_000)
        Enum.each(tasks, &send(&1.pid, :go))
        others = Enum.map(tasks, &Task.await/1)
        # On a pool, other processes may be on another worker (another Python process).
        if @backend == :nif do
          refute hd(mine) in others
          assert others |> Enum.uniq() |> length() == 8
        end

        # async_call and async_stream run where the caller's calls run.
        assert {:ok, hd(mine)} == SnakeBridge.await(SnakeBridge.async_call("threading", "get_ident", [], [], o), 5_000)
      end

      test "a thread a dead process left serves the next with none of its thread-local state" do
        o = [backend: @backend]

        # Many short-lived processes in turn: each sets decimal precision and
        # reads what it found first. None finds another's.
        found =
          for i <- 1..30 do
            Task.async(fn ->
              prec = SnakeBridge.eval!("__import__('decimal').getcontext().prec", %{}, o)
              SnakeBridge.exec!("import decimal\ndecimal.getcontext().prec = #{i + 1}", %{}, o)
              prec
            end)
            |> Task.await()
          end

        assert Enum.uniq(found) == [28]
      end
    end
  end

  test "generated wrappers run on the calling process's thread (sqlite3 without check_same_thread)" do
    conn = SnakeBridge.ThreadAffinityTest.Sqlite3.connect!(args: [":memory:"])
    SnakeBridge.method!(conn, "execute", ["create table t (x)"])
    for i <- 1..20, do: SnakeBridge.method!(conn, "execute", ["insert into t values (?)", [i]])
    cursor = SnakeBridge.method!(conn, "execute", ["select sum(x) from t"])
    assert SnakeBridge.method!(cursor, "fetchone") == {210}
  end

  test "in-process: 2,000 calling processes, the OS threads stay within the bound and all calls succeed" do
    max = SnakeBridge.Native.stats().max_threads
    parent = self()

    pids =
      for i <- 1..2_000 do
        spawn(fn ->
          v = SnakeBridge.call!("math", "sqrt", [i * 1.0])
          send(parent, {:done, self(), v})
          receive do: (:go -> :ok)
        end)
      end

    results = for pid <- pids, do: receive(do: ({:done, ^pid, v} -> v))
    assert results == Enum.map(1..2_000, &:math.sqrt(&1 * 1.0))
    stats = SnakeBridge.Native.stats()
    assert stats.threads <= max
    # Past the bound processes share threads: all 2,000 are bound at once.
    assert stats.bound_processes >= 2_000
    Enum.each(pids, &send(&1, :go))
  end

  test "pool: 2,000 calling processes on a worker bounded to 4 threads share them, and all calls succeed" do
    name = :"affinity_pool_#{System.unique_integer([:positive])}"
    {:ok, pool} = SnakeBridge.Pool.start_link(name: name, size: 1, threads: 4)
    o = [backend: {:pool, name}]

    idents =
      1..2_000
      |> Task.async_stream(fn _ -> ident(o) end, max_concurrency: 200, timeout: 60_000)
      |> Enum.map(fn {:ok, i} -> i end)

    assert idents |> Enum.uniq() |> length() <= 4
    [{worker, _node}] = SnakeBridge.Pool.workers(name)
    {:ok, %{"threads" => threads}} = SnakeBridge.Runtime.run({:stats}, backend: {:worker, worker}, timeout: 5_000)
    assert threads <= 4
    GenServer.stop(pool)
  end

  describe "in-process: what the BEAM owns" do
    test "signal handlers, alarms, timers, signals to itself, _exit and fork give clear errors; the VM lives on" do
      refusals = [
        {"import signal\nsignal.signal(signal.SIGUSR1, lambda s, f: None)", "ValueError"},
        {"import signal\nsignal.alarm(1)", "RuntimeError"},
        {"import signal\nsignal.setitimer(signal.ITIMER_REAL, 0.01)", "RuntimeError"},
        {"import signal\nsignal.raise_signal(signal.SIGTERM)", "RuntimeError"},
        {"import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", "RuntimeError"},
        {"import os, signal\nos.killpg(os.getpgrp(), signal.SIGTERM)", "RuntimeError"},
        {"import os\nos._exit(3)", "RuntimeError"},
        {"import os\nos.abort()", "RuntimeError"},
        {"import os\nos.fork()", "RuntimeError"}
      ]

      for {code, type} <- refusals do
        assert {:error, %PythonError{type: ^type, message: message}} = SnakeBridge.exec(code, %{})
        assert message =~ "in-process", code
        assert message =~ "port worker", code
      end

      # What does not act on the BEAM still works: signal 0 (does it exist?),
      # signals to other processes, reading handlers.
      assert SnakeBridge.eval!("__import__('os').kill(__import__('os').getpid(), 0)", %{}) == nil

      assert is_integer(
               SnakeBridge.eval!("int(__import__('signal').getsignal(__import__('signal').SIGINT) is not None)", %{})
             )

      {:ok, _} = SnakeBridge.call("subprocess", "run", [["true"]])
      assert Process.alive?(self())
    end

    test "multiprocessing works: its processes start with spawn (fork would copy the BEAM)" do
      SnakeBridge.exec!(
        "import sys, types\n" <>
          "def squares(n):\n" <>
          "    import multiprocessing as mp\n" <>
          "    with mp.Pool(2) as pool:\n" <>
          "        return pool.map(abs, range(-n, 0)), mp.get_start_method()\n" <>
          "sys.modules.setdefault('sb_mp', types.ModuleType('sb_mp')).squares = squares\n",
        %{}
      )

      assert SnakeBridge.call!("sb_mp", "squares", [5], [], timeout: 60_000) == {[5, 4, 3, 2, 1], "spawn"}

      assert {:error, %PythonError{type: "RuntimeError", message: message}} =
               SnakeBridge.exec(
                 "import multiprocessing as mp\nmp.get_context('fork').Process(target=print).start()",
                 %{}
               )

      assert message =~ "os.fork"
    end
  end
end
