# What a port worker's object costs the BEAM once it is made and once it is
# garbage-collected (issue 15, "objects at round-trip speed"):
#
# 1. handles alone: 100,000 handles made the way a reply's decoder makes them
#    (with ids the program does not hold, so no Python is involved), kept in a
#    list; then the list dropped and the process garbage-collected, which runs
#    each handle's destructor. Per handle: the time to make it, the time its
#    garbage collection took, and the worker process's reductions and
#    messages for its release once the batch went out.
# 2. objects through a pool of 1: a caller making 20,000
#    `fractions.Fraction(3, 4)` one after another (each collected as the caller
#    goes on): the median call and the BEAM's CPU per object (from /proc).
#
#     MIX_ENV=prod mix run bench/handles.exs [--rounds N]
# For before/after comparisons, run it alternately from two checkouts built
# with MIX_ENV=prod.
Code.require_file("support/timing.exs", __DIR__)
Code.require_file("support/pools.exs", __DIR__)

defmodule BenchHandles do
  import BenchPools, only: [cpu_us: 1]

  @handles 100_000
  @objects 20_000

  def handles_alone(pool) do
    [worker] = BenchPools.workers(pool)
    make = SnakeBridge.Backend.PortWorker.handles(worker)
    me = self()
    {r0, m0} = worker_counts(worker)

    spawn(fn ->
      t0 = System.monotonic_time(:nanosecond)
      list = for i <- 1..@handles, do: make.(i + 1_000_000_000, "builtins.object")
      t1 = System.monotonic_time(:nanosecond)
      ^list = Enum.take(list, @handles)
      # (The list is dead from here on: the collection frees every handle.)
      :erlang.garbage_collect()
      t2 = System.monotonic_time(:nanosecond)
      send(me, {:made, (t1 - t0) / @handles, (t2 - t1) / @handles})
    end)

    {make_ns, gc_ns} = receive(do: ({:made, a, b} -> {a, b}))
    # The releases go out within a batch's 10 ms; give the worker time.
    Process.sleep(300)
    {r1, m1} = worker_counts(worker)

    "handles: make #{round(make_ns)} ns, collect #{round(gc_ns)} ns, worker #{Float.round((r1 - r0) / @handles, 2)} " <>
      "reductions and #{Float.round((m1 - m0) / @handles, 4)} messages per handle"
  end

  # The worker's reductions and the messages it has received so far (counted
  # by a tracer started at the first look).
  defp worker_counts(worker) do
    {:reductions, r} = Process.info(worker, :reductions)
    {r, received(worker)}
  end

  defp received(worker) do
    case Process.get({:tracing, worker}) do
      nil ->
        tracer = spawn(fn -> count(0) end)
        :erlang.trace(worker, true, [:receive, {:tracer, tracer}])
        Process.put({:tracing, worker}, tracer)
        0

      tracer ->
        send(tracer, {:get, self()})
        receive(do: ({:count, n} -> n))
    end
  end

  defp count(n) do
    receive do
      {:get, from} ->
        send(from, {:count, n})
        count(n)

      {:trace, _, :receive, _} ->
        count(n + 1)
    end
  end

  def objects(pool) do
    f = fn -> {:ok, %SnakeBridge.Object{}} = SnakeBridge.new("fractions", "Fraction", [3, 4], [], backend: pool) end
    for _ <- 1..1_000, do: f.()
    b0 = cpu_us(System.pid())
    samples = BenchTiming.sorted_samples(f, @objects, 0)
    beam = (cpu_us(System.pid()) - b0) / @objects

    "objects: Fraction(3, 4) median #{Float.round(Enum.at(samples, div(@objects, 2)) / 1000, 1)} µs, BEAM CPU #{Float.round(beam, 1)} µs an object"
  end
end

{opts, _, _} = OptionParser.parse(System.argv(), strict: [rounds: :integer])

IO.puts(
  "bench/handles.exs — #{DateTime.utc_now() |> DateTime.truncate(:second)} — load average " <>
    (File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" "))
)

BenchPools.with_pool(BenchHandles.Pool, 1, fn pool ->
  for r <- 1..(opts[:rounds] || 3) do
    IO.puts("round #{r}: #{BenchHandles.handles_alone(pool)}; #{BenchHandles.objects(pool)}")
  end
end)
