# Generated interfaces whose calls go to the pool declared in config/config.exs
# (compiled with this file: the application, and so that pool, is running).
defmodule SnakeBridge.PoolFeaturesTest.PoolOs do
  use SnakeBridge, python: "os", only: ["getpid"], backend: {:pool, SnakeBridge.TestPool}
end

defmodule SnakeBridge.PoolFeaturesTest.PoolOsAtom do
  # The same, the pool named by its atom rather than an alias.
  use SnakeBridge, python: "os", only: ["getpid"], backend: {:pool, :"Elixir.SnakeBridge.TestPool"}
end

defmodule SnakeBridge.PoolFeaturesTest.PoolCollections do
  use SnakeBridge, python: "collections", only: ["Counter"], backend: {:pool, :"Elixir.SnakeBridge.TestPool"}
end

defmodule SnakeBridge.PoolFeaturesTest.NifOs do
  use SnakeBridge, python: "os", only: ["getpid"]
end

defmodule SnakeBridge.PoolFeaturesTest do
  # SnakeBridge.Pool options and life cycle against real worker processes
  # (priv/snakebridge_port): memory- and call-count recycling, per-worker
  # environment, pools declared in config, shutdown, generated code on a pool.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers, only: [wait_until: 2]

  alias SnakeBridge.{Object, Pool}
  alias SnakeBridge.PoolFeaturesTest.{NifOs, PoolCollections, PoolOs, PoolOsAtom}

  @moduletag timeout: 60_000

  @config_pool SnakeBridge.TestPool

  # ------------------------------------------------------------------ helpers

  defp pool(name), do: [backend: {:pool, name}]

  defp worker_os_pid(name), do: SnakeBridge.call!("os", "getpid", [], [], pool(name))

  # Resident set size, or nil once the process is gone.
  defp rss_bytes(os_pid) do
    case File.read("/proc/#{os_pid}/statm") do
      {:ok, statm} ->
        [_size, resident | _] = String.split(statm)
        String.to_integer(resident) * page_size()

      {:error, _} ->
        nil
    end
  end

  defp page_size do
    {out, 0} = System.cmd("getconf", ["PAGESIZE"])
    out |> String.trim() |> String.to_integer()
  end

  # {state, ppid} of an OS process from /proc/<pid>/stat, or nil if there is none.
  defp proc_stat(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} ->
        # "pid (comm) S ppid ...": comm may hold spaces and parentheses.
        [_, rest] = Regex.run(~r/\) (.*)$/s, stat)
        [state, ppid | _] = String.split(rest)
        {state, String.to_integer(ppid)}

      {:error, _} ->
        nil
    end
  end

  # Running (a zombie is not: it has exited and waits to be reaped).
  defp running?(os_pid) do
    case proc_stat(os_pid) do
      {state, _} -> state != "Z"
      nil -> false
    end
  end

  defp supervised_pools do
    for {{SnakeBridge.Pool, name}, pid, :supervisor, _} <- Supervisor.which_children(SnakeBridge.Supervisor),
        is_pid(pid),
        do: name
  end

  # ------------------------------------------------------------------ 1. memory recycling

  test "max_memory_mb: a worker that grows past the bound is recycled, and no caller notices" do
    # What a fresh worker holds, so that the bound sits well above it.
    start_supervised!({Pool, name: SnakeBridge.PoolFeaturesTest.Probe, size: 1})
    fresh_rss = rss_bytes(worker_os_pid(SnakeBridge.PoolFeaturesTest.Probe))
    stop_supervised!({Pool, SnakeBridge.PoolFeaturesTest.Probe})

    limit_mb = div(fresh_rss, 1024 * 1024) + 40
    limit = limit_mb * 1024 * 1024
    name = SnakeBridge.PoolFeaturesTest.Mem
    start_supervised!({Pool, name: name, size: 1, max_memory_mb: limit_mb})

    # Kept alive in a module global: the worker's memory stays above the bound.
    hog_size = limit + 30 * 1024 * 1024
    hog = "setattr(__import__('sys'), '_sbpf_hog', b'\\x01' * n) or len(__import__('sys')._sbpf_hog)"

    # Within the bound, the worker stays.
    first = worker_os_pid(name)
    assert rss_bytes(first) < limit
    assert worker_os_pid(name) == first

    assert SnakeBridge.eval(hog, %{"n" => hog_size}, pool(name)) == {:ok, hog_size}
    # (unless it is already gone)
    assert (rss_bytes(first) || :infinity) > limit

    # No call follows: the periodic check (every second) finds it.
    assert wait_until(4_000, fn -> not running?(first) end), "worker #{first} was not recycled"

    # The new worker is a fresh interpreter, within the bound.
    second = worker_os_pid(name)
    assert second != first
    assert SnakeBridge.eval!("hasattr(__import__('sys'), '_sbpf_hog')", %{}, pool(name)) == false
    assert rss_bytes(second) < limit

    # Again, with a caller calling all along: it never sees the recycling.
    caller =
      Task.async(fn ->
        Stream.repeatedly(fn ->
          receive do
            :stop -> :stop
          after
            0 -> SnakeBridge.call("math", "sqrt", [4.0], [], pool(name))
          end
        end)
        |> Enum.take_while(&(&1 != :stop))
      end)

    assert SnakeBridge.eval(hog, %{"n" => hog_size}, pool(name)) == {:ok, hog_size}
    assert wait_until(4_000, fn -> worker_os_pid(name) != second end), "worker #{second} was not recycled"
    assert wait_until(2_000, fn -> not running?(second) end), "worker #{second} is still running"
    for _ <- 1..5, do: assert(SnakeBridge.call!("math", "sqrt", [9.0], [], pool(name)) == 3.0)
    send(caller.pid, :stop)
    results = Task.await(caller, 5_000)

    assert results != []
    assert Enum.reject(results, &match?({:ok, 2.0}, &1)) == []
  end

  # ------------------------------------------------------------------ 2. no lost or repeated work

  # Guards two bugs found here: a request could be answered "recycled" after it
  # had run (the port program sent "drained" before the last reply), and a
  # request refused by several draining workers in a row gave up too early.
  @tag :tmp_dir
  test "recycling after max_calls under concurrent callers loses and repeats nothing", %{tmp_dir: tmp} do
    name = SnakeBridge.PoolFeaturesTest.Churn
    size = 4
    start_supervised!({Pool, name: name, size: size, max_calls: 5})
    log = Path.join(tmp, "tokens.log")

    # Each call appends its token and its worker's pid to the log, in one
    # O_APPEND write, and returns the pid.
    code = """
    import os, time
    time.sleep(0.002)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ('%s %d\\n' % (t, os.getpid())).encode())
    os.close(fd)
    pid = os.getpid()
    del os, time, fd
    """

    tokens_by_task = for t <- 1..50, do: for(c <- 1..4, do: "t#{t}c#{c}-#{System.unique_integer([:positive])}")

    results =
      tokens_by_task
      |> Enum.map(fn tokens ->
        Task.async(fn ->
          for token <- tokens, do: {token, SnakeBridge.exec(code, %{"p" => log, "t" => token}, pool(name))}
        end)
      end)
      |> Task.await_many(15_000)
      |> Enum.concat()

    all_tokens = Enum.concat(tokens_by_task)
    assert length(results) == length(all_tokens)
    assert Enum.reject(results, &match?({_, {:ok, %{"pid" => pid}}} when is_integer(pid), &1)) == []

    lines = log |> File.read!() |> String.split("\n", trim: true) |> Enum.map(&String.split/1)
    logged = Enum.map(lines, fn [token, _pid] -> token end)

    # Every call ran exactly once...
    assert Enum.frequencies(logged) |> Enum.reject(fn {_, n} -> n == 1 end) == []
    assert Enum.sort(logged) == Enum.sort(all_tokens)

    # ...and its reply came from the run that logged it.
    logged_pid = Map.new(lines, fn [token, pid] -> {token, String.to_integer(pid)} end)
    for {token, {:ok, %{"pid" => pid}}} <- results, do: assert(logged_pid[token] == pid, token)

    # Recycling did happen: more worker processes served than the pool holds.
    assert results |> Enum.map(fn {_, {:ok, %{"pid" => pid}}} -> pid end) |> Enum.uniq() |> length() > size
  end

  # ------------------------------------------------------------------ 3. per-worker environment

  @tag :tmp_dir
  test "env:, cd: and python_paths: apply to the workers only", %{tmp_dir: tmp} do
    work = Path.join(tmp, "work")
    lib = Path.join(tmp, "lib")
    File.mkdir_p!(work)
    File.mkdir_p!(lib)

    File.write!(
      Path.join(lib, "sbpf_paths_probe.py"),
      "import os\n\ndef where():\n    return os.path.realpath(__file__)\n"
    )

    value = "x#{System.unique_integer([:positive])}"
    name = SnakeBridge.PoolFeaturesTest.Env
    start_supervised!({Pool, name: name, size: 1, env: [{"MY_VAR", value}], cd: work, python_paths: [lib]})

    getenv = "__import__('os').environ.get('MY_VAR')"
    assert SnakeBridge.eval!(getenv, %{}, pool(name)) == value
    refute SnakeBridge.eval!(getenv) == value

    real_work = SnakeBridge.call!("os.path", "realpath", [work])
    assert SnakeBridge.call!("os", "getcwd", [], [], pool(name)) == real_work
    refute SnakeBridge.call!("os", "getcwd") == real_work

    assert SnakeBridge.call!("sbpf_paths_probe", "where", [], [], pool(name)) ==
             SnakeBridge.call!("os.path", "realpath", [Path.join(lib, "sbpf_paths_probe.py")])

    assert {:error, %SnakeBridge.PythonError{type: "ModuleNotFoundError"}} =
             SnakeBridge.call("sbpf_paths_probe", "where")
  end

  @tag :tmp_dir
  test "python: a venv's interpreter for the workers", %{tmp_dir: tmp} do
    venv = Path.join(tmp, "venv")
    {_, 0} = System.cmd("/usr/bin/python3", ["-m", "venv", "--system-site-packages", "--without-pip", venv])
    python = Path.join(venv, "bin/python")

    name = SnakeBridge.PoolFeaturesTest.Venv
    start_supervised!({Pool, name: name, size: 1, python: python})

    assert SnakeBridge.getattr!("sys", "prefix", pool(name)) == venv
    assert SnakeBridge.getattr!("sys", "executable", pool(name)) == python
    refute SnakeBridge.getattr!("sys", "prefix") == venv
    # SnakeBridge's own Python helpers are found there too.
    assert SnakeBridge.call!("math", "sqrt", [16.0], [], pool(name)) == 4.0
  end

  # ------------------------------------------------------------------ 4. pools in config

  test "the pool declared in config runs under the application's supervisor" do
    [declared] = for opts <- Application.get_env(:snakebridge, :pools, []), opts[:name] == @config_pool, do: opts
    assert @config_pool in supervised_pools()

    workers = Pool.workers(@config_pool)
    assert length(workers) == declared[:size]
    assert Enum.all?(workers, fn {pid, node} -> node == node() and Process.alive?(pid) end)
    assert worker_os_pid(@config_pool) != String.to_integer(System.pid())
  end

  test "a pool added to the :pools config starts when the application restarts" do
    extra = SnakeBridge.PoolFeaturesTest.FromConfig
    original = Application.get_env(:snakebridge, :pools)
    old_workers = Pool.workers(@config_pool)

    on_exit(fn ->
      Application.put_env(:snakebridge, :pools, original)
      _ = Supervisor.terminate_child(SnakeBridge.Supervisor, {SnakeBridge.Pool, extra})
      _ = Supervisor.delete_child(SnakeBridge.Supervisor, {SnakeBridge.Pool, extra})
    end)

    Application.put_env(:snakebridge, :pools, original ++ [[name: extra, size: 1]])

    ExUnit.CaptureLog.capture_log(fn ->
      :ok = Application.stop(:snakebridge)
      {:ok, _} = Application.ensure_all_started(:snakebridge)
    end)

    assert extra in supervised_pools()
    assert @config_pool in supervised_pools()
    assert [{pid, _}] = Pool.workers(extra)
    assert Process.alive?(pid)
    assert worker_os_pid(extra) != String.to_integer(System.pid())
    assert SnakeBridge.call!("math", "sqrt", [4.0]) == 2.0

    # The config pool came back with new workers.
    new_workers = Pool.workers(@config_pool)
    assert length(new_workers) == length(old_workers)
    assert MapSet.disjoint?(MapSet.new(new_workers), MapSet.new(old_workers))
  end

  # ------------------------------------------------------------------ 5. shutdown

  test "stopping a pool leaves neither the worker nor the processes its Python started" do
    name = SnakeBridge.PoolFeaturesTest.Orphans
    start_supervised!({Pool, name: name, size: 1})
    worker = worker_os_pid(name)
    child = SnakeBridge.eval!("__import__('subprocess').Popen(['sleep', '60']).pid", %{}, pool(name))

    assert running?(worker)
    assert {_, ^worker} = proc_stat(child)
    assert running?(child)

    stop_supervised!({Pool, name})

    assert wait_until(3_000, fn -> not running?(worker) end), "worker #{worker} still running"
    assert wait_until(3_000, fn -> not running?(child) end), "subprocess #{child} still running"
  end

  # Pool.workers/1 and calls raise ArgumentError (the pool's ETS table is gone,
  # its :persistent_term entry is not).
  test "a stopped pool has no workers, and calls to it return an error" do
    name = SnakeBridge.PoolFeaturesTest.Stopped
    start_supervised!({Pool, name: name, size: 1})
    assert [_] = Pool.workers(name)
    stop_supervised!({Pool, name})

    assert Pool.workers(name) == []
    assert {:error, %ArgumentError{}} = SnakeBridge.call("math", "sqrt", [4.0], [], pool(name))
  end

  # ------------------------------------------------------------------ 6. generated code

  test "generated functions with backend: {:pool, name} run in a worker (pool named by atom)" do
    beam = String.to_integer(System.pid())
    worker_pids = MapSet.new(for {pid, _} <- Pool.workers(@config_pool), do: pid)

    in_worker = PoolOsAtom.getpid!()
    assert in_worker != beam
    # the per-call option overrides the generated default
    assert PoolOsAtom.getpid!([], backend: :nif) == beam
    assert NifOs.getpid!() == beam
    assert NifOs.getpid!([], backend: {:pool, @config_pool}) != beam

    # Objects made by a generated constructor live in a worker of the pool.
    counter = PoolCollections.Counter.new!("abracadabra")
    assert %Object{owner: {:port, owner}} = counter
    assert owner in worker_pids
    in_process = SnakeBridge.call!("collections", "Counter", ["abracadabra"])
    assert PoolCollections.Counter.most_common!(counter, 2) == SnakeBridge.method!(in_process, "most_common", [2])
  end

  # `use SnakeBridge` expands the options' top level only: the alias inside
  # {:pool, Alias} stays AST, and calls fail with "no SnakeBridge pool named
  # {:__aliases__, ...} is running".
  test "generated functions with backend: {:pool, Alias} run in a worker" do
    beam = String.to_integer(System.pid())
    assert {:ok, pid} = PoolOs.getpid()
    assert pid != beam
    assert PoolOs.getpid!([], backend: :nif) == beam
  end

  # ------------------------------------------------------------------ affinity

  test "affinity: an Elixir process keeps its worker, so its objects and state meet; :none spreads" do
    sticky = SnakeBridge.PoolFeaturesTest.Sticky
    start_supervised!(Supervisor.child_spec({Pool, name: sticky, size: 2}, id: :sticky))

    # One process: every call in the same worker, so exec'd state and objects meet.
    pids = for _ <- 1..20, do: worker_os_pid(sticky)
    assert length(Enum.uniq(pids)) == 1
    SnakeBridge.exec!("import builtins\nbuiltins.sb_affinity_marker = 42", %{}, pool(sticky))
    assert SnakeBridge.eval!("sb_affinity_marker", %{}, pool(sticky)) == 42
    a = SnakeBridge.new!("fractions", "Fraction", [1, 2], [], pool(sticky))
    b = SnakeBridge.new!("fractions", "Fraction", [1, 3], [], pool(sticky))
    sum = SnakeBridge.method!(a, "__add__", [b])
    assert {SnakeBridge.getattr!(sum, "numerator"), SnakeBridge.getattr!(sum, "denominator")} == {5, 6}
    assert SnakeBridge.call!("operator", "lt", [b, a], [], pool(sticky)) == true

    # Concurrent processes are still spread over the workers (least loaded first).
    spread =
      1..8
      |> Task.async_stream(
        fn _ -> SnakeBridge.eval!("__import__('time').sleep(0.1) or __import__('os').getpid()", %{}, pool(sticky)) end,
        max_concurrency: 8
      )
      |> Enum.map(fn {:ok, pid} -> pid end)

    assert length(Enum.uniq(spread)) == 2

    # affinity: :none — one process's calls are balanced over the workers.
    loose = SnakeBridge.PoolFeaturesTest.Loose
    start_supervised!(Supervisor.child_spec({Pool, name: loose, size: 2, affinity: :none}, id: :loose))
    pids = for _ <- 1..20, do: worker_os_pid(loose)
    assert length(Enum.uniq(pids)) == 2
  end
end
