defmodule SnakeBridge.ThreadFreeTest do
  # Calls that cannot tell which thread runs them (a C function of math or
  # cmath given numbers) run on the calling scheduler when nothing else is in
  # Python (docs/backends.md, "Calls that run where they arrive"); everything
  # else, and these too while Python is busy, runs on the process's own thread.
  # Either way the caller gets what the Python thread would give.
  use ExUnit.Case, async: false

  alias SnakeBridge.Test.Helpers

  @moduletag timeout: 60_000

  defp scheduler_calls, do: SnakeBridge.Native.stats().scheduler_calls

  # The same call, run as Python code on the process's thread (eval never
  # takes the scheduler path): the reference every scheduler call must match.
  defp on_thread(expr), do: SnakeBridge.eval("(lambda math: #{expr})(__import__('math'))", %{}, [])

  # No thread in a call, nor keeping the GIL for its caller's next call (for
  # 10 µs after each call, eval's included).
  defp settle, do: Helpers.await_idle_pool()

  setup_all do
    # A module not imported yet is imported on the thread (an import runs
    # Python code); after that its calls may run on the scheduler.
    SnakeBridge.exec!("import math, cmath", %{})
    :ok
  end

  setup do
    # A process's first call may find its thread still clearing what an
    # earlier process left in thread-local state: a call first, run after that.
    {:ok, nil} = SnakeBridge.eval("None", %{})
    settle()
    :ok
  end

  test "math and cmath calls on numbers run on the scheduler and give what the thread gives" do
    cases = [
      {"sqrt", [2.0], [], "math.sqrt(2.0)"},
      {"sqrt", [2], [], "math.sqrt(2)"},
      {"fsum", [[0.1, 0.2, 0.3]], [], "math.fsum([0.1, 0.2, 0.3])"},
      {"hypot", [3, 4, 12], [], "math.hypot(3, 4, 12)"},
      {"gcd", [12, 18, 27], [], "math.gcd(12, 18, 27)"},
      {"isclose", [1.0, 1.001], [rel_tol: 0.01], "math.isclose(1.0, 1.001, rel_tol=0.01)"},
      {"prod", [[2, 3, 4]], [start: 5], "math.prod([2, 3, 4], start=5)"},
      {"dist", [[0, 0], [3.0, 4.0]], [], "math.dist([0, 0], [3.0, 4.0])"},
      {"floor", [-2.5], [], "math.floor(-2.5)"},
      {"isqrt", [9_223_372_036_854_775_807], [], "math.isqrt(9223372036854775807)"},
      {"inf", [], [], "None"}
    ]

    for {name, args, kwargs, expr} <- cases do
      settle()
      before = scheduler_calls()
      got = SnakeBridge.call("math", name, args, kwargs)

      if name == "inf" do
        # math.inf is a float, not a function: the thread's TypeError.
        assert {:error, %SnakeBridge.PythonError{type: "TypeError"}} = got
        assert scheduler_calls() == before
      else
        assert got == on_thread(expr), "math.#{name}"

        assert scheduler_calls() == before + 1,
               "math.#{name} ran on the scheduler #{inspect(SnakeBridge.Native.stats())} #{inspect(args)}"
      end
    end

    settle()
    before = scheduler_calls()
    {:ok, root} = SnakeBridge.call("cmath", "sqrt", [-4.0])
    assert {:ok, true} = SnakeBridge.eval("r == 2j", %{"r" => root})
    assert scheduler_calls() == before + 1
  end

  test "Python errors of a scheduler call are the thread's errors" do
    for {name, args, expr} <- [
          {"sqrt", [-1.0], "math.sqrt(-1.0)"},
          {"log", [0], "math.log(0)"},
          {"sqrt", [], "math.sqrt()"}
        ] do
      settle()
      before = scheduler_calls()
      assert {:error, %SnakeBridge.PythonError{} = e} = SnakeBridge.call("math", name, args)
      assert {:error, %SnakeBridge.PythonError{} = reference} = on_thread(expr)
      assert {e.type, e.message} == {reference.type, reference.message}

      assert scheduler_calls() == before + 1,
             "math.#{name} ran on the scheduler #{inspect(SnakeBridge.Native.stats())} #{inspect(args)}"
    end
  end

  test "anything else goes to the process's thread: other modules, big integers, strings, factorial" do
    before = scheduler_calls()
    assert {:ok, 2_432_902_008_176_640_000} == SnakeBridge.call("math", "factorial", [20])
    assert {:ok, 1} == SnakeBridge.call("math", "gcd", [2 ** 70, 3])
    assert {:error, %SnakeBridge.PythonError{type: "TypeError"}} = SnakeBridge.call("math", "sqrt", ["4"])
    assert {:ok, 3} == SnakeBridge.call("operator", "add", [1, 2])
    {:ok, four} = SnakeBridge.call("decimal", "Decimal", [4], [], return: :ref)
    settle()
    assert {:ok, 2.0} == SnakeBridge.call("math", "sqrt", [four])
    assert scheduler_calls() == before

    # The return mode is honoured on the scheduler too.
    settle()
    assert {:ok, %SnakeBridge.Object{} = root} = SnakeBridge.call("math", "sqrt", [2.0], [], return: :ref)
    assert scheduler_calls() == before + 1
    assert {:ok, true} = SnakeBridge.eval("r == 2 ** 0.5", %{"r" => root})
  end

  test "a Python function put in math's place runs on the caller's thread, as Python would run it" do
    thread = SnakeBridge.eval!("__import__('threading').get_ident()")
    settle()

    on_exit(fn ->
      Task.async(fn -> SnakeBridge.exec!("import math\nmath.sqrt = saved_sqrt_for_test", %{}) end) |> Task.await()
    end)

    SnakeBridge.exec!(
      "import math, threading, builtins\nbuiltins.saved_sqrt_for_test = math.sqrt\nmath.sqrt = lambda x: threading.get_ident()",
      %{}
    )

    settle()
    before = scheduler_calls()
    assert {:ok, ^thread} = SnakeBridge.call("math", "sqrt", [2.0])
    assert scheduler_calls() == before
  end

  test "while another process's call is in Python, math calls go to their own thread" do
    # Even one that let go of the GIL: its thread may take it back any moment,
    # and a scheduler must never wait for it.
    busy = Task.async(fn -> SnakeBridge.call("time", "sleep", [1.5]) end)
    assert Helpers.wait_until(10_000, fn -> SnakeBridge.Native.stats().busy_threads >= 1 end)
    before = scheduler_calls()
    results = for x <- 1..5, do: SnakeBridge.call("math", "sqrt", [x * 1.0])
    assert SnakeBridge.Native.stats().busy_threads >= 1, "the sleep ended too soon for this test"
    assert scheduler_calls() == before
    assert {:ok, nil} = Task.await(busy, 10_000)
    assert results == for(x <- 1..5, do: on_thread("math.sqrt(#{x}.0)"))
    # Afterwards, the scheduler again.
    settle()
    assert {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0])
    assert scheduler_calls() == before + 1
  end

  test "no garbage collection runs on the scheduler: finalizers run on Python threads" do
    fns =
      SnakeBridge.exec!("""
      import gc, threading
      names = []
      class Fin:
          def __del__(self):
              with open('/proc/self/task/%d/comm' % threading.get_native_id()) as f:
                  names.append(f.read().strip())
      def cycles(n):
          for _ in range(n):
              a, b = Fin(), Fin()
              a.other, b.other = b, a
      def arm():
          global saved
          saved = gc.get_threshold()
          gc.collect()
          cycles(50)
          gc.set_threshold(1)
      def disarm():
          gc.set_threshold(*saved)
          gc.collect()
          return names
      """)

    SnakeBridge.call!(fns["arm"], nil, [])
    settle()
    before = scheduler_calls()
    # An error makes objects a collection counts (the exception, its traceback's lines).
    for _ <- 1..20, do: assert({:error, %SnakeBridge.PythonError{}} = SnakeBridge.call("math", "sqrt", [-1.0]))
    ran_on_scheduler = scheduler_calls() - before
    names = SnakeBridge.call!(fns["disarm"], nil, [])
    assert ran_on_scheduler >= 1
    assert length(names) == 100
    assert Enum.all?(names, &(&1 == "snakebridge-py")), inspect(Enum.frequencies(names))
  end

  describe "through a port worker" do
    setup do
      name = :"thread_free_pool_#{System.unique_integer([:positive])}"
      start_supervised!({SnakeBridge.Pool, name: name, size: 1})
      [{worker, _node}] = SnakeBridge.Pool.workers(name)
      o = [backend: {:pool, name}]
      {:ok, _} = SnakeBridge.exec("import math, cmath", %{}, o)
      %{o: o, worker: worker}
    end

    defp answered_here(worker) do
      {:ok, %{"answered_here" => n}} = SnakeBridge.Runtime.run({:stats}, backend: {:worker, worker}, timeout: 5_000)
      n
    end

    defp worker_thread(o, expr), do: SnakeBridge.eval("(lambda math: #{expr})(__import__('math'))", %{}, o)

    test "the thread that reads a math call answers it, with the caller's thread's result", %{o: o, worker: worker} do
      before = answered_here(worker)

      for x <- 1..20 do
        assert SnakeBridge.call("math", "sqrt", [x * 1.0], [], o) == worker_thread(o, "math.sqrt(#{x}.0)")
      end

      assert SnakeBridge.call("math", "isclose", [1.0, 1.001], [rel_tol: 0.01], o) ==
               worker_thread(o, "math.isclose(1.0, 1.001, rel_tol=0.01)")

      assert {:error, %SnakeBridge.PythonError{type: "ValueError"}} = SnakeBridge.call("math", "sqrt", [-1.0], [], o)
      # Each call follows an eval, whose thread may still keep the GIL for a
      # few microseconds: most calls, not necessarily all, are answered here.
      assert answered_here(worker) > before
    end

    test "while another caller's request is in Python, math calls go to their caller's thread", %{o: o, worker: worker} do
      busy = Task.async(fn -> SnakeBridge.call("time", "sleep", [1.5], [], o) end)

      assert Helpers.wait_until(5_000, fn ->
               {:ok, %{"requests" => n}} = SnakeBridge.Runtime.run({:stats}, backend: {:worker, worker}, timeout: 5_000)
               n >= 1
             end)

      before = answered_here(worker)
      results = for x <- 1..5, do: SnakeBridge.call("math", "sqrt", [x * 1.0], [], o)
      assert answered_here(worker) == before
      assert {:ok, nil} = Task.await(busy, 10_000)
      assert results == for(x <- 1..5, do: worker_thread(o, "math.sqrt(#{x}.0)"))
    end

    test "a Python function in math's place runs on the caller's thread", %{o: o, worker: worker} do
      thread = SnakeBridge.eval!("__import__('threading').get_ident()", %{}, o)
      SnakeBridge.exec!("import math, threading\nmath.sqrt = lambda x: threading.get_ident()", %{}, o)
      before = answered_here(worker)
      for _ <- 1..5, do: assert({:ok, ^thread} = SnakeBridge.call("math", "sqrt", [2.0], [], o))
      assert answered_here(worker) == before
    end

    test "other calls go to the caller's thread", %{o: o, worker: worker} do
      before = answered_here(worker)
      assert {:ok, 2_432_902_008_176_640_000} == SnakeBridge.call("math", "factorial", [20], [], o)
      assert {:ok, 1} == SnakeBridge.call("math", "gcd", [2 ** 70, 3], [], o)
      assert {:ok, "[1]"} == SnakeBridge.call("json", "dumps", [[1]], [], o)
      assert {:error, %SnakeBridge.PythonError{type: "TypeError"}} = SnakeBridge.call("math", "sqrt", ["4"], [], o)
      assert answered_here(worker) == before
    end
  end
end
