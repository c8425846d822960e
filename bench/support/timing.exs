# Timing shared by the bench scripts (Code.require_file it).
defmodule BenchTiming do
  @moduledoc false

  # The median duration of `f`, in microseconds, over `n` timed calls made
  # after `warmup` untimed ones.
  def median_us(f, n, warmup) do
    for _ <- 1..warmup//1, do: f.()

    samples =
      for _ <- 1..n do
        t0 = System.monotonic_time(:nanosecond)
        f.()
        System.monotonic_time(:nanosecond) - t0
      end

    Enum.at(Enum.sort(samples), div(n, 2)) / 1000
  end
end
