defmodule SnakeBridge.WedgeTest do
  # C code holding the GIL past its timeout cannot be interrupted in-process
  # (docs/backends.md, "Timeouts"). While it runs: other calls still return by
  # their timeouts, waiting calls burn no CPU (at most a couple of threads wait
  # in CPython's own GIL wait, which wakes every switch interval), the OS
  # threads stay bounded, and the wedge is reported (stats and a log line).
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  @moduletag timeout: 120_000

  # re's matcher is C code that holds the GIL: catastrophic backtracking on
  # (a+)+$ takes ~2^n steps for n a's and a b.
  defp regex_call(n, timeout),
    do: SnakeBridge.call("re", "match", ["(a+)+$", String.duplicate("a", n) <> "b"], [], timeout: timeout)

  # n for a match of about `ms` on this machine now.
  defp calibrated_n(ms) do
    {us, {:ok, nil}} = :timer.tc(fn -> regex_call(18, 60_000) end)
    18 + max(0, round(:math.log2(ms * 1000 / max(us, 1))))
  end

  # CPU ticks (1/100 s) of each thread of this OS process: %{tid => ticks}.
  defp thread_ticks do
    for tid <- File.ls!("/proc/self/task"), into: %{} do
      ticks =
        case File.read("/proc/self/task/#{tid}/stat") do
          {:ok, stat} ->
            # Fields after the command name (which may hold spaces): utime, stime are 14 and 15.
            [_, rest] = String.split(stat, ") ", parts: 2)
            [utime, stime] = rest |> String.split(" ") |> Enum.slice(11, 2)
            String.to_integer(utime) + String.to_integer(stime)

          _gone ->
            0
        end

      {tid, ticks}
    end
  end

  # CPU ticks this OS process used over `ms`, leaving out its busiest thread
  # (the one running the wedge): what everything else burnt, which does not
  # depend on how much CPU the wedge itself got from a loaded machine.
  defp cpu_over(ms) do
    t0 = thread_ticks()
    Process.sleep(ms)
    deltas = for {tid, ticks} <- thread_ticks(), do: ticks - Map.get(t0, tid, 0)
    Enum.sum(deltas) - Enum.max(deltas, fn -> 0 end)
  end

  defp wait_until(fun, tries \\ 200) do
    cond do
      fun.() -> :ok
      tries == 0 -> flunk("still not so after 10 s")
      true -> Process.sleep(50) && wait_until(fun, tries - 1)
    end
  end

  test "a call wedged in C: others time out on time, waiting burns no CPU, threads stay bounded, it is reported" do
    # Nothing wedged from earlier tests, and the watch has seen it so (it
    # reports when the count leaves 0).
    wait_until(fn -> SnakeBridge.Native.stats().wedged_calls == 0 end)
    Process.sleep(1_100)
    # Long enough (~5 s) that the watch, looking every second, sees it for sure
    # even if the calibration is off by half.
    n = calibrated_n(5_000)

    # Control: the wedge alone (one core busy in the regex; the rest of the
    # process, its BEAM schedulers and threads, nearly idle).
    # (Half as long: it only has to outlast the measurement.)
    control = Task.async(fn -> regex_call(n - 1, 60_000) end)
    Process.sleep(200)
    alone = cpu_over(1_000)
    Task.await(control, 60_000)

    log =
      capture_log(fn ->
        wedge = Task.async(fn -> regex_call(n, 100) end)
        Process.sleep(200)

        # 200 processes call while it holds the GIL, each with a 100 ms timeout.
        started = System.monotonic_time(:millisecond)

        results =
          1..200
          |> Enum.map(fn _ -> Task.async(fn -> SnakeBridge.call("math", "sqrt", [2.0], [], timeout: 100) end) end)
          |> Enum.map(&Task.await(&1, 10_000))

        waited = System.monotonic_time(:millisecond) - started
        assert Enum.all?(results, &match?({:error, %SnakeBridge.TimeoutError{}}, &1))
        # Every one by its timeout, plus scheduling: not queued behind the wedge.
        assert waited < 1_000

        # Their threads wait without spinning: besides the wedge, the process
        # uses about what it used with the wedge alone.
        with_waiters = cpu_over(1_000)

        assert with_waiters <= alone + 30,
               "CPU ticks over 1 s besides the wedge: #{with_waiters} with the waiting calls, #{alone} with the wedge alone"

        stats = SnakeBridge.Native.stats()
        assert stats.threads <= stats.max_threads
        assert stats.wedged_calls >= 1
        assert {:error, %SnakeBridge.TimeoutError{}} = Task.await(wedge, 60_000)
        # Reported when it ended too (the watch looks every second).
        wait_until(fn -> SnakeBridge.Native.stats().wedged_calls == 0 end)
        Process.sleep(1_200)
      end)

    assert log =~ "still running more than a second after their timeout"
    assert log =~ "SnakeBridge.Pool"
    assert log =~ "could not be interrupted have returned"
    # And in-process calls work again.
    assert SnakeBridge.call!("math", "sqrt", [4.0]) == 2.0
  end
end
