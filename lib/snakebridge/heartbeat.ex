defmodule SnakeBridge.Heartbeat do
  @moduledoc false
  # A process ticking every millisecond while some work runs, to show whether
  # the BEAM's schedulers stayed responsive: the worst gap between its ticks.
  # Used by `mix snakebridge.bench` and the test suite.

  @doc """
  Runs `fun` while the heartbeat ticks (started `settle_ms` before `fun`);
  returns `{fun's result, elapsed ms of fun, worst gap between ticks in µs}`.
  """
  def measure(fun, settle_ms \\ 0) do
    parent = self()

    beat =
      spawn_link(fn ->
        send(parent, {__MODULE__, :started, self()})
        tick(parent, System.monotonic_time(:microsecond), 0)
      end)

    receive do
      {__MODULE__, :started, ^beat} -> :ok
    end

    if settle_ms > 0, do: Process.sleep(settle_ms)
    started = System.monotonic_time(:millisecond)
    result = fun.()
    elapsed = System.monotonic_time(:millisecond) - started
    send(beat, :stop)

    receive do
      {__MODULE__, :worst_gap, ^beat, us} -> {result, elapsed, us}
    after
      5_000 -> raise "the heartbeat process did not answer"
    end
  end

  defp tick(parent, last, worst) do
    receive do
      :stop -> send(parent, {__MODULE__, :worst_gap, self(), worst})
    after
      1 ->
        now = System.monotonic_time(:microsecond)
        tick(parent, now, max(worst, now - last))
    end
  end
end
