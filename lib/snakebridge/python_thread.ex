defmodule SnakeBridge.PythonThread do
  @moduledoc false
  # An Elixir process is a Python thread (docs/backends.md, "Threading model").
  #
  # In-process, a process's requests run on the OS thread its binding names (a
  # NIF resource, kept in the process dictionary: when the process is gone and
  # the binding garbage, the thread may serve another process). Through a port
  # worker, a request frame names its caller by a key (kept in the process
  # dictionary too), and the worker program runs the requests of one key on one
  # thread; the worker process tells the program to forget a key once every
  # process that used it is gone.
  #
  # A helper process that works for another (async_call, async_stream) takes
  # over that process's binding and key, so its calls run where the other's do.

  import Bitwise
  import Kernel, except: [binding: 0]

  alias SnakeBridge.Native

  @binding :"$snakebridge_thread"
  @key :"$snakebridge_thread_key"

  # Keys of different nodes must not meet in one worker program (a pool spans
  # nodes): the node's hash above a number unique within the node.
  @node_shift 36

  @doc false
  # This process's in-process binding: {:ok, binding} | {:error, reason}.
  def binding do
    case Process.get(@binding) do
      nil ->
        case Native.bind_thread() do
          {:error, _} = error ->
            error

          binding ->
            Process.put(@binding, binding)
            {:ok, binding}
        end

      binding ->
        {:ok, binding}
    end
  end

  @doc false
  # This process's key for port workers.
  def key do
    case Process.get(@key) do
      nil ->
        key = :erlang.phash2(node()) * (1 <<< @node_shift) + :erlang.unique_integer([:positive])
        Process.put(@key, key)
        key

      key ->
        key
    end
  end

  @doc false
  # What a helper process takes over (taken in the process it works for): the
  # binding, the key, and the worker of each pool the process is with
  # (SnakeBridge.Pool, affinity: :process).
  def identity do
    binding =
      case binding() do
        {:ok, b} -> b
        _not_started -> nil
      end

    workers = for {{SnakeBridge.Pool, _name}, _worker} = entry <- Process.get(), do: entry
    {binding, key(), workers}
  end

  @doc false
  # In the helper process, before its first call.
  def adopt({binding, key, workers}) do
    if binding, do: Process.put(@binding, binding)
    Process.put(@key, key)
    Enum.each(workers, fn {k, v} -> Process.put(k, v) end)
    :ok
  end
end
