# The benchmark bodies behind `mix snakebridge.bench` (lib/mix/tasks/snakebridge.bench.ex
# parses the options, loads this file and calls `SnakeBridgeBench.run/2`). Each
# benchmark prints one row of the Markdown table of docs/benchmarks.md:
# latencies are per call, one call at a time, median and 99th percentile.
#
# Loading this file only defines the module; it needs the :snakebridge
# application started.

defmodule SnakeBridgeBench do
  @names ~w(trivial json bytes list object concurrent pool_handoff stream sleep200 timeout describe generate memory
            port_trivial port_start port_bytes port_list port_scaling port_stream port_sleep200
            array_nif array_port array_memory pipe_floor)

  @doc "Every benchmark, in the order `mix snakebridge.bench` runs them."
  def names, do: @names

  @doc """
  Prints the header line and the table of the benchmarks `names`, in order.
  `scale` multiplies the iteration counts (`--quick` is 0.05).
  """
  def run(names, scale) do
    ident = SnakeBridge.exec!("def ident(x):\n    return x\n")["ident"]
    ctx = %{scale: scale, ident: ident}

    IO.puts(
      "SnakeBridge #{Application.spec(:snakebridge, :vsn)} — OTP #{System.otp_release()}, " <>
        "#{System.schedulers_online()} schedulers, Python #{SnakeBridge.getattr!("sys", "version") |> String.split() |> hd()}\n"
    )

    IO.puts("| benchmark | median | p99 | notes |")
    IO.puts("|---|---|---|---|")

    for name <- names, do: bench(name, ctx)
    :ok
  end

  defp n(ctx, count), do: max(trunc(count * ctx.scale), 10)

  defp bench("trivial", ctx) do
    f = fn -> SnakeBridge.call("math", "sqrt", [2.0]) end
    for _ <- 1..n(ctx, 100_000), do: f.()
    report("math.sqrt(2.0)", sample(f, n(ctx, 200_000)), "after #{n(ctx, 100_000)} warm-up calls")
  end

  defp bench("json", ctx) do
    map = %{"name" => "snakebridge", "n" => 42, "tags" => ["a", "b"], "ok" => true}
    f = fn -> SnakeBridge.call("json", "dumps", [map]) end
    warm(f, ctx)
    report("json.dumps(small map)", sample(f, n(ctx, 100_000)), "4 keys")
  end

  defp bench("bytes", ctx) do
    bin = :crypto.strong_rand_bytes(1_048_576)
    f = fn -> {:ok, ^bin} = SnakeBridge.call(ctx.ident, nil, [SnakeBridge.bytes(bin)]) end
    warm(f, ctx, 200)
    report("1 MiB bytes round trip", sample(f, n(ctx, 2_000)), "identity function")
  end

  defp bench("list", ctx) do
    list = Enum.to_list(1..10_000)
    f = fn -> {:ok, ^list} = SnakeBridge.call(ctx.ident, nil, [list]) end
    warm(f, ctx, 200)
    report("10,000-integer list round trip", sample(f, n(ctx, 2_000)), "identity function")
  end

  defp bench("object", ctx) do
    f = fn ->
      {:ok, frac} = SnakeBridge.new("fractions", "Fraction", [3, 4])
      {:ok, _} = SnakeBridge.method(frac, "limit_denominator", [2])
    end

    warm(f, ctx)
    report("Fraction(3, 4) + method call", sample(f, n(ctx, 50_000)), "new/5 then method/5")
  end

  defp bench("concurrent", ctx) do
    callers = 100
    per = n(ctx, 2_000)
    f = fn -> SnakeBridge.call("math", "sqrt", [2.0]) end
    warm(f, ctx)
    t0 = System.monotonic_time(:nanosecond)

    samples =
      1..callers
      |> Enum.map(fn _ -> Task.async(fn -> sample(f, per) end) end)
      |> Task.await_many(:infinity)
      |> Enum.concat()

    elapsed = System.monotonic_time(:nanosecond) - t0
    rate = callers * per / (elapsed / 1.0e9)
    report("100 concurrent callers (math.sqrt)", samples, "#{fmt_rate(rate)} calls/s in total")
  end

  defp bench("pool_handoff", ctx) do
    # A quick call while another process's call sleeps on another thread
    # (before issue 10: off the fast path, which ran only while no pool thread
    # was in Python).
    busy = Task.async(fn -> SnakeBridge.call("time", "sleep", [60], [], timeout: 120_000) end)
    Process.sleep(50)
    f = fn -> SnakeBridge.call("math", "sqrt", [2.0]) end

    report(
      "pool hand-off (math.sqrt while another call sleeps)",
      sample(f, n(ctx, 5_000)),
      "another thread is inside a call"
    )

    Task.shutdown(busy, :brutal_kill)
  end

  defp bench("stream", ctx) do
    count = n(ctx, 1_000_000)

    {us, ^count} =
      :timer.tc(fn -> SnakeBridge.stream("itertools", "count", []) |> Stream.take(count) |> Enum.count() end)

    IO.puts(
      "| stream #{count} integers from a generator | — | — | #{fmt_rate(count / (us / 1.0e6))} items/s (#{div(us, 1000)} ms) |"
    )
  end

  defp bench("sleep200", _ctx), do: sleep200("200 concurrent time.sleep(0.5)", :nif)

  defp bench("timeout", _ctx) do
    samples =
      for _ <- 1..10 do
        t0 = System.monotonic_time(:nanosecond)
        {:error, %SnakeBridge.TimeoutError{}} = SnakeBridge.exec("while True: pass", %{}, timeout: 100)
        System.monotonic_time(:nanosecond) - t0
      end

    report("timeout of `while True: pass` at 100 ms", samples, "time until the caller has its error")
  end

  defp bench("describe", _ctx) do
    {first, {:ok, _}} = :timer.tc(fn -> SnakeBridge.describe_library("json", depth: 1) end)

    report(
      "describe_library(\"json\")",
      sample(fn -> {:ok, _} = SnakeBridge.describe_library("json", depth: 1) end, 50),
      "first call #{fmt_ns(first * 1000)}"
    )

    {np_first, {:ok, np}} = :timer.tc(fn -> SnakeBridge.describe_library("numpy", depth: 1) end)

    report(
      "describe_library(\"numpy\", depth: 1)",
      sample(fn -> {:ok, _} = SnakeBridge.describe_library("numpy", depth: 1) end, 5),
      "first call (imports numpy) #{fmt_ns(np_first * 1000)}; #{length(np.functions)} functions, #{length(np.classes)} classes, #{length(np.submodules)} submodules"
    )
  end

  defp bench("generate", _ctx) do
    {:ok, schema} = SnakeBridge.describe_library("numpy", depth: 0)
    dir = Path.join(System.tmp_dir!(), "snakebridge_bench_#{System.unique_integer([:positive])}")
    File.mkdir_p!(Path.join(dir, "ebin"))
    {gen_us, files} = :timer.tc(fn -> SnakeBridge.Generator.files(schema, module: "BenchNumpy") end)
    paths = for {name, source} <- files, do: tap(Path.join(dir, name <> ".ex"), &File.write!(&1, source))

    {compile_us, {:ok, modules, _}} =
      :timer.tc(fn -> Kernel.ParallelCompiler.compile_to_path(paths, Path.join(dir, "ebin")) end)

    File.rm_rf!(dir)
    bytes = files |> Enum.map(&byte_size(elem(&1, 1))) |> Enum.sum()

    IO.puts(
      "| numpy wrapper: generate + format, then compile | — | — | #{Float.round(gen_us / 1.0e6, 1)} s + #{Float.round(compile_us / 1.0e6, 1)} s " <>
        "(#{length(modules)} modules, #{div(bytes, 1024)} KiB of source) |"
    )
  end

  defp bench("memory", ctx) do
    calls = n(ctx, 1_000_000)
    objects = n(ctx, 100_000)
    count_objects = fn -> SnakeBridge.eval!("len(__import__('gc').get_objects())") end
    # Imports and caches first, so the baseline holds them.
    for _ <- 1..1000, do: {SnakeBridge.call("math", "sqrt", [2.0]), SnakeBridge.new!("fractions", "Fraction", [1, 7])}
    count_objects.()
    settle()
    rss0 = rss_kb()
    py0 = count_objects.()

    for _ <- 1..calls, do: {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0])

    for _ <- 1..div(objects, 1000) do
      batch = for i <- 1..1000, do: SnakeBridge.new!("fractions", "Fraction", [i, 7])
      _ = length(batch)
    end

    settle()
    rss1 = rss_kb()
    py1 = count_objects.()

    IO.puts(
      "| memory: #{calls} calls + #{objects} objects | — | — | RSS #{div(rss0, 1024)} → #{div(rss1, 1024)} MB " <>
        "(#{sign(rss1 - rss0)}#{Float.round((rss1 - rss0) / 1024, 1)} MB); Python gc objects #{py0} → #{py1} |"
    )
  end

  # ------------------------------------------------------------ port workers

  defp bench("port_trivial", ctx) do
    versus_nif(ctx, "port: math.sqrt(2.0), 1 worker", 20_000, 50_000, fn backend ->
      {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], backend: backend)
    end)
  end

  defp bench("port_start", ctx) do
    samples =
      for _ <- 1..n(ctx, 10) do
        t0 = System.monotonic_time(:nanosecond)
        {:ok, sup} = SnakeBridge.Pool.start_link(name: SnakeBridge.BenchPool, size: 1)
        {:ok, _} = wait_ready({:pool, SnakeBridge.BenchPool})
        elapsed = System.monotonic_time(:nanosecond) - t0
        stop_pool(sup)
        elapsed
      end

    report("port: worker start to first reply", samples, "Pool.start_link(size: 1) until math.sqrt returns")
  end

  defp bench("port_bytes", ctx) do
    # Not valid UTF-8 (0xFF never occurs in UTF-8), so it crosses as Python bytes.
    bin = <<0xFF>> <> :crypto.strong_rand_bytes(1_048_575)
    false = String.valid?(bin)

    versus_nif(ctx, "port: 1 MiB bytes round trip, 1 worker", 200, 1_000, fn backend ->
      {:ok, ^bin} = SnakeBridge.eval("x", %{"x" => bin}, backend: backend)
    end)
  end

  defp bench("port_list", ctx) do
    list = Enum.to_list(1..10_000)

    versus_nif(ctx, "port: 10,000-integer list round trip, 1 worker", 200, 1_000, fn backend ->
      {:ok, ^list} = SnakeBridge.eval("x", %{"x" => list}, backend: backend)
    end)
  end

  defp bench("port_scaling", _ctx) do
    jobs = 8
    # Pure-Python CPU work that needs no definition in the worker; the worker's
    # OS pid comes back with the result, to check which workers did the work.
    code = "(sum(i * i for i in range(n)), __import__('os').getpid())"

    job = fn pool, count ->
      {:ok, {_, pid}} = SnakeBridge.eval(code, %{"n" => count}, backend: pool, timeout: 120_000)
      pid
    end

    # Size the job to ~80 ms on one worker (best of 3 after a warm-up).
    count =
      with_pool(1, fn pool ->
        job.(pool, 100_000)

        best = Enum.min(for _ <- 1..3, do: elem(:timer.tc(fn -> job.(pool, 1_000_000) end), 0))

        max(div(1_000_000 * 80_000, max(best, 1)), 10_000)
      end)

    # As many callers at a time as there are workers: each worker always has one
    # job (more would only make a worker's threads contend for its GIL, which
    # flatters the 2-worker figure). Every job is its own process, so each
    # goes to the least-loaded worker.
    run = fn size ->
      with_pool(size, fn pool ->
        job.(pool, count)
        t0 = System.monotonic_time(:nanosecond)

        pids =
          1..jobs
          |> Task.async_stream(fn _ -> job.(pool, count) end, max_concurrency: size, timeout: :infinity)
          |> Enum.map(fn {:ok, pid} -> pid end)

        {System.monotonic_time(:nanosecond) - t0, Enum.frequencies(pids)}
      end)
    end

    {t1, pids1} = run.(1)
    {t2, pids2} = run.(2)

    IO.puts(
      "| port: #{jobs} CPU-bound jobs (sum of squares, range(#{count})), one per worker at a time, 1 vs 2 workers | — | — | " <>
        "1 worker #{fmt_ns(t1)}, 2 workers #{fmt_ns(t2)}: #{Float.round(t1 / t2, 2)}× throughput; " <>
        "jobs per worker #{inspect(Map.values(pids1), charlists: :as_lists)} / #{inspect(Map.values(pids2), charlists: :as_lists)} |"
    )
  end

  defp bench("port_stream", ctx) do
    count = n(ctx, 1_000_000)

    with_pool(1, fn pool ->
      # Warm-up: import paths and the first batches.
      _ = SnakeBridge.stream("builtins", "range", [10_000], [], backend: pool) |> Enum.count()

      {us, ^count} =
        :timer.tc(fn -> SnakeBridge.stream("builtins", "range", [count], [], backend: pool) |> Enum.count() end)

      IO.puts(
        "| port: stream #{count} integers (range) through 1 worker | — | — | #{fmt_rate(count / (us / 1.0e6))} items/s (#{div(us, 1000)} ms) |"
      )
    end)
  end

  # Arrays (issue 12, docs/arrays.md): to_array beside to_elixir of the same
  # arrays. In-process, to_array shares the array's memory: its time does not
  # depend on the size.
  defp bench("array_nif", ctx) do
    for {label, n} <- [{"1 KiB", 128}, {"8 MiB", 1_048_576}, {"512 MiB", 67_108_864}] do
      x = SnakeBridge.call!("numpy", "ones", [n])
      f = fn -> {:ok, _} = SnakeBridge.to_array(x) end
      warm(f, ctx, 1_000)
      report("to_array of a #{label} float64 array, in-process", sample(f, n(ctx, 20_000)), "no copy")
    end

    for {label, n, count} <- [{"1 KiB", 128, 20_000}, {"8 MiB", 1_048_576, 10}, {"64 MiB", 8_388_608, 3}] do
      x = SnakeBridge.call!("numpy", "ones", [n])
      f = fn -> {:ok, _} = SnakeBridge.to_elixir(x) end
      f.()

      report(
        "to_elixir of the #{label} float64 array, in-process (for comparison)",
        sample(f, max(n(ctx, count), 3)),
        "a list of floats"
      )
    end

    a = SnakeBridge.to_array!(SnakeBridge.call!("numpy", "ones", [8_388_608]))
    f = fn -> {:ok, _} = SnakeBridge.call("builtins", "len", [a]) end
    warm(f, ctx, 100)
    report("a 64 MiB Array argument (len), in-process", sample(f, n(ctx, 2_000)), "no copy")
  end

  # Through one worker: a 64 MiB float64 array to Elixir, and back as an
  # argument summed by numpy (numpy's own sum of it alongside).
  defp bench("array_port", ctx) do
    with_pool(1, fn pool ->
      o = [backend: pool]
      x = SnakeBridge.call!("numpy", "ones", [8_388_608], [], o)
      to = fn -> {:ok, _} = SnakeBridge.to_array(x, o) end
      warm(to, ctx, 3)
      to_samples = sample(to, max(n(ctx, 30), 5))
      report("to_array of a 64 MiB float64 array through 1 worker", to_samples, "#{gbps(to_samples)} GB/s")

      a = SnakeBridge.to_array!(x, o)
      back = fn -> {:ok, _} = SnakeBridge.call("numpy", "sum", [a], [], o) end
      warm(back, ctx, 3)
      back_samples = sample(back, max(n(ctx, 30), 5))
      in_python = fn -> {:ok, _} = SnakeBridge.call("numpy", "sum", [x], [], o) end
      warm(in_python, ctx, 3)
      sum_samples = sample(in_python, max(n(ctx, 30), 5))

      report(
        "a 64 MiB Array argument summed by numpy through 1 worker",
        back_samples,
        "numpy.sum of the array already in the worker: #{median_p99(sum_samples)}"
      )

      len = fn -> {:ok, _} = SnakeBridge.call("builtins", "len", [a], [], o) end
      warm(len, ctx, 3)
      len_samples = sample(len, max(n(ctx, 30), 5))
      report("a 64 MiB Array argument (len) through 1 worker", len_samples, "#{gbps(len_samples)} GB/s")

      deep = fn -> {:ok, _} = SnakeBridge.to_elixir(x, o) end

      report(
        "to_elixir of the same 64 MiB array through 1 worker (for comparison)",
        sample(deep, 3),
        "a list of floats"
      )
    end)
  end

  # 1,000 arrays of 8 MiB converted and dropped: RSS before and after.
  defp bench("array_memory", ctx) do
    count = max(n(ctx, 1_000), 20)

    run = fn backend ->
      o = [backend: backend]
      np = SnakeBridge.call!("importlib", "import_module", ["numpy"], [], o)

      rss = fn ->
        SnakeBridge.eval!("int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])", %{}, o)
      end

      once = fn i -> SnakeBridge.to_array!(SnakeBridge.method!(np, "full", [1_048_576, i * 1.0], [], o), o) end
      for i <- 1..20, do: once.(i)
      settle()
      before = rss.()
      {us, _} = :timer.tc(fn -> for i <- 1..count, do: byte_size(once.(i).data) end)
      settle()
      # The last releases reach Python a moment after the BEAM collects.
      after_ = Enum.min(for _ <- 1..10, do: Process.sleep(300) && rss.())
      {before, after_, us}
    end

    {b0, a0, us0} = run.(:nif)

    IO.puts(
      "| #{count} arrays of 8 MiB made, to_array'd and dropped, in-process | — | — | " <>
        "RSS #{div(b0, 1024)} → #{div(a0, 1024)} MB; #{div(us0, count)} µs each (numpy.full + to_array) |"
    )

    with_pool(1, fn pool ->
      {b1, a1, us1} = run.(pool)

      IO.puts(
        "| #{count} arrays of 8 MiB made, to_array'd and dropped, through 1 worker | — | — | " <>
          "worker RSS #{div(b1, 1024)} → #{div(a1, 1024)} MB, BEAM RSS #{div(rss_kb(), 1024)} MB; #{div(us1, count)} µs each |"
      )
    end)
  end

  # The physical limit of a pipe on this machine: 1 GiB through `cat`.
  defp bench("pipe_floor", _ctx) do
    {out, 0} = System.cmd("sh", ["-c", "dd if=/dev/zero bs=1M count=1024 | cat > /dev/null"], stderr_to_stdout: true)
    rate = out |> String.split("\n", trim: true) |> List.last()
    IO.puts("| pipe floor: `dd if=/dev/zero bs=1M count=1024 \\| cat > /dev/null` | — | — | #{rate} |")
  end

  defp bench("port_sleep200", _ctx) do
    with_pool(2, &sleep200("port: 200 concurrent time.sleep(0.5), 2 workers", &1))
  end

  # 200 concurrent time.sleep(0.5) calls while a 1 ms heartbeat ticks.
  defp sleep200(name, backend) do
    {_, elapsed, worst} =
      SnakeBridge.Heartbeat.measure(fn ->
        1..200
        |> Enum.map(fn _ ->
          Task.async(fn -> {:ok, nil} = SnakeBridge.call("time", "sleep", [0.5], [], backend: backend) end)
        end)
        |> Task.await_many(60_000)
      end)

    IO.puts(
      "| #{name} | — | — | all done in #{elapsed} ms; heartbeat (1 ms ticks) worst gap #{Float.round(worst / 1000, 1)} ms |"
    )
  end

  # The same call in-process and through a 1-worker pool (`call` takes the
  # backend), each after `warm_count` warm-up calls, reported side by side.
  defp versus_nif(ctx, name, warm_count, count, call) do
    nif = fn -> call.(:nif) end
    warm(nif, ctx, warm_count)
    nif_samples = sample(nif, n(ctx, count))

    with_pool(1, fn pool ->
      f = fn -> call.(pool) end
      warm(f, ctx, warm_count)

      report(
        name,
        sample(f, n(ctx, count)),
        "after #{n(ctx, warm_count)} warm-up calls; NIF same call #{median_p99(nif_samples)}"
      )
    end)
  end

  # Starts a pool of `size` workers, waits until it answers, runs fun with its
  # backend option, and stops the pool.
  defp with_pool(size, fun) do
    {:ok, sup} = SnakeBridge.Pool.start_link(name: SnakeBridge.BenchPool, size: size)
    pool = {:pool, SnakeBridge.BenchPool}

    try do
      # Every worker up: all registered, then one 20 ms call per worker sent at
      # once (least-loaded routing gives each worker one).
      wait_until(fn -> length(SnakeBridge.Pool.workers(SnakeBridge.BenchPool)) == size end)
      {:ok, _} = wait_ready(pool)

      1..size
      |> Enum.map(fn _ ->
        Task.async(fn -> {:ok, nil} = SnakeBridge.call("time", "sleep", [0.02], [], backend: pool) end)
      end)
      |> Task.await_many(30_000)

      fun.(pool)
    after
      stop_pool(sup)
    end
  end

  defp wait_ready(pool, tries \\ 3000) do
    case SnakeBridge.call("math", "sqrt", [2.0], [], backend: pool) do
      {:ok, _} = ok ->
        ok

      {:error, _} when tries > 0 ->
        Process.sleep(1)
        wait_ready(pool, tries - 1)

      {:error, _} = error ->
        error
    end
  end

  defp wait_until(check, tries \\ 3000) do
    cond do
      check.() ->
        :ok

      tries > 0 ->
        Process.sleep(1)
        wait_until(check, tries - 1)

      true ->
        raise "pool workers did not start"
    end
  end

  defp stop_pool(sup) do
    Process.unlink(sup)
    Supervisor.stop(sup)
  end

  # 64 MiB over the median time, in GB/s.
  defp gbps(samples) do
    median = samples |> Enum.sort() |> Enum.at(div(length(samples), 2))
    Float.round(64 * 1024 * 1024 / median, 2)
  end

  defp median_p99(samples) do
    sorted = Enum.sort(samples)
    len = length(sorted)
    "#{fmt_ns(Enum.at(sorted, div(len, 2)))} (p99 #{fmt_ns(Enum.at(sorted, min(len - 1, trunc(len * 0.99))))})"
  end

  defp warm(f, ctx, count \\ 10_000), do: for(_ <- 1..n(ctx, count), do: f.())

  defp sample(f, count) do
    for _ <- 1..count do
      t0 = System.monotonic_time(:nanosecond)
      f.()
      System.monotonic_time(:nanosecond) - t0
    end
  end

  # Let the NIF's idle threads release dropped references, and the BEAM collect.
  defp settle do
    for _ <- 1..5 do
      for p <- Process.list(), do: :erlang.garbage_collect(p)
      Process.sleep(200)
    end
  end

  defp rss_kb do
    "/proc/self/status"
    |> File.read!()
    |> then(&Regex.run(~r/VmRSS:\s+(\d+)/, &1))
    |> Enum.at(1)
    |> String.to_integer()
  end

  defp report(name, samples, note) do
    sorted = Enum.sort(samples)
    len = length(sorted)
    p50 = Enum.at(sorted, div(len, 2))
    p99 = Enum.at(sorted, min(len - 1, trunc(len * 0.99)))
    IO.puts("| #{name} | #{fmt_ns(p50)} | #{fmt_ns(p99)} | #{note} |")
  end

  defp fmt_ns(ns) when ns < 10_000, do: "#{Float.round(ns / 1000, 2)} µs"
  defp fmt_ns(ns) when ns < 10_000_000, do: "#{Float.round(ns / 1000, 1)} µs"
  defp fmt_ns(ns), do: "#{Float.round(ns / 1_000_000, 1)} ms"
  defp fmt_rate(r), do: "#{Float.round(r / 1_000_000, 2)} M"
  defp sign(x) when x >= 0, do: "+"
  defp sign(_), do: ""
end
