# A pool's figures for one build, for before/after comparisons run
# alternately from two checkouts (docs/benchmarks.md, "Where a worker's time
# goes"): a lone caller's math.sqrt and Fraction new + method through a pool
# of 1 (medians; math.sqrt also from a process with 1,000 messages waiting),
# then 100 processes x 1,000 math.sqrt through a pool of 1
# (two bursts) and of 2 (calls/s).
#
#     MIX_ENV=prod mix run bench/pool_concurrency.exs
Code.require_file("support/timing.exs", __DIR__)
Code.require_file("support/pools.exs", __DIR__)

defmodule PoolConcurrency do
  def with_pool(size, fun), do: BenchPools.with_pool(:"pool_concurrency_#{size}", size, fun)

  def median_us(f, n), do: Float.round(BenchTiming.median_us(f, n, div(n, 5)), 1)

  def burst(backend, callers, per) do
    f = fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], backend: backend) end
    for _ <- 1..2_000, do: f.()
    t0 = System.monotonic_time(:nanosecond)

    1..callers
    |> Enum.map(fn _ -> Task.async(fn -> for _ <- 1..per, do: f.() end) end)
    |> Task.await_many(:infinity)

    round(callers * per / ((System.monotonic_time(:nanosecond) - t0) / 1.0e9))
  end
end

PoolConcurrency.with_pool(1, fn pool ->
  trivial =
    PoolConcurrency.median_us(fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], backend: pool) end, 20_000)

  object =
    PoolConcurrency.median_us(
      fn ->
        {:ok, frac} = SnakeBridge.new("fractions", "Fraction", [3, 4], [], backend: pool)
        {:ok, _} = SnakeBridge.method(frac, "limit_denominator", [2])
      end,
      5_000
    )

  # The same call from a process with 1,000 unrelated messages waiting (a
  # busy server's): a call that searches its mailbox pays for each of them.
  crowded =
    Task.async(fn ->
      for i <- 1..1_000, do: send(self(), {:unrelated, i})
      PoolConcurrency.median_us(fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], backend: pool) end, 10_000)
    end)
    |> Task.await(:infinity)

  bursts = for _ <- 1..2, do: PoolConcurrency.burst(pool, 100, 1_000)

  IO.puts(
    "pool of 1: math.sqrt #{trivial} µs (#{crowded} µs with 1,000 messages waiting), " <>
      "Fraction new + method #{object} µs, 100 x 1,000 calls: #{inspect(bursts)} calls/s"
  )
end)

PoolConcurrency.with_pool(2, fn pool ->
  IO.puts("pool of 2: 100 x 1,000 calls: #{PoolConcurrency.burst(pool, 100, 1_000)} calls/s")
end)
