defmodule SnakeBridge.Test.Helpers do
  @moduledoc false
  import ExUnit.Assertions, only: [flunk: 1]

  @doc """
  Waits until no thread of the in-process pool is inside Python. The fast path
  is only taken then, so tests that promote a call site to run on the scheduler
  wait for work left over from earlier tests first.
  """
  def await_idle_pool(ms \\ 8_000) do
    cond do
      SnakeBridge.Native.stats().busy_workers == 0 -> :ok
      ms <= 0 -> flunk("the Python thread pool stayed busy")
      true -> Process.sleep(20) && await_idle_pool(ms - 20)
    end
  end

  @doc "Polls `fun` every 10 ms until it returns true (then true) or `ms` pass (then false)."
  def wait_until(ms, fun) do
    deadline = System.monotonic_time(:millisecond) + ms
    poll(deadline, fun)
  end

  defp poll(deadline, fun) do
    cond do
      fun.() -> true
      System.monotonic_time(:millisecond) > deadline -> false
      true -> Process.sleep(10) && poll(deadline, fun)
    end
  end
end
