# Many callers through one worker, by kind of call (docs/benchmarks.md, "Many
# callers: the GIL between tasks, replies in one write"): 100 processes x
# 1,000 calls at once through a pool of 1, for
#
# - `math.sqrt(2.0)`, which the thread reading the request answers itself
#   (docs/backends.md, "Calls that run where they arrive"),
# - `operator.neg(2)` and `json.dumps` of a 4-key map, which run on their
#   caller's Python thread, as most calls do;
#
# calls/s and the CPU a call took in the BEAM and in the program (from /proc),
# then the same call's median from a lone caller. For before/after
# comparisons, run it alternately from two checkouts built with MIX_ENV=prod.
#
#     MIX_ENV=prod mix run bench/pool_calls.exs [--rounds N]
# Linux only (/proc/<pid>/stat).
Code.require_file("support/timing.exs", __DIR__)
Code.require_file("support/pools.exs", __DIR__)

defmodule PoolCalls do
  import BenchPools, only: [cpu_us: 1]

  @callers 100
  @per 1_000
  @map %{"a" => 1, "b" => [1, 2], "c" => "x", "d" => nil}

  def calls(pool) do
    [
      {"math.sqrt", fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], backend: pool) end},
      {"operator.neg", fn -> {:ok, -2} = SnakeBridge.call("operator", "neg", [2], [], backend: pool) end},
      {"json.dumps", fn -> {:ok, "{" <> _} = SnakeBridge.call("json", "dumps", [@map], [], backend: pool) end}
    ]
  end

  def measure(pool, {name, f}) do
    [worker] = BenchPools.workers(pool)
    os_pid = BenchPools.os_pid(worker)
    b0 = cpu_us(System.pid())
    p0 = cpu_us(os_pid)
    t0 = System.monotonic_time(:microsecond)

    1..@callers
    |> Enum.map(fn _ -> Task.async(fn -> for _ <- 1..@per, do: f.() end) end)
    |> Task.await_many(:infinity)

    t = System.monotonic_time(:microsecond) - t0
    n = @callers * @per
    beam = Float.round((cpu_us(System.pid()) - b0) / n, 1)
    program = Float.round((cpu_us(os_pid) - p0) / n, 1)
    lone = Float.round(BenchTiming.median_us(f, 4_000, 800), 1)

    "#{name} #{Float.round(n / t * 1000, 1)}k calls/s (CPU a call: BEAM #{beam} µs, program #{program} µs), lone #{lone} µs"
  end
end

{opts, _, _} = OptionParser.parse(System.argv(), strict: [rounds: :integer])

IO.puts(
  "bench/pool_calls.exs — #{DateTime.utc_now() |> DateTime.truncate(:second)} — " <>
    "#{System.schedulers_online()} schedulers; load average " <>
    (File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" "))
)

BenchPools.with_pool(:pool_calls, 1, fn pool ->
  for round <- 1..(opts[:rounds] || 1) do
    IO.puts("round #{round}: " <> Enum.map_join(PoolCalls.calls(pool), " | ", &PoolCalls.measure(pool, &1)))
  end
end)
