defmodule SnakeBridge.Pool do
  @moduledoc """
  A pool of port workers: separate OS processes, each with its own Python
  interpreter (`priv/snakebridge_port`, `docs/protocol.md`).

  Use it when a Python library may crash or leak, holds the GIL for long, or
  when you need more parallelism than one interpreter gives:

      children = [{SnakeBridge.Pool, name: MyApp.Python, size: 4}]

      SnakeBridge.call("math", "sqrt", [2.0], [], backend: {:pool, MyApp.Python})

  ## Options

  Checked when the pool's child spec is built and in `start_link/1`, before
  any worker starts: an unknown option, a missing `:name` or a value of the
  wrong type raises `ArgumentError` naming the option and the value.

    * `:name` (atom, required) — what `backend: {:pool, name}` refers to.
    * `:size` (non-negative integer, default: `System.schedulers_online()`) —
      workers on this node; 0 only with `distributed: true` (a pool that only
      uses other nodes' workers).
    * `:python` (string or `nil`, default `nil`: the application's interpreter,
      `SnakeBridge.Config.python/0`) — the workers' interpreter, or a venv's
      `bin/python`.
    * `:python_paths` (list, default `[]`) — directories put first on the
      workers' `sys.path`: strings without `":"`, or `{app, path}` for a
      directory inside an application (`{:my_app, "priv/python"}`).
    * `:env` (list of `{name, value}` string pairs, default `[]`) — environment
      variables set for the workers.
    * `:cd` (string or `nil`, default `nil`: the BEAM's current directory) —
      the workers' working directory.

  Relative paths in `:python`, `:python_paths` and `:cd` are taken from the
  application's root, the project's directory under Mix and the release's root
  in a release (`SnakeBridge.Config.root/0`).
    * `:max_calls` (positive integer or `:infinity`, default `:infinity`) —
      recycle a worker after that many calls.
    * `:max_memory_mb` (positive integer or `:infinity`, default `:infinity`) —
      recycle a worker once its resident memory passes that many MiB (checked
      every second).
    * `:affinity` (`:process` or `:none`, default `:process`) — `:process`: an
      Elixir process keeps using the worker it was first given (least loaded at
      the time), so the objects and the state it creates meet in one
      interpreter; `:none`: every call goes to the least-loaded worker.
    * `:threads` (positive integer, default 128) — threads that may run Python
      in a worker: each calling process's requests run on a thread of its own
      there, in order, while there are fewer processes; past that, processes
      share threads. `threads: 1` runs everything on the worker's main thread,
      as a script (signal handlers, alarms, `KeyboardInterrupt`).
    * `:distributed` (boolean, default `false`) — `true`: share workers with
      pools of the same name on connected nodes.
    * `:spin_us` (non-negative integer, default 100) — microseconds a worker
      polls for the next request before it sleeps (0: sleep at once).
    * `:max_in_flight` (positive integer or `:infinity`, default 10_000) —
      calls a worker may have in flight (sent and not yet answered or
      cancelled, as this node counts them). A call that finds every worker at
      the bound fails at once with `{:error, %SnakeBridge.OverloadError{}}`
      and is not sent; the calls already in flight are not affected.

  See `docs/backends.md` for routing, recycling and distribution.

      iex> SnakeBridge.Pool.start_link(name: MyApp.Python, max_calls: "10")
      ** (ArgumentError) SnakeBridge.Pool MyApp.Python: :max_calls must be a positive integer or :infinity, got: "10"

  Objects a worker returns live in that worker, and calls on them (or with
  them as arguments) go there. A worker that dies is restarted; callers whose
  work was lost get `{:error, %SnakeBridge.WorkerCrashError{}}`, and objects
  that lived in it become invalid. A call past its `:timeout` is interrupted
  in the worker; if it does not stop within a second, the worker is killed and
  restarted.
  """
  use Supervisor

  # Option => type (SnakeBridge.Options); defaults are in the module doc and init/1.
  @options [
    name: :name,
    size: :non_neg_integer,
    python: {:or, [:string, {:in, [nil]}]},
    python_paths: :search_paths,
    env: :env,
    cd: {:or, [:string, {:in, [nil]}]},
    max_calls: {:or, [:pos_integer, {:in, [:infinity]}]},
    max_memory_mb: {:or, [:pos_integer, {:in, [:infinity]}]},
    affinity: {:in, [:process, :none]},
    threads: :pos_integer,
    distributed: :boolean,
    spin_us: :non_neg_integer,
    max_in_flight: {:or, [:pos_integer, {:in, [:infinity]}]}
  ]

  # What each worker is given (nil and :infinity mean "not set" to it).
  @worker_options [:python, :python_paths, :env, :cd, :max_calls, :max_memory_mb, :spin_us, :threads]

  def child_spec(opts) do
    opts = validate_options!(opts)
    %{id: {__MODULE__, opts[:name]}, start: {__MODULE__, :start_link, [opts]}, type: :supervisor}
  end

  @doc """
  Starts a pool (see the module doc for options).

  Raises `ArgumentError` on an unknown option or a bad value, before any
  worker starts.
  """
  def start_link(opts) do
    opts = validate_options!(opts)
    Supervisor.start_link(__MODULE__, opts, name: Module.concat(opts[:name], Supervisor))
  end

  @doc false
  # `opts` if they are valid pool options, else raises ArgumentError
  # ("SnakeBridge.Pool <name>: :<option> must be ..., got: ...").
  def validate_options!(opts) do
    case validate_options(opts) do
      :ok -> opts
      {:error, message} -> raise ArgumentError, message
    end
  end

  @doc false
  def validate_options(opts) do
    name = if Keyword.keyword?(opts), do: opts[:name]

    pool =
      if is_atom(name) and name not in [nil, true, false],
        do: "SnakeBridge.Pool #{inspect(name)}",
        else: "SnakeBridge.Pool"

    case SnakeBridge.Options.check(opts, @options) do
      {:error, {:not_keyword, _}} ->
        {:error, "SnakeBridge.Pool options must be a keyword list, got: #{inspect(opts)}"}

      {:error, {:unknown, keys}} ->
        {:error,
         "#{pool}: unknown option#{if length(keys) > 1, do: "s"} #{Enum.map_join(keys, ", ", &inspect/1)} " <>
           "(known: #{Enum.map_join(Keyword.keys(@options), ", ", &inspect/1)})"}

      {:error, {:invalid, key, value, expected}} ->
        {:error, "#{pool}: #{inspect(key)} must be #{expected}, got: #{inspect(value)}"}

      :ok ->
        cond do
          not Keyword.has_key?(opts, :name) ->
            {:error, "SnakeBridge.Pool: the :name option is required"}

          opts[:size] == 0 and opts[:distributed] != true ->
            {:error, "#{pool}: :size must be positive unless distributed: true, got: 0"}

          true ->
            :ok
        end
    end
  end

  @impl true
  def init(opts) do
    opts = absolute_paths(opts)

    # A pool's own interpreter must be the build the port program links, as
    # the application's must be for the NIF (SnakeBridge.Config.check_interpreter/1).
    with python when is_binary(python) <- Keyword.get(opts, :python),
         {:error, message} <- SnakeBridge.Config.check_interpreter(python) do
      raise ArgumentError, "SnakeBridge.Pool #{inspect(Keyword.get(opts, :name))}: " <> message
    end

    name = Keyword.fetch!(opts, :name)
    size = Keyword.get(opts, :size, System.schedulers_online())
    distributed = Keyword.get(opts, :distributed, false)
    table = :ets.new(__MODULE__, [:public, :set, read_concurrency: true, write_concurrency: true])
    loads = :atomics.new(max(size, 1), signed: true)
    rotation = :atomics.new(1, signed: false)
    group = if distributed, do: {__MODULE__, name}

    affinity = Keyword.get(opts, :affinity, :process)
    max_in_flight = Keyword.get(opts, :max_in_flight, 10_000)

    :persistent_term.put(
      {__MODULE__, name},
      %{
        name: name,
        size: size,
        table: table,
        loads: loads,
        rotation: rotation,
        group: group,
        affinity: affinity,
        max_in_flight: max_in_flight
      }
    )

    worker_opts =
      for({key, value} <- Keyword.take(opts, @worker_options), value not in [nil, :infinity], do: {key, value}) ++
        [table: table, group: group]

    children =
      for i <- 1..size//1 do
        Supervisor.child_spec({SnakeBridge.Worker, [index: i] ++ worker_opts}, id: {:worker, i})
      end

    # Crashes are expected (that is what the pool is for): restart generously.
    Supervisor.init(children, strategy: :one_for_one, max_restarts: 1_000, max_seconds: 10)
  end

  # Workers get absolute paths: a release may be started from any directory.
  defp absolute_paths(opts) do
    expand = &SnakeBridge.Config.expand/1

    opts
    |> Keyword.replace_lazy(:python, &(&1 && expand.(&1)))
    |> Keyword.replace_lazy(:cd, &(&1 && expand.(&1)))
    |> Keyword.replace_lazy(:python_paths, &Enum.map(&1, expand))
  end

  @doc """
  The pool's workers: `{pid, node}` for each live worker, those on other
  nodes included for a `distributed: true` pool.
  """
  def workers(name) do
    case running(name) do
      nil -> []
      pool -> Enum.map(candidates(pool), fn {_, pid} -> {pid, node(pid)} end)
    end
  end

  @doc false
  # The least-loaded live worker: {:ok, load_key, pid, loads}.
  # A worker being restarted (crashed or recycled) is skipped; if none is live,
  # wait a little for the supervisor to bring one back.
  def checkout(name, tries \\ 200) do
    case running(name) do
      nil ->
        {:error, %ArgumentError{message: "no SnakeBridge pool named #{inspect(name)} is running"}}

      pool ->
        case sticky(pool) do
          {key, pid} -> take(pool, key, pid)
          nil -> pick(pool, name, tries)
        end
    end
  end

  defp pick(%{rotation: rotation} = pool, name, tries) do
    case candidates(pool) do
      [] when tries > 0 ->
        Process.sleep(5)
        checkout(name, tries - 1)

      [] ->
        {:error, %SnakeBridge.WorkerCrashError{reason: :no_live_worker}}

      live ->
        # Ties (callers arriving together all see the same loads) are broken
        # by a rotating start, and the load is counted here, at once.
        start = rem(:atomics.add_get(rotation, 1, 1), length(live))
        {a, b} = Enum.split(live, start)
        {key, pid} = Enum.min_by(b ++ a, fn {key, _} -> load(pool, key) end)

        with {:ok, _, _, _} = ok <- take(pool, key, pid) do
          if pool.affinity == :process, do: Process.put({__MODULE__, name}, {key, pid})
          ok
        end
    end
  end

  # Counts the call against the worker's load, within the pool's bound.
  defp take(%{max_in_flight: max} = pool, key, pid) do
    if add_load(pool, key, 1) > max do
      add_load(pool, key, -1)
      {:error, %SnakeBridge.OverloadError{pool: pool.name, worker: pid, max_in_flight: max}}
    else
      {:ok, key, pid, pool}
    end
  end

  # With process affinity, the worker this process used last, while it is
  # still in the pool (not crashed, not draining to be recycled).
  defp sticky(%{affinity: :process, name: name} = pool) do
    case Process.get({__MODULE__, name}) do
      {i, pid} = choice when is_integer(i) ->
        if :ets.lookup(pool.table, i) == [{i, pid}] and SnakeBridge.Workers.alive?(pid), do: choice

      {{:remote, pid}, pid} = choice ->
        if pid in :pg.get_members(SnakeBridge.PG, pool.group), do: choice

      nil ->
        nil
    end
  end

  defp sticky(_pool), do: nil

  # The pool's shared state, or nil if no pool of that name runs (a stopped
  # pool leaves its entry behind, but its table is gone).
  defp running(name) do
    case :persistent_term.get({__MODULE__, name}, nil) do
      %{table: table} = pool -> if :ets.info(table, :size) != :undefined, do: pool
      nil -> nil
    end
  end

  @doc false
  # A local worker that reached its :max_calls: taken out of the pool's table
  # at once, so that no further call is sent to it while it drains (the worker
  # does the same when it starts to drain; its replacement takes its place).
  def retire(%{table: table}, index, pid) when is_integer(index), do: :ets.delete_object(table, {index, pid})
  def retire(_pool, _key, _pid), do: :ok

  @doc false
  def checkin(nil, _pool), do: :ok

  def checkin(key, pool) do
    add_load(pool, key, -1)
    :ok
  end

  # Local workers are counted in atomics by index; workers on other nodes by
  # pid in the pool's table (this node's view of their load: the calls it sent).
  defp candidates(%{size: size, table: table, group: group}) do
    local = for i <- 1..size//1, [{^i, pid}] <- [:ets.lookup(table, i)], SnakeBridge.Workers.alive?(pid), do: {i, pid}

    remote =
      if group do
        for pid <- :pg.get_members(SnakeBridge.PG, group), node(pid) != node(), do: {{:remote, pid}, pid}
      else
        []
      end

    local ++ remote
  end

  defp load(%{loads: loads}, i) when is_integer(i), do: :atomics.get(loads, i)

  defp load(%{table: table}, key) do
    case :ets.lookup(table, key) do
      [{_, n}] -> n
      [] -> 0
    end
  end

  # The load after the change.
  defp add_load(%{loads: loads}, i, n) when is_integer(i), do: :atomics.add_get(loads, i, n)

  defp add_load(%{table: table}, key, n) do
    # Entries of remote workers go when their count is back to 0 (workers come and go).
    load = :ets.update_counter(table, key, n, {key, 0})
    if load == 0, do: :ets.delete_object(table, {key, 0})
    load
  end
end
