# Where a pool's time goes under many callers (docs/benchmarks.md, "Requests
# written by the NIF; polling and lookups under many callers"): CPU per call
# of the BEAM and of each port program, read from /proc, over 100 processes x
# 1,000 `math.sqrt` calls.
#
#     MIX_ENV=prod mix run bench/pool_cpu.exs [--rounds N]
#
# Three measurements, each printed per round:
# - the full API (`SnakeBridge.call/5`) through a pool of 1 and of 2, with the
#   reply channel's counters (replies read by their caller / sent to it, the
#   worker's reads);
# - the same transport without the API around it (each process encodes its
#   request once, then registers, writes and waits for the reply with
#   SnakeBridge.Native.channel_call/5 and decodes it): what the layers above the
#   channel cost;
# - the program's capacity: 20,000 requests written at once by one process,
#   then every reply awaited (the program never waits for the BEAM);
# - 100 processes x 20 calls that hold the GIL ~4 ms each (`sum(range(200_000))`)
#   through a pool of 1 and of 2: where a second worker pays off.
# Linux only (/proc/<pid>/stat).
Code.require_file("support/pools.exs", __DIR__)
alias SnakeBridge.{Msgpack, Native, Worker}

defmodule PoolCpu do
  import BenchPools, only: [cpu_us: 1, os_pid: 1]

  @callers 100
  @per 1_000

  def with_pool(name, size, fun),
    do: BenchPools.with_pool(name, size, fn pool -> fun.(BenchPools.workers(pool)) end)

  def channel(worker), do: worker |> SnakeBridge.Workers.lookup() |> elem(2)

  # 100 processes x 1,000 calls of `make_call.()`'s function; calls/s and CPU per call.
  def burst(workers, make_call) do
    pids = Enum.map(workers, &os_pid/1)
    infos = Enum.map(workers, &Native.channel_info(channel(&1)))
    b0 = cpu_us(System.pid())
    p0 = Enum.map(pids, &cpu_us/1)
    t0 = System.monotonic_time(:microsecond)

    1..@callers
    |> Enum.map(fn _ ->
      Task.async(fn ->
        f = make_call.()
        for _ <- 1..@per, do: f.()
      end)
    end)
    |> Task.await_many(:infinity)

    t = System.monotonic_time(:microsecond) - t0
    n = @callers * @per
    beam = (cpu_us(System.pid()) - b0) / n
    programs = Enum.zip_with(Enum.map(pids, &cpu_us/1), p0, &((&1 - &2) / n))

    counters =
      Enum.zip_with(workers, infos, fn w, i0 ->
        i1 = Native.channel_info(channel(w))
        "#{i1.polled - i0.polled}/#{i1.routed - i0.routed}/#{i1.batches - i0.batches}"
      end)

    "#{round(n / (t / 1.0e6))} calls/s; CPU a call: BEAM #{Float.round(beam, 1)} µs, " <>
      "program#{if length(pids) > 1, do: "s"} #{Enum.map_join(programs, " + ", &"#{Float.round(&1, 1)}")} µs; " <>
      "polled/routed/reads #{Enum.join(counters, ", ")}"
  end

  def api(name), do: fn -> fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], backend: {:pool, name}) end end

  # The channel alone: what SnakeBridge.Backend.PortWorker does for a local
  # worker, without the pool, the runtime's options and routing, or encoding.
  def raw(worker) do
    fn ->
      {ids, chan, body} = BenchPools.raw_sqrt(worker)

      fn ->
        ref = :erlang.alias()
        frame = BenchPools.round_trip(ids, chan, body, ref, 50)
        :erlang.unalias(ref)
        {:ok, [_, "ok", _]} = Msgpack.decode(frame)
      end
    end
  end

  # Calls/s of 100 processes x 20 GIL-holding evaluations.
  def gil_bound(name) do
    be = [backend: {:pool, name}]
    for _ <- 1..10, do: {:ok, _} = SnakeBridge.eval("sum(range(200_000))", %{}, be)
    t0 = System.monotonic_time(:microsecond)

    1..100
    |> Enum.map(fn _ ->
      Task.async(fn -> for _ <- 1..20, do: {:ok, _} = SnakeBridge.eval("sum(range(200_000))", %{}, be) end)
    end)
    |> Task.await_many(:infinity)

    round(2_000 / ((System.monotonic_time(:microsecond) - t0) / 1.0e6))
  end

  def capacity(worker, n) do
    {ids, chan, body} = BenchPools.raw_sqrt(worker)
    ref = :erlang.alias()

    frames =
      for _ <- 1..n,
          do:
            (
              id = :atomics.add_get(ids, 1, 1)
              {id, IO.iodata_to_binary(Worker.frame(id, 7, body))}
            )

    p0 = cpu_us(os_pid(worker))
    t0 = System.monotonic_time(:microsecond)
    for {id, frame} <- frames, do: written(chan, id, ref, frame)
    for _ <- 1..n, do: receive(do: ({^ref, {:frame, _, _}} -> :ok))
    t = System.monotonic_time(:microsecond) - t0
    :erlang.unalias(ref)
    "#{Float.round(t / n, 2)} µs a request, program CPU #{Float.round((cpu_us(os_pid(worker)) - p0) / n, 2)} µs"
  end

  defp written(chan, id, ref, frame) do
    case Native.channel_call(chan, id, ref, frame, 0) do
      :busy -> Process.sleep(1) && written(chan, id, ref, frame)
      _ -> :ok
    end
  end
end

{opts, _} = OptionParser.parse!(System.argv(), strict: [rounds: :integer])
rounds = Keyword.get(opts, :rounds, 2)

IO.puts(
  "bench/pool_cpu.exs — #{DateTime.utc_now() |> DateTime.truncate(:second)} — " <>
    "#{System.schedulers_online()} schedulers; load average #{File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" ")}"
)

PoolCpu.with_pool(:pool_cpu_1, 1, fn [w] = workers ->
  for r <- 1..rounds do
    IO.puts("round #{r}, pool of 1, full API:     " <> PoolCpu.burst(workers, PoolCpu.api(:pool_cpu_1)))
    IO.puts("round #{r}, pool of 1, channel only: " <> PoolCpu.burst(workers, PoolCpu.raw(w)))
    IO.puts("round #{r}, the program's capacity (20,000 requests written at once): " <> PoolCpu.capacity(w, 20_000))
  end
end)

PoolCpu.with_pool(:pool_cpu_2, 2, fn workers ->
  for r <- 1..rounds do
    IO.puts("round #{r}, pool of 2, full API:     " <> PoolCpu.burst(workers, PoolCpu.api(:pool_cpu_2)))
  end
end)

for r <- 1..rounds do
  one = PoolCpu.with_pool(:pool_gil_1, 1, fn _ -> PoolCpu.gil_bound(:pool_gil_1) end)
  two = PoolCpu.with_pool(:pool_gil_2, 2, fn _ -> PoolCpu.gil_bound(:pool_gil_2) end)

  IO.puts(
    "round #{r}, 100 x 20 GIL-holding calls: pool of 1 #{one} calls/s, pool of 2 #{two} calls/s (×#{Float.round(two / one, 2)})"
  )
end
