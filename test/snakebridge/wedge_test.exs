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

  defp cpu_ticks do
    [utime, stime] = File.read!("/proc/self/stat") |> String.split(" ") |> Enum.slice(13, 2)
    String.to_integer(utime) + String.to_integer(stime)
  end

  # CPU ticks (1/100 s) this OS process used over `ms`.
  defp cpu_over(ms) do
    c0 = cpu_ticks()
    Process.sleep(ms)
    cpu_ticks() - c0
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

    # Control: the wedge alone (one core busy in the regex).
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

        # Their threads wait without spinning: the process uses about what the
        # wedge alone used.
        with_waiters = cpu_over(1_000)
        assert with_waiters <= alone + 30, "CPU ticks over 1 s: #{with_waiters} with the waiting calls, #{alone} alone"

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
