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
