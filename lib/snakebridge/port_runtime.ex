defmodule SnakeBridge.PortRuntime do
  @moduledoc false
  # Runs one request on a port worker and waits for its reply, forwarding
  # Python's output as it arrives (the same messages as the in-process pool).

  alias SnakeBridge.{Msgpack, Object, Pool, TimeoutError, Worker, WorkerCrashError}

  # The worker owning the request's target object, if it is a port object.
  def owner(request) when is_tuple(request) and tuple_size(request) >= 2 do
    case elem(request, 1) do
      %Object{owner: {:port, pid}} -> pid
      _ -> nil
    end
  end

  def owner(_request), do: nil

  # Retries of requests that did not run (their worker was being recycled):
  # under heavy recycling a request can meet several draining workers in a row.
  @retries 20

  def run(request, mode, timeout, backend, retries \\ @retries) do
    owner = owner(request)

    case attempt(request, mode, timeout, backend) do
      # The object's worker is gone (on another node, only the monitor could tell).
      {:error, %WorkerCrashError{reason: :noproc}} when owner != nil ->
        {:error, %WorkerCrashError{reason: :object_owner_gone, worker: owner}}

      # The worker was stopping to be recycled, or already gone, when the request
      # reached it: the request never ran, so it is safe to send it to another.
      {:error, %WorkerCrashError{reason: reason}}
      when reason in [{:shutdown, :recycled}, :noproc] and retries > 0 and backend != :nif ->
        run(request, mode, timeout, backend, retries - 1)

      other ->
        other
    end
  end

  defp attempt(request, mode, timeout, backend) do
    with {:ok, load_key, worker, pool} <- pick(request, backend),
         {:ok, count, body} <- encode(request, mode, worker) do
      ref = make_ref()
      mon = Process.monitor(worker)

      try do
        case submit(worker, ref, count, body) do
          :ok -> await(worker, ref, mon, timeout, request)
          error -> error
        end
      after
        Process.demonitor(mon, [:flush])
        Pool.checkin(load_key, pool)
      end
    end
  end

  # A worker on this node: write the frame into its port here, then tell the
  # worker whose reply to expect (the worker keeps a reply that comes first
  # until it knows). A worker on another node writes the frame itself.
  defp submit(worker, ref, count, body) when node(worker) == node() do
    case SnakeBridge.Workers.lookup(worker) do
      {port, ids} ->
        id = :atomics.add_get(ids, 1, 1)

        try do
          Port.command(port, Worker.frame(id, count, body))
          send(worker, {:pending, id, self(), ref})
          :ok
        rescue
          # The port closed: the worker is stopping and the request never ran.
          ArgumentError -> {:error, %WorkerCrashError{reason: {:shutdown, :recycled}, worker: worker}}
        end

      nil ->
        {:error, %WorkerCrashError{reason: {:shutdown, :recycled}, worker: worker}}
    end
  end

  defp submit(worker, ref, count, body) do
    send(worker, {:request, self(), ref, count, IO.iodata_to_binary(body)})
    :ok
  end

  defp pick(request, backend) do
    case {owner(request), backend} do
      {nil, {:worker, pid}} ->
        {:ok, nil, pid, nil}

      # (A worker on a connected node is not asked: the monitor says if it is gone.)
      {pid, _} when is_pid(pid) ->
        if if(node(pid) == node(), do: Process.alive?(pid), else: node(pid) in Node.list()),
          do: {:ok, nil, pid, nil},
          else: {:error, %WorkerCrashError{reason: :object_owner_gone, worker: pid}}

      {nil, {:pool, name}} ->
        Pool.checkout(name)
    end
  end

  # The request's elements after the id, each encoded; objects become the
  # handles they are in `worker` (an object of another worker cannot be sent).
  defp encode(request, mode, worker) do
    handle_id = fn
      %Object{owner: {:port, ^worker}, ref: r} -> {:ok, SnakeBridge.Native.port_handle_id(r)}
      _ -> :error
    end

    elements = elements(request, Atom.to_string(mode))

    Enum.reduce_while(elements, {:ok, 0, []}, fn element, {:ok, n, acc} ->
      case Msgpack.encode(element, handle_id: handle_id) do
        {:ok, iodata} -> {:cont, {:ok, n + 1, [acc | iodata]}}
        {:error, {:unconvertible, reason, term, path}} -> {:halt, {:error, {:unconvertible, reason, term, path}}}
      end
    end)
  end

  defp elements(request, mode) do
    case request do
      {:call, target, name, args, kwargs} -> ["call", target(target), name(name), args, kwargs_map(kwargs), mode]
      {:getattr, target, name} -> ["getattr", target(target), to_string(name), mode]
      {:setattr, target, name, value} -> ["setattr", target(target), to_string(name), value]
      {:eval, code, globals} -> ["eval", code, globals, mode]
      {:exec, code, globals} -> ["exec", code, globals]
      {:describe, module, depth, private} -> ["describe", module, depth, private]
      {:next, it, max} -> ["next", it, max, mode]
      {:close, it} -> ["close", it]
      {:to_elixir, obj} -> ["to_elixir", obj]
      {:repr, obj, max} -> ["repr", obj, max]
      {:stats} -> ["stats"]
    end
  end

  defp target(%Object{} = o), do: o
  defp target(name), do: to_string(name)

  defp name(nil), do: nil
  defp name(name), do: to_string(name)

  defp kwargs_map(kwargs), do: Map.new(kwargs, fn {k, v} -> {to_string(k), v} end)

  defp decode(frame, request, worker) do
    handle =
      if node(worker) == node() do
        fn id, type -> %Object{ref: SnakeBridge.Native.port_handle(worker, id), type: type, owner: {:port, worker}} end
      else
        relay = Process.whereis(SnakeBridge.Workers)

        fn id, type ->
          %Object{ref: SnakeBridge.Native.port_handle(relay, id, worker), type: type, owner: {:port, worker}}
        end
      end

    case SnakeBridge.Msgpack.decode(frame, handle: handle) do
      {:ok, [_id, status, value]} -> shape(request, reply(status, value))
      {:error, reason} -> {:error, {:internal, "undecodable reply from a port worker: #{inspect(reason)}"}}
    end
  end

  # A batch of an iterator, as the NIF returns it: {items, :cont | :done | {:error, e}}.
  defp shape({:next, _, _}, {:ok, [items, "cont"]}), do: {:ok, {items, :cont}}
  defp shape({:next, _, _}, {:ok, [items, "done"]}), do: {:ok, {items, :done}}
  defp shape({:next, _, _}, {:ok, [items, %{} = error]}), do: {:ok, {items, reply("error", error)}}
  defp shape(_request, reply), do: reply

  # Replies become what the NIF returns, so the runtime treats both alike.
  defp reply("ok", value), do: {:ok, value}

  defp reply("error", %{"kind" => "python"} = e),
    do: {:error, {:python, e["type"], e["python_type"], e["message"], e["traceback"]}}

  defp reply("error", %{"kind" => "conversion"} = e), do: {:error, {:conversion, e["python_type"], e["repr"]}}

  # The worker was draining to be recycled: the request did not run.
  defp reply("error", %{"kind" => "stopping"}), do: {:error, %WorkerCrashError{reason: {:shutdown, :recycled}}}

  defp reply("error", %{"kind" => "unknown_handle", "id" => id}),
    do: {:error, {:internal, "the worker no longer holds Python object #{id}"}}

  defp reply("error", %{"kind" => "unconvertible"} = e),
    do: {:error, {:unconvertible, String.to_existing_atom(e["reason"]), e["message"], []}}

  defp reply("error", %{"kind" => kind} = e), do: {:error, {:internal, "#{kind}: #{e["message"]}"}}

  defp await(worker, ref, mon, timeout, request) do
    receive do
      {:snakebridge_output, ^ref, stream, text} ->
        SnakeBridge.Runtime.write_output_text(stream, text)
        await(worker, ref, mon, timeout, request)

      {^ref, {:frame, frame, ^worker}} ->
        decode(frame, request, worker)

      {^ref, reply} ->
        reply

      {:DOWN, ^mon, :process, _, reason} ->
        {:error, %WorkerCrashError{reason: reason, worker: worker}}
    after
      timeout ->
        send(worker, {:cancel, ref})
        {:error, %TimeoutError{timeout: timeout, operation: elem(request, 0)}}
    end
  end
end
