defmodule SnakeBridge.Pool do
  @moduledoc """
  A pool of port workers: separate OS processes, each with its own Python
  interpreter (`priv/snakebridge_port`, `docs/protocol.md`).

  Use it when a Python library may crash or leak, holds the GIL for long, or
  when you need more parallelism than one interpreter gives:

      children = [{SnakeBridge.Pool, name: MyApp.Python, size: 4}]

      SnakeBridge.call("math", "sqrt", [2.0], [], backend: {:pool, MyApp.Python})

  Options: `:name` (required), `:size` (default: the number of schedulers),
  `:python` (interpreter or venv python for the workers), `:python_paths`,
  `:env` (extra environment variables), `:cd` (working directory),
  `:max_calls` (recycle a worker after this many calls).

  Calls go to the least-loaded worker. Objects a worker returns live in that
  worker, and calls on them go there. A worker that dies is restarted; callers
  whose work was lost get `{:error, %SnakeBridge.WorkerCrashError{}}`, and
  objects that lived in it become invalid. A call past its `:timeout` is
  interrupted in the worker; if it does not stop within a second, the worker is
  killed and restarted.
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
    table = :ets.new(__MODULE__, [:public, :set, read_concurrency: true])
    loads = :atomics.new(size, signed: true)
    rotation = :atomics.new(1, signed: false)
    :persistent_term.put({__MODULE__, name}, %{size: size, table: table, loads: loads, rotation: rotation})

    worker_opts = Keyword.take(opts, [:python, :python_paths, :env, :cd, :max_calls])

    children =
      for i <- 1..size do
        register = fn pid -> :ets.insert(table, {i, pid}) end
        Supervisor.child_spec({SnakeBridge.Worker, [index: i, register: register] ++ worker_opts}, id: {:worker, i})
      end

    # Crashes are expected (that is what the pool is for): restart generously.
    Supervisor.init(children, strategy: :one_for_one, max_restarts: 1_000, max_seconds: 10)
  end

  @doc false
  # The least-loaded live worker: {index, pid, loads}.
  # A worker being restarted (crashed or recycled) is skipped; if none is live,
  # wait a little for the supervisor to bring one back.
  def checkout(name, tries \\ 200) do
    case :persistent_term.get({__MODULE__, name}, nil) do
      nil ->
        {:error, %ArgumentError{message: "no SnakeBridge pool named #{inspect(name)} is running"}}

      %{size: size, table: table, loads: loads, rotation: rotation} ->
        live = for i <- 1..size, [{^i, pid}] <- [:ets.lookup(table, i)], Process.alive?(pid), do: {i, pid}

        case live do
          [] when tries > 0 ->
            Process.sleep(5)
            checkout(name, tries - 1)

          [] ->
            {:error, %SnakeBridge.WorkerCrashError{reason: :no_live_worker}}

          _ ->
            # Ties (callers arriving together all see the same loads) are broken
            # by a rotating start, and the load is counted here, at once.
            start = rem(:atomics.add_get(rotation, 1, 1), length(live))
            {a, b} = Enum.split(live, start)
            {index, pid} = Enum.min_by(b ++ a, fn {i, _} -> :atomics.get(loads, i) end)
            :atomics.add(loads, index, 1)
            {:ok, index, pid, loads}
        end
    end
  end
end
