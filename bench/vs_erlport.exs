# SnakeBridge's pool backend, its in-process backend and ErlPort, side by side
# in one run (issue 15): the same workloads, measured in interleaved rounds
# (every contender once per round, in a rotating order) so that the machine's
# noise hits all of them alike; each figure is the median across the rounds.
#
#     ERLPORT_DIR=/path/to/erlport MIX_ENV=prod mix run bench/vs_erlport.exs [--only a,b] [--quick] [--rounds N]
#
# SnakeBridge does not depend on ErlPort. With ERLPORT_DIR (a checkout of
# ErlPort's source, v0.11.0 was used) the script compiles its src/*.erl with
# erlc into a temporary directory (an erlport/ebin with an erlport.app made from
# src/erlport.app.src, and a copy of priv/python3, ErlPort's Python side), adds
# that ebin to the code path at run time and starts `python:start/1` on the same
# interpreter as SnakeBridge. The directory is deleted at the end. Without
# ERLPORT_DIR only SnakeBridge's figures are printed.
#
# Workloads (`--only` takes these names): trivial, json, object, medium, concurrent,
# concurrent_json, list, bytes, cold_start, loaded, callbacks. docs/benchmarks.md, "Pool vs ErlPort, side by
# side", has a run and what each contender does differently.

defmodule VsErlport do
  @workloads ~w(trivial json object medium concurrent concurrent_json list bytes cold_start loaded callbacks)
  @order [:pool, :pool2, :nif, :erlport]
  @pool1 VsErlport.Pool1
  @pool2 VsErlport.Pool2
  @cold_pool VsErlport.ColdPool
  @map %{"name" => "snakebridge", "n" => 42, "tags" => ["a", "b"], "ok" => true}

  # ErlPort's side: ErlPort calls a module's function by name, so the identity
  # function lives in a module; and ErlPort hands an Elixir string to Python as
  # bytes (json.dumps refuses those), so json.dumps needs them made str first.
  @helper """
  \"\"\"ErlPort's side of SnakeBridge's bench/vs_erlport.exs (written to a temporary directory).\"\"\"
  import json
  import time


  def ident(x):
      return x


  def work(us):
      # Python busy for `us` microseconds of wall time (the same work for every contender).
      end = time.perf_counter() + us * 1e-6
      while time.perf_counter() < end:
          pass
      return us


  def _text(x):
      # ErlPort: an Elixir string arrives as bytes, a map as a dict (erlport.erlterms.Map), a list as a list.
      if isinstance(x, bytes):
          return x.decode()
      if isinstance(x, dict):
          return {_text(k): _text(v) for k, v in x.items()}
      if isinstance(x, list):
          return [_text(v) for v in x]
      return x


  def sort_by_erlang(xs):
      # Python calling Erlang per key, as SnakeBridge's Elixir key does (issue 11).
      from erlport.erlang import call
      from erlport.erlterms import Atom
      return sorted(xs, key=lambda x: call(Atom(b"erlang"), Atom(b"-"), [x]))


  def dumps(m):
      # bytes back, so that Elixir gets a binary (a str would come back as a charlist).
      return json.dumps(_text(m)).encode()
  """

  def main(argv) do
    {opts, args, invalid} = OptionParser.parse(argv, strict: [only: :string, quick: :boolean, rounds: :integer])
    if invalid != [] or args != [], do: raise("usage: mix run bench/vs_erlport.exs [--only a,b] [--quick] [--rounds N]")
    only = if opts[:only], do: String.split(opts[:only], ",", trim: true), else: @workloads

    case only -- @workloads do
      [] -> :ok
      unknown -> raise "unknown workload(s) #{Enum.join(unknown, ", ")}; known: #{Enum.join(@workloads, ", ")}"
    end

    quick = opts[:quick] || false
    tmp = Path.join(System.tmp_dir!(), "snakebridge_vs_erlport_#{System.pid()}")

    try do
      erlport = erlport(tmp)
      ctx = setup(erlport, quick, opts[:rounds] || if(quick, do: 2, else: 3), only)
      header(ctx)
      results = for name <- @workloads, name in only, do: run(name, ctx)
      table(ctx, results)
      details(ctx, results)
      IO.puts("\nload average at the end: #{loadavg()}")
    after
      File.rm_rf!(tmp)
    end
  end

  # ----------------------------------------------------------------- set-up

  # Builds ErlPort from ERLPORT_DIR into tmp/erlport (ebin + priv/python3) and
  # writes the helper module; nil without ERLPORT_DIR.
  defp erlport(tmp) do
    case System.get_env("ERLPORT_DIR") do
      dir when dir in [nil, ""] ->
        nil

      dir ->
        dir = Path.expand(dir)
        src = Path.join(dir, "src")
        unless File.dir?(src), do: raise("ERLPORT_DIR=#{dir}: no src/ there (a checkout of ErlPort's source?)")
        build = Path.join(tmp, "erlport")
        ebin = Path.join(build, "ebin")
        File.mkdir_p!(ebin)
        erlc = System.find_executable("erlc") || raise "erlc not found"
        sources = Path.wildcard(Path.join(src, "*.erl"))

        case System.cmd(erlc, ["-o", ebin, "-I", src | sources], stderr_to_stdout: true) do
          {_, 0} -> :ok
          {out, status} -> raise "erlc failed (#{status}):\n#{out}"
        end

        {:ok, [{:application, :erlport, props}]} = :file.consult(Path.join(src, "erlport.app.src") |> to_charlist())

        modules =
          for beam <- Path.wildcard(Path.join(ebin, "*.beam")), do: beam |> Path.basename(".beam") |> String.to_atom()

        app = {:application, :erlport, Keyword.put(props, :modules, modules)}
        File.write!(Path.join(ebin, "erlport.app"), :io_lib.format(~c"~p.~n", [app]))
        # ErlPort finds its Python side as code:priv_dir(erlport) ++ "/python3".
        File.mkdir_p!(Path.join(build, "priv"))
        File.cp_r!(Path.join([dir, "priv", "python3"]), Path.join([build, "priv", "python3"]))
        true = :code.add_patha(to_charlist(ebin))
        :ok = :application.load(:erlport)

        py = Path.join(tmp, "py")
        File.mkdir_p!(py)
        File.write!(Path.join(py, "sb_vs_erlport.py"), @helper)
        {:ok, vsn} = :application.get_key(:erlport, :vsn)
        # ErlPort's python module, through a variable: it is not there when this file is compiled.
        %{
          ep: :python,
          dir: dir,
          vsn: to_string(vsn),
          options: [python: to_charlist(python()), python_path: to_charlist(py)]
        }
    end
  end

  defp python do
    case SnakeBridge.Config.python() do
      path when is_binary(path) -> path
      _ -> "/usr/bin/python3"
    end
  end

  defp setup(erlport, quick, rounds, only) do
    pool1 = start_pool(@pool1, 1)
    pool2 = if "concurrent" in only or "concurrent_json" in only, do: start_pool(@pool2, 2)
    ident_code = "def ident(x):\n    return x\n"
    # The same as the ErlPort helper's work/1 (the "medium" workload).
    work_code = """
    import time
    def work(us):
        end = time.perf_counter() + us * 1e-6
        while time.perf_counter() < end:
            pass
        return us
    """

    py =
      if erlport do
        {:ok, py} = erlport.ep.start(erlport.options)
        1.4142135623730951 = erlport.ep.call(py, :math, :sqrt, [2.0])
        py
      end

    %{
      quick: quick,
      rounds: rounds,
      # Time per contender per round for the per-call workloads.
      budget_ms: if(quick, do: 60, else: 600),
      per_caller: if(quick, do: 50, else: 1_000),
      erlport: erlport,
      py: py,
      ep: erlport && erlport.ep,
      pool1: pool1,
      pool2: pool2,
      nif_ident: SnakeBridge.exec!(ident_code)["ident"],
      pool_ident: SnakeBridge.exec!(ident_code, %{}, backend: pool1)["ident"],
      nif_work: SnakeBridge.exec!(work_code)["work"],
      pool_work: SnakeBridge.exec!(work_code, %{}, backend: pool1)["work"],
      contenders: [:pool, :nif] ++ if(erlport, do: [:erlport], else: [])
    }
  end

  defp start_pool(name, size) do
    {:ok, _sup} = SnakeBridge.Pool.start_link(name: name, size: size)
    pool = {:pool, name}
    wait_until(fn -> length(SnakeBridge.Pool.workers(name)) == size end)
    {:ok, _} = wait_ready(pool)
    # One 20 ms call per worker at once: every worker has answered something.
    1..size
    |> Enum.map(fn _ ->
      Task.async(fn -> {:ok, nil} = SnakeBridge.call("time", "sleep", [0.02], [], backend: pool) end)
    end)
    |> Task.await_many(30_000)

    pool
  end

  defp header(ctx) do
    {:ok, vsn} = :application.get_key(:snakebridge, :vsn)

    IO.puts(
      "SnakeBridge #{vsn} " <>
        if(ctx.erlport,
          do: "vs ErlPort #{ctx.erlport.vsn} (built from #{ctx.erlport.dir})",
          else: "(ErlPort not measured)"
        ) <>
        " — #{DateTime.utc_now() |> DateTime.truncate(:second)} — OTP #{System.otp_release()}, " <>
        "#{System.schedulers_online()} schedulers, #{cores()} cores, Python #{SnakeBridge.getattr!("sys", "version") |> String.split() |> hd()} " <>
        "(#{python()}); #{ctx.rounds} rounds; load average #{loadavg()}"
    )

    unless ctx.erlport do
      IO.puts(
        "\nNote: ERLPORT_DIR is not set, so ErlPort is not measured: only SnakeBridge's figures follow. " <>
          "Set ERLPORT_DIR to a checkout of ErlPort's source (https://github.com/erlport/erlport) to compare."
      )
    end
  end

  # --------------------------------------------------------------- workloads

  # Each returns %{name, label, rows: [%{label, cells: %{contender => text}}], detail}.

  defp run("trivial", ctx) do
    latency(ctx, "trivial", "`math.sqrt(2.0)`", 20_000, %{
      pool: fn -> {:ok, 1.4142135623730951} = SnakeBridge.call("math", "sqrt", [2.0], [], backend: ctx.pool1) end,
      nif: fn -> {:ok, 1.4142135623730951} = SnakeBridge.call("math", "sqrt", [2.0]) end,
      erlport: fn -> 1.4142135623730951 = ctx.ep.call(ctx.py, :math, :sqrt, [2.0]) end
    })
  end

  defp run("json", ctx) do
    expected = SnakeBridge.call!("json", "dumps", [@map])

    if ctx.erlport do
      got = ctx.ep.call(ctx.py, :sb_vs_erlport, :dumps, [@map])
      unless got == expected, do: raise("json: ErlPort gave #{inspect(got)}, SnakeBridge #{inspect(expected)}")
    end

    latency(ctx, "json", "`json.dumps` of a 4-key map", 20_000, %{
      pool: fn -> {:ok, ^expected} = SnakeBridge.call("json", "dumps", [@map], [], backend: ctx.pool1) end,
      nif: fn -> {:ok, ^expected} = SnakeBridge.call("json", "dumps", [@map]) end,
      erlport: fn -> ^expected = ctx.ep.call(ctx.py, :sb_vs_erlport, :dumps, [@map]) end
    })
  end

  defp run("object", ctx) do
    o = [backend: ctx.pool1]

    latency(ctx, "object", "`fractions.Fraction(3, 4)`, then its `limit_denominator(2)`", 20_000, %{
      pool: fn ->
        {:ok, frac} = SnakeBridge.new("fractions", "Fraction", [3, 4], [], o)
        {:ok, %SnakeBridge.Object{}} = SnakeBridge.method(frac, "limit_denominator", [2], [], o)
      end,
      nif: fn ->
        {:ok, frac} = SnakeBridge.new("fractions", "Fraction", [3, 4])
        {:ok, %SnakeBridge.Object{}} = SnakeBridge.method(frac, "limit_denominator", [2])
      end,
      # ErlPort returns an object it cannot encode pickled ({:"$erlport.opaque",
      # :python, pickle}) and unpickles it when it is passed back: a copy each
      # way. It has no method call: the method is called as Fraction.limit_denominator(obj, 2).
      erlport: fn ->
        frac = ctx.ep.call(ctx.py, :fractions, :Fraction, [3, 4])
        {:"$erlport.opaque", :python, _} = ctx.ep.call(ctx.py, :fractions, :"Fraction.limit_denominator", [frac, 2])
      end
    })
  end

  # Python calling an Elixir (Erlang, for ErlPort) function 10,000 times in
  # one call: `sorted(xs, key=f)` (issue 11).
  defp run("callbacks", ctx) do
    xs = Enum.to_list(1..10_000)
    expected = Enum.sort(xs, :desc)
    key = fn x -> -x end

    latency(ctx, "callbacks", "`sorted(range(10_000), key=f)`, `f` in Elixir (10,000 callbacks)", 20, %{
      pool: fn -> {:ok, ^expected} = SnakeBridge.call("builtins", "sorted", [xs], [key: key], backend: ctx.pool1) end,
      nif: fn -> {:ok, ^expected} = SnakeBridge.call("builtins", "sorted", [xs], key: key) end,
      erlport: fn -> ^expected = ctx.ep.call(ctx.py, :sb_vs_erlport, :sort_by_erlang, [xs]) end
    })
  end

  # Calls whose Python work takes a while: past a caller's polling window
  # (50 µs), its reply comes as a message.
  defp run("medium", ctx) do
    rows =
      for us <- [20, 50, 100, 500] do
        latency(ctx, "medium", "Python busy #{us} µs (`work(#{us})`)", div(20_000_000, us + 20), %{
          pool: fn -> {:ok, ^us} = SnakeBridge.call(ctx.pool_work, nil, [us], [], backend: ctx.pool1) end,
          nif: fn -> {:ok, ^us} = SnakeBridge.call(ctx.nif_work, nil, [us]) end,
          erlport: fn -> ^us = ctx.ep.call(ctx.py, :sb_vs_erlport, :work, [us]) end
        })
      end

    %{rows: Enum.flat_map(rows, & &1.rows), detail: Enum.map_join(rows, "\n", & &1.detail)}
  end

  defp run("list", ctx) do
    list = Enum.to_list(1..10_000)

    latency(ctx, "list", "10,000-integer list round trip (identity function)", 2_000, %{
      pool: fn -> {:ok, ^list} = SnakeBridge.call(ctx.pool_ident, nil, [list], [], backend: ctx.pool1) end,
      nif: fn -> {:ok, ^list} = SnakeBridge.call(ctx.nif_ident, nil, [list]) end,
      erlport: fn -> ^list = ctx.ep.call(ctx.py, :sb_vs_erlport, :ident, [list]) end
    })
  end

  defp run("bytes", ctx) do
    # Not valid UTF-8 (0xFF never occurs in UTF-8); SnakeBridge.bytes/1 makes it
    # Python bytes either way, as ErlPort makes every binary.
    bin = <<0xFF>> <> :crypto.strong_rand_bytes(1_048_575)
    arg = SnakeBridge.bytes(bin)

    latency(ctx, "bytes", "1 MiB bytes round trip (identity function)", 2_000, %{
      pool: fn -> {:ok, ^bin} = SnakeBridge.call(ctx.pool_ident, nil, [arg], [], backend: ctx.pool1) end,
      nif: fn -> {:ok, ^bin} = SnakeBridge.call(ctx.nif_ident, nil, [arg]) end,
      erlport: fn -> ^bin = ctx.ep.call(ctx.py, :sb_vs_erlport, :ident, [bin]) end
    })
  end

  defp run("concurrent", ctx) do
    sqrt = fn opts -> fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], opts) end end

    concurrent(ctx, "`math.sqrt`", %{
      pool: sqrt.(backend: ctx.pool1),
      pool2: sqrt.(backend: ctx.pool2),
      nif: sqrt.([]),
      erlport: fn -> 1.4142135623730951 = ctx.ep.call(ctx.py, :math, :sqrt, [2.0]) end
    })
  end

  # The same with a call that runs on its caller's Python thread (math.sqrt
  # is answered by the thread that reads it: docs/backends.md, "Calls that
  # run where they arrive"), as most calls do.
  defp run("concurrent_json", ctx) do
    expected = SnakeBridge.call!("json", "dumps", [@map])
    dumps = fn opts -> fn -> {:ok, ^expected} = SnakeBridge.call("json", "dumps", [@map], [], opts) end end

    concurrent(ctx, "`json.dumps` of a 4-key map", %{
      pool: dumps.(backend: ctx.pool1),
      pool2: dumps.(backend: ctx.pool2),
      nif: dumps.([]),
      erlport: fn -> ^expected = ctx.ep.call(ctx.py, :sb_vs_erlport, :dumps, [@map]) end
    })
  end

  defp concurrent(ctx, what, funs) do
    callers = 100
    per = ctx.per_caller

    contenders = [:pool, :pool2 | tl(ctx.contenders)]

    # A new set of 100 processes each time, as a caller of a pool would have.
    burst = fn f, count ->
      t0 = System.monotonic_time(:nanosecond)

      1..callers
      |> Enum.map(fn _ -> Task.async(fn -> for _ <- 1..count, do: f.() end) end)
      |> Task.await_many(:infinity)

      System.monotonic_time(:nanosecond) - t0
    end

    rounds =
      rounds(ctx, contenders, fn c ->
        f = funs[c]
        burst.(f, 20)
        %{rate: callers * per / (burst.(f, per) / 1.0e9)}
      end)

    rates = for {c, rs} <- rounds, into: %{}, do: {c, median(Enum.map(rs, & &1.rate))}
    label = "#{callers} processes × #{per} #{what} calls at once"

    %{
      rows: [
        %{label: label <> ", calls/s", cells: Map.new(Map.delete(rates, :pool2), fn {c, r} -> {c, fmt_rate(r)} end)},
        %{label: label <> ", calls/s, pool of 2 workers", cells: %{pool: fmt_rate(rates.pool2)}}
      ],
      detail:
        "#{label} (calls/s per round): " <>
          Enum.map_join(contenders, "; ", fn c -> "#{name(c)} #{rounds_text(rounds[c], &fmt_rate(&1.rate))}" end)
    }
  end

  defp run("cold_start", ctx) do
    per_round = if ctx.quick, do: 1, else: 3

    pool = fn ->
      t0 = System.monotonic_time(:nanosecond)
      {:ok, sup} = SnakeBridge.Pool.start_link(name: @cold_pool, size: 1)
      {:ok, _} = wait_ready({:pool, @cold_pool})
      elapsed = System.monotonic_time(:nanosecond) - t0
      Process.unlink(sup)
      Supervisor.stop(sup)
      elapsed
    end

    erlport = fn ->
      t0 = System.monotonic_time(:nanosecond)
      {:ok, py} = ctx.ep.start(ctx.erlport.options)
      1.4142135623730951 = ctx.ep.call(py, :math, :sqrt, [2.0])
      elapsed = System.monotonic_time(:nanosecond) - t0
      ctx.ep.stop(py)
      elapsed
    end

    rounds =
      rounds(ctx, ctx.contenders, fn
        # The interpreter of the in-process backend starts with the application:
        # measured in a fresh BEAM (elixir -pa ...), from Application.ensure_all_started
        # to the first reply (the BEAM's own start is not counted).
        :nif -> summary(for _ <- 1..max(div(per_round, 2), 1), do: nif_cold_start())
        :pool -> summary(for _ <- 1..per_round, do: pool.())
        :erlport -> summary(for _ <- 1..per_round, do: erlport.())
      end)

    latency_result("cold start to the first reply (`math.sqrt`)", rounds, false)
  end

  defp run("loaded", ctx) do
    # The trivial call, quiet and then while one busy loop per core runs
    # (`sh -c 'while :; do :; done'`), in every round.
    funs = run_funs_trivial(ctx)
    budget = ctx.budget_ms

    rounds =
      Enum.reduce(1..ctx.rounds, %{}, fn r, acc ->
        order = rotate(ctx.contenders, r)
        quiet = for c <- order, into: %{}, do: {c, measure(funs[c], 20_000, budget)}

        loaded =
          SnakeBridge.BusyLoops.run(
            cores(),
            fn -> for c <- order, into: %{}, do: {c, measure(funs[c], 20_000, budget)} end,
            100
          )

        Process.sleep(100)

        Enum.reduce(order, acc, fn c, acc ->
          Map.update(acc, c, [%{quiet: quiet[c], loaded: loaded[c]}], &(&1 ++ [%{quiet: quiet[c], loaded: loaded[c]}]))
        end)
      end)

    cells =
      Map.new(rounds, fn {c, rs} ->
        q = median(Enum.map(rs, & &1.quiet.median))
        l = median(Enum.map(rs, & &1.loaded.median))
        {c, "#{fmt_ns(l)} (quiet #{fmt_ns(q)}: ×#{Float.round(l / q, 1)})"}
      end)

    %{
      rows: [%{label: "`math.sqrt(2.0)` while #{cores()} busy loops run (one per core)", cells: cells}],
      detail:
        "loaded `math.sqrt` (medians per round, quiet → loaded): " <>
          Enum.map_join(ctx.contenders, "; ", fn c ->
            "#{name(c)} " <>
              Enum.map_join(rounds[c], ", ", fn x -> "#{fmt_ns(x.quiet.median)} → #{fmt_ns(x.loaded.median)}" end)
          end)
    }
  end

  defp run_funs_trivial(ctx) do
    %{
      pool: fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], backend: ctx.pool1) end,
      nif: fn -> {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0]) end,
      erlport: fn -> 1.4142135623730951 = ctx.ep.call(ctx.py, :math, :sqrt, [2.0]) end
    }
  end

  # ---------------------------------------------------------------- machinery

  # A per-call workload: every round measures each contender for up to
  # budget_ms (at most max_calls calls) after a short warm-up.
  defp latency(ctx, _name, label, max_calls, funs) do
    rounds = rounds(ctx, ctx.contenders, fn c -> measure(funs[c], max_calls, ctx.budget_ms) end)
    latency_result(label, rounds, true)
  end

  defp latency_result(label, rounds, p99?) do
    cells =
      Map.new(rounds, fn {c, rs} ->
        m = fmt_ns(median(Enum.map(rs, & &1.median)))
        {c, if(p99?, do: "#{m} (p99 #{fmt_ns(median(Enum.map(rs, & &1.p99)))})", else: m)}
      end)

    %{
      rows: [%{label: label, cells: cells}],
      detail:
        "#{label} (median per round, calls per round): " <>
          Enum.map_join(order(rounds), "; ", fn {c, rs} ->
            "#{name(c)} #{rounds_text(rs, &fmt_ns(&1.median))} (n #{Enum.map_join(rs, "/", & &1.n)})"
          end)
    }
  end

  # Runs fun.(contender) for every contender in every round, rotating the order
  # each round; returns %{contender => [result of round 1, 2, ...]}.
  defp rounds(ctx, contenders, fun) do
    Enum.reduce(1..ctx.rounds, Map.new(contenders, &{&1, []}), fn r, acc ->
      Enum.reduce(rotate(contenders, r), acc, fn c, acc -> Map.update!(acc, c, &(&1 ++ [fun.(c)])) end)
    end)
  end

  defp rotate(list, r) do
    k = rem(r - 1, length(list))
    Enum.drop(list, k) ++ Enum.take(list, k)
  end

  defp measure(f, max_calls, budget_ms) do
    # Warm-up: a fifth of the budget, at most a fifth of the calls.
    loop(f, div(max_calls, 5), System.monotonic_time(:nanosecond) + budget_ms * 200_000, [])
    summary(loop(f, max_calls, System.monotonic_time(:nanosecond) + budget_ms * 1_000_000, []))
  end

  defp loop(f, left, deadline, acc) do
    t0 = System.monotonic_time(:nanosecond)
    f.()
    t1 = System.monotonic_time(:nanosecond)
    acc = [t1 - t0 | acc]
    if left <= 1 or (t1 > deadline and length(acc) >= 5), do: acc, else: loop(f, left - 1, deadline, acc)
  end

  defp summary(samples) do
    sorted = Enum.sort(samples)
    len = length(sorted)
    %{median: Enum.at(sorted, div(len, 2)), p99: Enum.at(sorted, min(len - 1, trunc(len * 0.99))), n: len}
  end

  # Of the rounds' figures: with an even number of rounds, the mean of the middle two.
  defp median(values) do
    sorted = Enum.sort(values)
    len = length(sorted)

    if rem(len, 2) == 1,
      do: Enum.at(sorted, div(len, 2)),
      else: (Enum.at(sorted, div(len, 2) - 1) + Enum.at(sorted, div(len, 2))) / 2
  end

  defp nif_cold_start do
    ebin = :code.lib_dir(:snakebridge, :ebin) |> to_string()

    code =
      "t0 = System.monotonic_time(:nanosecond); {:ok, _} = Application.ensure_all_started(:snakebridge); " <>
        "{:ok, _} = SnakeBridge.call(\"math\", \"sqrt\", [2.0]); " <>
        "IO.puts(\"cold=\#{System.monotonic_time(:nanosecond) - t0}\")"

    {out, 0} = System.cmd(System.find_executable("elixir"), ["-pa", ebin, "-e", code], stderr_to_stdout: true)
    [_, ns] = Regex.run(~r/cold=(\d+)/, out) || raise("in-process cold start: #{out}")
    String.to_integer(ns)
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
      check.() -> :ok
      tries > 0 -> Process.sleep(1) && wait_until(check, tries - 1)
      true -> raise "pool workers did not start"
    end
  end

  # ------------------------------------------------------------------ output

  defp table(ctx, results) do
    columns = ctx.contenders
    IO.puts("\n| workload | " <> Enum.map_join(columns, " | ", &name/1) <> " |")
    IO.puts("|---|" <> String.duplicate("---|", length(columns)))

    for %{rows: rows} <- results, row <- rows do
      IO.puts("| #{row.label} | " <> Enum.map_join(columns, " | ", &Map.get(row.cells, &1, "—")) <> " |")
    end
  end

  defp details(ctx, results) do
    IO.puts("\nPer round (#{ctx.rounds} rounds, contenders in a rotating order):\n")
    for %{detail: d} <- results, do: IO.puts("- " <> d)
  end

  defp order(by_contender), do: Enum.sort_by(by_contender, fn {c, _} -> Enum.find_index(@order, &(&1 == c)) end)

  defp rounds_text(rs, fmt), do: "[" <> Enum.map_join(rs, ", ", fmt) <> "]"

  defp name(:pool), do: "SnakeBridge pool (1 worker)"
  defp name(:pool2), do: "SnakeBridge pool (2 workers)"
  defp name(:nif), do: "SnakeBridge in-process"
  defp name(:erlport), do: "ErlPort (1 instance)"

  defp cores, do: :erlang.system_info(:logical_processors_available) |> then(&if is_integer(&1), do: &1, else: 2)
  defp loadavg, do: File.read!("/proc/loadavg") |> String.split() |> Enum.take(3) |> Enum.join(" ")

  defp fmt_ns(ns) when ns < 10_000, do: "#{Float.round(ns / 1000, 2)} µs"
  defp fmt_ns(ns) when ns < 1_000_000, do: "#{Float.round(ns / 1000, 1)} µs"
  defp fmt_ns(ns) when ns < 100_000_000, do: "#{Float.round(ns / 1_000_000, 2)} ms"
  defp fmt_ns(ns), do: "#{Float.round(ns / 1_000_000, 1)} ms"
  defp fmt_rate(r) when r >= 1_000_000, do: "#{Float.round(r / 1_000_000, 2)} M"
  defp fmt_rate(r), do: "#{Float.round(r / 1000, 1)} k"
end

VsErlport.main(System.argv())
