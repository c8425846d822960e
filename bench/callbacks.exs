# Callbacks: sorted(range(10_000), key=f) with an Elixir key vs a Python key, both backends.
{:ok, _} = SnakeBridge.Pool.start_link(name: BenchPool, size: 1)
xs = Enum.to_list(1..10_000)
pykey = SnakeBridge.eval!("lambda x: -x", %{}, return: :ref)
pool_pykey = SnakeBridge.eval!("lambda x: -x", %{}, return: :ref, backend: {:pool, BenchPool})
elixir_key = fn x -> -x end

time = fn f ->
  Enum.map(1..5, fn _ ->
    {t, _} = :timer.tc(f)
    t
  end)
  |> Enum.sort()
  |> Enum.at(2)
end

rows = [
  {"in-process, Elixir key", time.(fn -> {:ok, _} = SnakeBridge.call("builtins", "sorted", [xs], key: elixir_key) end)},
  {"in-process, Python key", time.(fn -> {:ok, _} = SnakeBridge.call("builtins", "sorted", [xs], key: pykey) end)},
  {"pool of 1, Elixir key",
   time.(fn ->
     {:ok, _} = SnakeBridge.call("builtins", "sorted", [xs], [key: elixir_key], backend: {:pool, BenchPool})
   end)},
  {"pool of 1, Python key",
   time.(fn ->
     {:ok, _} = SnakeBridge.call("builtins", "sorted", [xs], [key: pool_pykey], backend: {:pool, BenchPool})
   end)}
]

for {name, us} <- rows, do: IO.puts("| #{name} | #{Float.round(us / 1000, 1)} ms | #{Float.round(us / 10_000, 2)} µs |")

# Nesting 100 deep (callback -> Python -> callback ...), and the worst gap of a
# 1 ms heartbeat meanwhile (a blocked scheduler would show as a gap).
defmodule Nest do
  def nest(0, _o), do: 0
  def nest(n, o), do: SnakeBridge.eval!("f(n - 1) + 1", %{"f" => fn m -> nest(m, o) end, "n" => n}, o)
end

# The control: the same heartbeat while this process only sleeps. `after 1`
# fires on the BEAM's millisecond timer, so its gaps are ~2 ms with every
# scheduler free; a blocked scheduler shows as a gap beyond the control's.
{:ok, _, control} = SnakeBridge.Heartbeat.measure(fn -> Process.sleep(50) && :ok end, 20)
IO.puts("| control: sleeping 50 ms | — | heartbeat worst gap #{Float.round(control / 1000, 2)} ms |")

# And the BEAM's own account: :erlang.system_monitor's long_schedule reports
# every process or port that ran 1 ms or more without being scheduled out (a
# NIF that blocked its scheduler would be one), here over ten nestings, run
# by another process (the monitor does not report on itself).
long_schedules = fn fun ->
  previous = :erlang.system_monitor(self(), [{:long_schedule, 1}])
  Task.await(Task.async(fun), :infinity)
  if previous == :undefined, do: :erlang.system_monitor(:undefined), else: :erlang.system_monitor(previous)

  Stream.repeatedly(fn ->
    receive do
      {:monitor, _who, :long_schedule, info} -> info[:timeout]
    after
      0 -> nil
    end
  end)
  |> Enum.take_while(& &1)
end

for {name, o} <- [{"in-process", []}, {"pool of 1", [backend: {:pool, BenchPool}]}] do
  {100, ms, gap} = SnakeBridge.Heartbeat.measure(fn -> Nest.nest(100, o) end, 20)
  long = long_schedules.(fn -> for _ <- 1..10, do: 100 = Nest.nest(100, o) end)

  IO.puts(
    "| #{name}: nesting 100 deep | #{ms} ms | heartbeat worst gap #{Float.round(gap / 1000, 2)} ms; " <>
      "runs of 1 ms or more without a reschedule over 10 nestings: #{length(long)}" <>
      if(long == [], do: "", else: " (longest #{Enum.max(long)} ms)") <> " |"
  )
end
