# A pool for the length of a benchmark, shared by the bench scripts (Code.require_file it).
defmodule BenchPools do
  @moduledoc false

  # Starts a pool of `size` workers named `name` (or with the pool options
  # `opts`, a keyword list), waits until it answers, runs
  # `fun.({:pool, name})` and stops the pool.
  def with_pool(name, size, fun) when is_integer(size), do: with_pool(name, [size: size], fun)

  def with_pool(name, opts, fun) when is_list(opts) do
    {:ok, sup} = SnakeBridge.Pool.start_link([name: name] ++ opts)
    ready(name)

    try do
      fun.({:pool, name})
    after
      Process.unlink(sup)
      ref = Process.monitor(sup)
      Process.exit(sup, :shutdown)
      receive do: ({:DOWN, ^ref, _, _, _} -> :ok)
    end
  end

  defp ready(name) do
    case SnakeBridge.call("math", "sqrt", [2.0], [], backend: {:pool, name}) do
      {:ok, _} -> :ok
      _ -> Process.sleep(10) && ready(name)
    end
  end

  # The transport alone, for a local worker (SnakeBridge.Backend.PortWorker's
  # channel without the layers above it): {ids, channel, body}, the body a
  # `math.sqrt(2.0)` request's elements encoded once for this process (which
  # the worker learns of as a thread user).
  def raw_sqrt(worker) do
    {_port, ids, chan} = SnakeBridge.Workers.lookup(worker)
    key = SnakeBridge.PythonThread.key()
    send(worker, {:thread_user, self(), key})
    {ids, chan, request_body(key)}
  end

  def request_body(key), do: SnakeBridge.Msgpack.encode_each(["call", key, "math", "sqrt", [2.0], [], "auto"], nil)

  # One request of `body` through the channel: registered, written and its
  # reply polled for `poll_us`, else awaited as a message; the reply frame.
  def round_trip(ids, chan, body, ref, poll_us) do
    id = :atomics.add_get(ids, 1, 1)
    frame = SnakeBridge.Worker.outgoing(SnakeBridge.Worker.frame(id, 7, body))

    case SnakeBridge.Native.channel_call(chan, id, ref, frame, poll_us) do
      {:frame, frame} -> frame
      {:frame, frame, :sent} -> frame
      _ -> receive do: ({^ref, {:frame, frame, _}} -> frame)
    end
  end

  # The pool's workers on this node.
  def workers({:pool, name}), do: for({w, _} <- SnakeBridge.Pool.workers(name), do: w)

  # A local worker's program, as an OS pid.
  def os_pid(worker), do: :sys.get_state(worker).os_pid

  # The CPU time (user + system) an OS process has used so far, in
  # microseconds, from /proc/<pid>/stat (Linux only; clock ticks of 10 ms).
  def cpu_us(os_pid) do
    [_, rest] = "/proc/#{os_pid}/stat" |> File.read!() |> String.split(") ", parts: 2)
    fields = String.split(rest)
    ticks = String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
    ticks * 1_000_000 / 100
  end
end
