# Quick calls beside a slow one (docs/benchmarks.md, issue 15: "quick work must
# not queue behind slow work on the same worker"). One process calls a slow
# function in a loop; meanwhile another process makes 3,000 `math.sqrt(2.0)`
# calls one after another, and those are timed (median and 99th percentile).
# The slow function is either `time.sleep(0.05)` (lets the GIL go) or
# `sum(range(3_000_000))` (~60 ms in C, holding the GIL throughout), on
#
# - a pool of 1;
# - a pool of 2 with `affinity: :none` (every call to the least-loaded worker);
# - a pool of 2 with the default `affinity: :process`, the quick process
#   started on the slow one's worker (a process keeps its worker).
#
#     MIX_ENV=prod mix run bench/quick_beside_slow.exs
Code.require_file("support/timing.exs", __DIR__)
Code.require_file("support/pools.exs", __DIR__)

defmodule QuickBesideSlow do
  @slow [
    {"none", nil},
    {"time.sleep(0.05)", {:call, "time", "sleep", [0.05]}},
    {"sum(range(3_000_000)), GIL held", {:eval, "sum(range(3000000))"}}
  ]

  def run(label, pool_opts) do
    name = Module.concat(__MODULE__, "P#{System.unique_integer([:positive])}")
    BenchPools.with_pool(name, pool_opts, &run(label, pool_opts, &1))
  end

  defp run(label, pool_opts, {:pool, name} = pool) do
    o = [backend: pool]

    for {slow_label, slow} <- @slow do
      parent = self()

      # The slow process makes its first call before the quick one makes any:
      # with affinity: :process both then keep the worker they were given, so
      # the quick process is made to start on the same one (below).
      bg =
        if slow do
          spawn_link(fn ->
            slow_call(slow, o)
            send(parent, {:started, self()})
            loop(slow, o)
          end)
        end

      if bg, do: receive(do: ({:started, ^bg} -> :ok))

      quick =
        Task.async(fn ->
          if bg && pool_opts[:affinity] != :none, do: join(name, bg)
          Process.sleep(20)
          f = fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], o) end
          BenchTiming.sorted_samples(f, 3_000, 100)
        end)

      samples = Task.await(quick, :infinity)
      if bg, do: Process.unlink(bg) && Process.exit(bg, :kill)
      p = fn q -> Float.round(Enum.at(samples, min(length(samples) - 1, trunc(length(samples) * q))) / 1000, 1) end
      IO.puts("#{label}, slow #{slow_label}: sqrt median #{p.(0.5)} µs, p99 #{p.(0.99)} µs")
      # (A killed slow caller's request runs to its end.)
      Process.sleep(200)
    end
  end

  defp loop(slow, o) do
    slow_call(slow, o)
    loop(slow, o)
  end

  defp slow_call({:call, m, f, a}, o), do: SnakeBridge.call(m, f, a, [], o)
  defp slow_call({:eval, code}, o), do: SnakeBridge.eval(code, %{}, o)

  # With process affinity: this process takes the worker `other` keeps.
  defp join(name, other) do
    {:dictionary, dict} = Process.info(other, :dictionary)
    Process.put({SnakeBridge.Pool, name}, :proplists.get_value({SnakeBridge.Pool, name}, dict))
  end
end

IO.puts(
  "bench/quick_beside_slow.exs — #{DateTime.utc_now() |> DateTime.truncate(:second)} — load average " <>
    (File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" "))
)

QuickBesideSlow.run("pool of 1", size: 1)
QuickBesideSlow.run("pool of 2, affinity: :none", size: 2, affinity: :none)
QuickBesideSlow.run("pool of 2, the slow caller's worker", size: 2)
