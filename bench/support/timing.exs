# Timing shared by the bench scripts (Code.require_file it).
defmodule BenchTiming do
  @moduledoc false

  # The durations of `n` timed calls of `f` made after `warmup` untimed ones,
  # in nanoseconds, sorted.
  def sorted_samples(f, n, warmup) do
    for _ <- 1..warmup//1, do: f.()

    for _ <- 1..n do
      t0 = System.monotonic_time(:nanosecond)
      f.()
      System.monotonic_time(:nanosecond) - t0
    end
    |> Enum.sort()
  end

  # The median duration of `f`, in microseconds, over `n` timed calls made
  # after `warmup` untimed ones.
  def median_us(f, n, warmup), do: Enum.at(sorted_samples(f, n, warmup), div(n, 2)) / 1000
end
