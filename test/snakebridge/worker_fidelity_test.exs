defmodule SnakeBridge.WorkerFidelityTest do
  # A worker started with threads: 1 runs its Python on the program's main
  # thread, as the statements of a script (docs/backends.md, "Threading
  # model"): signal handlers, alarms and KeyboardInterrupt work, and CPython's
  # own test modules give the counts plain python gives.
  use ExUnit.Case, async: false

  alias SnakeBridge.PythonError

  @moduletag timeout: 300_000

  setup do
    name = :"fidelity_#{System.unique_integer([:positive])}"
    start_supervised!({SnakeBridge.Pool, name: name, size: 1, threads: 1})
    %{o: [backend: {:pool, name}], name: name}
  end

  test "Python runs on the main thread; handlers, timers and SIGINT behave as in a script", %{o: o, name: name} do
    assert SnakeBridge.eval!(
             "__import__('threading').current_thread() is __import__('threading').main_thread()",
             %{},
             o
           )

    # Another process, the same and only thread.
    assert Task.async(fn ->
             SnakeBridge.eval!(
               "__import__('threading').current_thread() is __import__('threading').main_thread()",
               %{},
               o
             )
           end)
           |> Task.await()

    # A handler installed by one call runs for a timer that fires during a later one.
    SnakeBridge.exec!(
      "import signal, sys, types\n" <>
        "m = sys.modules.setdefault('sb_sig', types.ModuleType('sb_sig'))\n" <>
        "m.hits = []\n" <>
        "signal.signal(signal.SIGALRM, lambda s, f: m.hits.append(s))\n",
      %{},
      o
    )

    sigalrm = SnakeBridge.eval!("int(__import__('signal').SIGALRM)", %{}, o)

    SnakeBridge.call!(
      "signal",
      "setitimer",
      [SnakeBridge.getattr!(SnakeBridge.call!("builtins", "__import__", ["signal"], [], o), "ITIMER_REAL", o), 0.05],
      [],
      o
    )

    SnakeBridge.call!("time", "sleep", [0.3], [], o)
    assert SnakeBridge.eval!("list(__import__('sb_sig').hits)", %{}, o) == [sigalrm]

    # signal.alarm with its handler raising: the exception ends the call it interrupts.
    SnakeBridge.exec!(
      "import signal\n" <>
        "def on_alarm(s, f):\n    raise TimeoutError('alarm')\n" <>
        "signal.signal(signal.SIGALRM, on_alarm)\n" <>
        "signal.alarm(1)\n",
      %{},
      o
    )

    assert {:error, %PythonError{type: "TimeoutError", message: "alarm"}} =
             SnakeBridge.call("time", "sleep", [5], [], o ++ [timeout: 10_000])

    # SIGINT to itself: KeyboardInterrupt in the running call; the worker lives on.
    [{worker, _}] = SnakeBridge.Pool.workers(name)
    pid = SnakeBridge.call!("os", "getpid", [], [], o)

    assert {:error, %PythonError{type: "KeyboardInterrupt"}} =
             SnakeBridge.exec("import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(2)", %{}, o)

    assert SnakeBridge.call!("os", "getpid", [], [], o) == pid
    assert [{^worker, _}] = SnakeBridge.Pool.workers(name)
  end

  # unittest's counts for `names`: run, failures, errors, skipped, expected
  # failures, unexpected successes.
  # (What the tests print, from their own threads too, is kept, the same way
  # in both runs.)
  @runner """
  import unittest, io, contextlib
  def run(names):
      suite = unittest.defaultTestLoader.loadTestsFromNames(names)
      with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
          r = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
      return [r.testsRun, len(r.failures), len(r.errors), len(r.skipped), len(r.expectedFailures),
              len(r.unexpectedSuccesses)]
  """

  @suites [
    # test_signal without its slowest class (SiginterruptTest, ~35 s) and the
    # Windows-only one.
    ~w(GenericTests ItimerTest PendingSignalsTests PosixTests RaiseSignalTest StressTest
       WakeupFDTests WakeupSignalTests WakeupSocketSignalTests)
    |> Enum.map(&"test.test_signal.#{&1}"),
    ["test.test_threading"]
  ]

  test "CPython's test_signal and test_threading give plain python's counts", %{o: o} do
    python = SnakeBridge.Config.python()

    SnakeBridge.exec!(
      @runner <>
        "import sys, types\nsys.modules['sb_runner'] = types.ModuleType('sb_runner')\nsys.modules['sb_runner'].run = run\n",
      %{},
      o
    )

    for names <- @suites do
      {out, 0} = System.cmd(python, ["-c", @runner <> "import json, sys\nprint(json.dumps(run(sys.argv[1:])))" | names])
      plain = out |> String.split("\n", trim: true) |> List.last() |> then(&SnakeBridge.call!("json", "loads", [&1]))
      worker = SnakeBridge.call!("sb_runner", "run", [names], [], o ++ [timeout: 240_000])
      assert worker == plain, "#{inspect(names)}: worker #{inspect(worker)}, plain python #{inspect(plain)}"
      assert hd(plain) > 0
    end
  end
end
