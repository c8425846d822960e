defmodule SnakeBridge.Pool do
  @moduledoc """
  A pool of port workers: separate OS processes, each with its own Python
  interpreter (`priv/snakebridge_port`, `docs/protocol.md`).

  Use it when a Python library may crash or leak, holds the GIL for long, or
  when you need more parallelism than one interpreter gives:

      children = [{SnakeBridge.Pool, name: MyApp.Python, size: 4}]

      SnakeBridge.call("math", "sqrt", [2.0], [], backend: {:pool, MyApp.Python})

  Options (see `docs/backends.md` for more):

    * `:name` (required) — what `backend: {:pool, name}` refers to.
    * `:size` — workers on this node (default: the number of schedulers).
    * `:python`, `:python_paths`, `:env`, `:cd` — the workers' interpreter (or
      a venv's python), extra `sys.path` entries, environment variables and
      working directory.
    * `:max_calls`, `:max_memory_mb` — recycle a worker after that many calls,
      or once its resident memory passes that size.
    * `:affinity` — `:process` (default): an Elixir process keeps using the
      worker it was first given (least loaded at the time), so the objects
      and the state it creates meet in one interpreter; `:none`: every call
      goes to the least-loaded worker.
    * `:threads` — threads that may run Python in a worker (default 128);
      `threads: 1` runs everything on one thread (sqlite3 connections and
      other thread-bound objects).
    * `:distributed` — `true`: share workers with pools of the same name on
      connected nodes.
    * `:spin_us` — how long a worker polls for the next request before it
      sleeps (default 100).

  Objects a worker returns live in that worker, and calls on them (or with
  them as arguments) go there. A worker that dies is restarted; callers whose
  work was lost get `{:error, %SnakeBridge.WorkerCrashError{}}`, and objects
  that lived in it become invalid. A call past its `:timeout` is interrupted
  in the worker; if it does not stop within a second, the worker is killed and
  restarted.
  """
  use Supervisor

  def child_spec(opts) do
    %{id: {__MODULE__, Keyword.fetch!(opts, :name)}, start: {__MODULE__, :start_link, [opts]}, type: :supervisor}
  end

  @doc "Starts a pool (see the module doc for options)."
  def start_link(opts) do
    name = Keyword.fetch!(opts, :name)
    Supervisor.start_link(__MODULE__, opts, name: Module.concat(name, Supervisor))
  end

  @impl true
  def init(opts) do
    name = Keyword.fetch!(opts, :name)
    size = Keyword.get(opts, :size, System.schedulers_online())
    distributed = Keyword.get(opts, :distributed, false)
    table = :ets.new(__MODULE__, [:public, :set, read_concurrency: true, write_concurrency: true])
    loads = :atomics.new(max(size, 1), signed: true)
    rotation = :atomics.new(1, signed: false)
    group = if distributed, do: {__MODULE__, name}

    affinity = Keyword.get(opts, :affinity, :process)

    unless affinity in [:process, :none],
      do: raise(ArgumentError, "SnakeBridge.Pool :affinity must be :process or :none, got: #{inspect(affinity)}")

    :persistent_term.put(
      {__MODULE__, name},
      %{name: name, size: size, table: table, loads: loads, rotation: rotation, group: group, affinity: affinity}
    )

    worker_opts =
      Keyword.take(opts, [:python, :python_paths, :env, :cd, :max_calls, :max_memory_mb, :spin_us, :threads]) ++
        [table: table, group: group]

    children =
      for i <- 1..size//1 do
        Supervisor.child_spec({SnakeBridge.Worker, [index: i] ++ worker_opts}, id: {:worker, i})
      end

    # Crashes are expected (that is what the pool is for): restart generously.
    Supervisor.init(children, strategy: :one_for_one, max_restarts: 1_000, max_seconds: 10)
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
          {key, pid} ->
            add_load(pool, key, 1)
            {:ok, key, pid, pool}

          nil ->
            pick(pool, name, tries)
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
        add_load(pool, key, 1)
        if pool.affinity == :process, do: Process.put({__MODULE__, name}, {key, pid})
        {:ok, key, pid, pool}
    end
  end

  # With process affinity, the worker this process used last, while it is
  # still in the pool (not crashed, not draining to be recycled).
  defp sticky(%{affinity: :process, name: name} = pool) do
    case Process.get({__MODULE__, name}) do
      {i, pid} = choice when is_integer(i) ->
        if :ets.lookup(pool.table, i) == [{i, pid}] and Process.alive?(pid), do: choice

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
  def checkin(nil, _pool), do: :ok
  def checkin(key, pool), do: add_load(pool, key, -1)

  # Local workers are counted in atomics by index; workers on other nodes by
  # pid in the pool's table (this node's view of their load: the calls it sent).
  defp candidates(%{size: size, table: table, group: group}) do
    local = for i <- 1..size//1, [{^i, pid}] <- [:ets.lookup(table, i)], Process.alive?(pid), do: {i, pid}

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

  defp add_load(%{loads: loads}, i, n) when is_integer(i), do: :atomics.add(loads, i, n)

  defp add_load(%{table: table}, key, n) do
    # Entries of remote workers go when their count is back to 0 (workers come and go).
    if :ets.update_counter(table, key, n, {key, 0}) == 0, do: :ets.delete_object(table, {key, 0})
  end
end
