# Microbenchmark of SnakeBridge.Msgpack: µs per encode + decode of a few
# representative values (encode to iodata, IO.iodata_to_binary/1 as the port
# would flatten it, decode back).
#
#     MIX_ENV=prod mix run --no-start bench/msgpack_bench.exs
#
# Median and 99th percentile over many rounds, after a warm-up.

Code.require_file("support/timing.exs", __DIR__)

alias SnakeBridge.Msgpack
import Bitwise

defmodule MsgpackBench do
  @doc """
  {median, p99} in µs of `fun` run `rounds` times (after `rounds div 10`
  warm-up runs), in a process of its own so that one case's garbage does not
  weigh on the next.
  """
  def measure(fun, rounds) do
    fn -> run(fun, rounds) end |> Task.async() |> Task.await(:infinity)
  end

  defp run(fun, rounds) do
    times = BenchTiming.sorted_samples(fun, rounds, max(div(rounds, 10), 1))
    {Enum.at(times, div(rounds, 2)) / 1000, Enum.at(times, min(rounds - 1, div(rounds * 99, 100))) / 1000}
  end
end

seeded = fn n ->
  {bytes, _} = :rand.bytes_s(n, :rand.seed_s(:exsss, 42))
  bytes
end

cases = [
  {"float", 3.141592653589793, 100_000},
  {"4-key map", %{"name" => "Ada", "age" => 36, "langs" => ["en", "fr"], "score" => 9.5}, 100_000},
  {"10,000-integer list (1..10_000)", Enum.to_list(1..10_000), 2_000},
  {"10,000-integer list (random int64)",
   Enum.map(1..10_000, fn i -> :erlang.phash2(i, 1 <<< 32) * (1 <<< 30) - (1 <<< 61) end), 2_000},
  {"1,000 short strings", Enum.map(1..1_000, &"item #{&1}"), 2_000},
  {"1,000 2-tuples", Enum.map(1..1_000, &{&1, &1 * 0.5}), 2_000},
  {"1 MiB binary", <<0xFF>> <> seeded.(1_048_575), 2_000}
]

IO.puts("SnakeBridge.Msgpack, µs per operation: median (p99)\n")

IO.puts(
  String.pad_trailing("value", 40) <>
    String.pad_leading("encode", 18) <> String.pad_leading("decode", 18) <> String.pad_leading("encode+decode", 20)
)

for {name, term, rounds} <- cases do
  bin = term |> Msgpack.encode() |> IO.iodata_to_binary()
  {:ok, ^term} = Msgpack.decode(bin)

  enc = MsgpackBench.measure(fn -> term |> Msgpack.encode() |> IO.iodata_to_binary() end, rounds)
  dec = MsgpackBench.measure(fn -> Msgpack.decode!(bin) end, rounds)
  both = MsgpackBench.measure(fn -> term |> Msgpack.encode() |> IO.iodata_to_binary() |> Msgpack.decode!() end, rounds)

  fmt = fn {med, p99} -> :io_lib.format("~.2f (~.1f)", [med, p99]) |> to_string() end

  IO.puts(
    String.pad_trailing(name, 40) <>
      String.pad_leading(fmt.(enc), 18) <> String.pad_leading(fmt.(dec), 18) <> String.pad_leading(fmt.(both), 20)
  )
end
