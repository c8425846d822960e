# make demo: discover a Python library, generate its Elixir module, call it.
python_version = SnakeBridge.getattr!("sys", "version") |> String.split() |> hd()
IO.puts("SnakeBridge demo — Python #{python_version} embedded in the BEAM\n")

# 1. Discover: the embedded interpreter describes the library.
{micros, {:ok, schema}} = :timer.tc(fn -> SnakeBridge.describe_library("statistics") end)

IO.puts(
  "1. describe_library(\"statistics\") in #{div(micros, 1000)} ms: #{length(schema.functions)} functions, #{length(schema.classes)} classes"
)

for f <- Enum.filter(schema.functions, &(&1.name in ~w(mean median stdev correlation))) do
  IO.puts("     #{f.name}#{f.signature}")
end

# 2. Generate an Elixir module from the schema and compile it.
[{name, source}] = SnakeBridge.Generator.files(schema, module: "Demo.Statistics")
modules = Code.compile_string(source) |> Enum.map(&elem(&1, 0))
IO.puts("\n2. generated #{name} (#{length(modules)} modules, #{byte_size(source)} bytes of source), e.g.:\n")

source
|> String.split("\n")
|> Enum.drop_while(&(not String.contains?(&1, "@spec mean(")))
|> Enum.take(5)
|> Enum.each(&IO.puts("   " <> &1))

# 3. Call it like Elixir.
IO.puts("\n3. calling the generated module:")
IO.puts("     Demo.Statistics.mean!([1, 2, 3, 4])        = #{inspect(Demo.Statistics.mean!([1, 2, 3, 4]))}")
IO.puts("     Demo.Statistics.median!([3, 1, 4, 1, 5])   = #{inspect(Demo.Statistics.median!([3, 1, 4, 1, 5]))}")

IO.puts(
  "     Demo.Statistics.stdev!([2, 4, 4, 4, 5, 5, 7, 9]) = #{inspect(Demo.Statistics.stdev!([2, 4, 4, 4, 5, 5, 7, 9]))}"
)

case Demo.Statistics.mean([]) do
  {:error, %SnakeBridge.PythonError{} = e} ->
    IO.puts("     Demo.Statistics.mean([])  => {:error, #{inspect(e.type)}: #{e.message}}")
end

# 4. The runtime API directly: objects, numpy, errors.
IO.puts("\n4. the runtime API:")
counter = SnakeBridge.new!("collections", "Counter", ["abracadabra"])
IO.puts("     #{inspect(counter)}")
IO.puts("     most_common(2) = #{inspect(SnakeBridge.method!(counter, "most_common", [2]))}")
array = SnakeBridge.call!("numpy", "arange", [12]) |> SnakeBridge.method!("reshape", [3, 4])
IO.puts("     numpy: #{array |> inspect() |> String.replace("\n", " ")}")

IO.puts(
  "     array.sum(axis=0) -> #{inspect(SnakeBridge.method!(array, "sum", [], axis: 0) |> SnakeBridge.to_elixir!())}"
)

IO.puts("     json.dumps -> #{SnakeBridge.call!("json", "dumps", [%{"test" => "data"}])}")

# 5. The same API out of process: a pool of port workers (crash isolation).
IO.puts("\n5. a pool of 2 port workers (separate OS processes):")
{:ok, _} = SnakeBridge.Pool.start_link(name: Demo.Pool, size: 2)
pool = [backend: {:pool, Demo.Pool}]
worker_pid = SnakeBridge.call!("os", "getpid", [], [], pool)
IO.puts("     os.getpid() in a worker = #{worker_pid} (the BEAM is #{System.pid()})")

IO.puts(
  "     Demo.Statistics.mean!([1, 2, 3, 4], [], backend: {:pool, Demo.Pool}) = #{inspect(Demo.Statistics.mean!([1, 2, 3, 4], [], pool))}"
)

case SnakeBridge.call("ctypes", "string_at", [0], [], pool) do
  {:error, %SnakeBridge.WorkerCrashError{reason: reason}} ->
    IO.puts("     ctypes.string_at(0) segfaults the worker => WorkerCrashError (#{inspect(reason)})")
end

Process.sleep(100)
IO.puts("     the pool restarted it: math.sqrt(2.0) = #{SnakeBridge.call!("math", "sqrt", [2.0], [], pool)}")

# 6. Python calls Elixir: functions as callables, snakebridge.call/send.
IO.puts("\n6. Python calling Elixir (in-process, then through the pool):")

for {name, opts} <- [{"in-process", []}, {"pool", pool}] do
  sorted = SnakeBridge.call!("builtins", "sorted", [[3, -10, 2]], [key: fn x -> abs(x) end], opts)
  IO.puts("     #{name}: sorted([3, -10, 2], key=<Elixir fn abs>) = #{inspect(sorted)}")
end

sum = SnakeBridge.eval!("__import__('snakebridge').call('Enum', 'sum', [1, 2, 3])", %{})
IO.puts("     snakebridge.call('Enum', 'sum', [1, 2, 3]) = #{sum}")

{:error, error} = SnakeBridge.eval("f()", %{"f" => fn -> raise ArgumentError, "from Elixir" end})
IO.puts("     an Elixir raise in a callback => #{error.python_type}; the original: #{inspect(elem(error.elixir, 1))}")
