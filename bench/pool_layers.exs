# A lone caller's `math.sqrt(2.0)` through a pool of 1, layer by layer
# (docs/benchmarks.md, issue 15): what each layer above the worker's channel
# adds to a trivial call. In interleaved rounds (every variant once per round,
# in a shuffled order), medians of 5,000 calls:
#
# - channel: the request encoded once; an alias, the NIF's channel_call/5
#   (register, write, poll for the reply), the reply decoded
#   (SnakeBridge.Backend.PortWorker's transport, nothing above it);
# - + encode: the request encoded for every call, the reply decoded with the
#   worker's handles;
# - + pool: also the pool's checkout and checkin, the polling decision and
#   the request forgotten in the channel;
# - SnakeBridge.call/5: the whole API;
# - in-process: SnakeBridge.call/3 on the embedded interpreter.
#
#     MIX_ENV=prod mix run bench/pool_layers.exs [--rounds N]
Code.require_file("support/timing.exs", __DIR__)
Code.require_file("support/pools.exs", __DIR__)
alias SnakeBridge.{Msgpack, Native, Pool}

defmodule PoolLayers do
  def variants({:pool, name} = pool) do
    [worker] = BenchPools.workers(pool)
    {ids, chan, body} = BenchPools.raw_sqrt(worker)
    request = fn -> BenchPools.request_body(SnakeBridge.PythonThread.key()) end
    round_trip = fn body, ref, poll_us -> BenchPools.round_trip(ids, chan, body, ref, poll_us) end

    [
      {"channel",
       fn ->
         ref = :erlang.alias()
         frame = round_trip.(body, ref, 50)
         :erlang.unalias(ref)
         {:ok, [_, "ok", _]} = Msgpack.decode(frame)
       end},
      {"+ encode",
       fn ->
         ref = :erlang.alias()
         frame = round_trip.(request.(), ref, 50)
         :erlang.unalias(ref)
         {:ok, [_, "ok", _]} = Msgpack.decode(frame, handle: SnakeBridge.Backend.PortWorker.handles(worker))
       end},
      {"+ pool",
       fn ->
         {:ok, key, _, p} = Pool.checkout(name)
         ref = :erlang.alias()

         poll_us =
           if :erlang.statistics(:total_run_queue_lengths) < 4 * :erlang.system_info(:schedulers_online),
             do: 50,
             else: 0

         frame = round_trip.(request.(), ref, poll_us)
         :erlang.unalias(ref)
         Native.channel_forget(chan, 0)
         Pool.checkin(key, p)
         {:ok, [_, "ok", _]} = Msgpack.decode(frame, handle: SnakeBridge.Backend.PortWorker.handles(worker))
       end},
      {"SnakeBridge.call/5", fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], backend: pool) end},
      {"in-process", fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0]) end}
    ]
  end
end

{opts, _, _} = OptionParser.parse(System.argv(), strict: [rounds: :integer])
rounds = opts[:rounds] || 8

IO.puts(
  "bench/pool_layers.exs — #{DateTime.utc_now() |> DateTime.truncate(:second)} — load average " <>
    (File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" "))
)

BenchPools.with_pool(PoolLayers.Pool, 1, fn pool ->
  variants = PoolLayers.variants(pool)

  results =
    for _ <- 1..rounds do
      Map.new(Enum.shuffle(variants), fn {label, f} -> {label, BenchTiming.median_us(f, 5_000, 500)} end)
    end

  for {label, _} <- variants do
    per_round = Enum.map(results, & &1[label])
    median = per_round |> Enum.sort() |> Enum.at(div(rounds, 2))

    IO.puts(
      "#{label}: median #{Float.round(median, 2)} µs (rounds #{Enum.map_join(per_round, " ", &Float.round(&1, 1))})"
    )
  end
end)
