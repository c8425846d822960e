# make demo: use a Python library from Elixir.
IO.puts("SnakeBridge demo — Python #{SnakeBridge.getattr!("sys", "version") |> String.split() |> hd()} embedded in the BEAM\n")

IO.puts("json.dumps(%{\"test\" => \"data\"}, indent: 2):")
IO.puts(SnakeBridge.call!("json", "dumps", [%{"test" => "data", "list" => [1, 2.5, nil]}], indent: 2))

IO.puts("\nmath.sqrt(2.0) = #{SnakeBridge.call!("math", "sqrt", [2.0])}")
IO.puts("statistics.mean([1, 2, 3, 4]) = #{SnakeBridge.call!("statistics", "mean", [[1, 2, 3, 4]])}")

counter = SnakeBridge.new!("collections", "Counter", ["abracadabra"])
IO.puts("\nA Python object held from Elixir: #{inspect(counter)}")
IO.puts("counter.most_common(2) = #{inspect(SnakeBridge.method!(counter, "most_common", [2]))}")

array = SnakeBridge.call!("numpy", "arange", [12]) |> SnakeBridge.method!("reshape", [3, 4])
IO.puts("\nnumpy: #{inspect(array)}")
IO.puts("array.sum(axis=0) as Elixir: #{inspect(SnakeBridge.method!(array, "sum", [], axis: 0) |> SnakeBridge.to_elixir!())}")

case SnakeBridge.call("json", "loads", ["{not json"]) do
  {:error, %SnakeBridge.PythonError{} = e} -> IO.puts("\nA Python exception comes back as an Elixir error:\n  #{Exception.message(e)}")
end
