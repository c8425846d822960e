defmodule Mix.Tasks.Snakebridge.Bench do
  @shortdoc "Measures SnakeBridge call latency, throughput and memory"
  @moduledoc """
  Runs the benchmark suite of `docs/benchmarks.md` against the in-process backend
  and prints a Markdown table.

      mix snakebridge.bench              # everything
      mix snakebridge.bench --only trivial,json
      mix snakebridge.bench --quick      # fewer iterations, for a smoke run

  Benchmarks (issue 3): `describe` (`describe_library` of json and numpy),
  `generate` (numpy's top-level wrapper: generate and format the source, then
  compile it).

  Benchmarks (issue 5): `stream` (1,000,000 integers from a Python generator),
  `sleep200` (200 concurrent `time.sleep(0.5)` while a heartbeat process ticks
  every 1 ms), `timeout` (`while True: pass` with a 100 ms timeout),
  `pool_handoff` (a call that runs on the worker pool, for comparison with the
  fast path).

  Benchmarks: `trivial` (math.sqrt(2.0) after 100k warm-up calls), `json`
  (json.dumps of a small map), `bytes` (1 MiB binary to Python bytes and back),
  `list` (10,000-integer list to Python and back), `object` (create a
  fractions.Fraction and call a method), `concurrent` (100 processes calling at
  once), `memory` (1,000,000 calls and 100,000 objects created and dropped: RSS and
  Python object count before and after).

  Port workers (issue 4, `SnakeBridge.Pool`; each bench starts its own pool and
  stops it afterwards): `port_trivial` (math.sqrt(2.0) through a 1-worker pool
  after 20k warm-up calls, NIF figure alongside), `port_start` (from
  `SnakeBridge.Pool.start_link/1` with one worker to the first reply),
  `port_bytes` (1 MiB non-UTF-8 binary to Python bytes and back), `port_list`
  (10,000-integer list and back), `port_scaling` (8 concurrent CPU-bound
  pure-Python jobs on 1 worker vs 2 workers), `port_stream` (1,000,000 integers
  from `range` through a worker), `port_sleep200` (200 concurrent
  `time.sleep(0.5)` on 2 workers).

  Arrays (issue 12, `docs/arrays.md`): `array_nif` (in-process `to_array` of
  1 KiB, 8 MiB and 512 MiB float64 arrays, `to_elixir` of 1 KiB to 64 MiB
  alongside, a 64 MiB `Array` argument), `array_port` (64 MiB through one
  worker: `to_array`, an `Array` argument summed by numpy, `to_elixir`
  alongside), `array_memory` (1,000 arrays of 8 MiB made, converted and
  dropped: RSS before and after, in-process and in a worker), `pipe_floor`
  (1 GiB through a plain pipe, `dd | cat`).

  Run it with `MIX_ENV=prod` for figures comparable to `docs/benchmarks.md`.
  The benchmarks themselves are in `bench/snakebridge_bench.exs`, loaded by
  this task.
  """
  use Mix.Task

  # bench/ of the source tree this task was compiled from (benchmarks are not
  # part of the library, so they stay out of lib/).
  @bench_file Path.expand("../../../bench/snakebridge_bench.exs", __DIR__)

  @impl true
  def run(argv) do
    {opts, args, invalid} = OptionParser.parse(argv, strict: [only: :string, quick: :boolean])
    if invalid != [], do: Mix.raise("Unknown option(s): #{Enum.map_join(invalid, ", ", &elem(&1, 0))}")
    if args != [], do: Mix.raise("Unexpected argument(s): #{Enum.join(args, " ")}")
    unless File.regular?(@bench_file), do: Mix.raise("snakebridge.bench: #{@bench_file} not found")

    Code.require_file(@bench_file)
    # Through a variable: the module only exists once the file is loaded.
    bench = SnakeBridgeBench
    all = bench.names()
    only = if opts[:only], do: String.split(opts[:only], ",", trim: true), else: all

    case only -- all do
      [] -> :ok
      unknown -> Mix.raise("Unknown benchmark(s): #{Enum.join(unknown, ", ")}; known: #{Enum.join(all, ", ")}")
    end

    Mix.Task.run("app.start")
    bench.run(only, if(opts[:quick], do: 0.05, else: 1.0))
  end
end
