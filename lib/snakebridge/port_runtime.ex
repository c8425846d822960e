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

  # `cancel_tag`: SnakeBridge.cancel/1 (async calls and streams) sends
  # {:snakebridge_cancel, tag} to stop the request.
  def run(request, mode, timeout, backend, cancel_tag \\ nil, retries \\ @retries) do
    owner = owner(request)

    case attempt(request, mode, timeout, backend, cancel_tag) do
      # The object's worker is gone (on another node, only the monitor could tell).
      {:error, %WorkerCrashError{reason: :noproc}} when owner != nil ->
        {:error, %WorkerCrashError{reason: :object_owner_gone, worker: owner}}

      # The worker was stopping to be recycled, or already gone, when the request
      # reached it: the request never ran, so it is safe to send it to another.
      {:error, %WorkerCrashError{reason: reason}}
      when reason in [{:shutdown, :recycled}, :noproc] and retries > 0 and backend != :nif ->
        run(request, mode, timeout, backend, cancel_tag, retries - 1)

      other ->
        other
    end
  end

  defp attempt(request, mode, timeout, backend, cancel_tag) do
    # Encoded first: the objects in the request say which worker must run it.
    with {:ok, count, body, owner} <- encode(request, mode),
         {:ok, load_key, worker, pool} <- pick(owner, backend) do
      ref = make_ref()
      mon = Process.monitor(worker)

      try do
        case submit(worker, ref, count, body) do
          :ok -> await(worker, ref, mon, timeout, request, cancel_tag)
          error -> error
        end
      after
        Process.demonitor(mon, [:flush])
        Pool.checkin(load_key, pool)
      end
    end
  end

  # A worker on this node: tell it whose reply to expect, then write the frame
  # into its port here (a local message is queued before the port's reply can
  # be). A worker on another node writes the frame itself.
  defp submit(worker, ref, count, body) when node(worker) == node() do
    case SnakeBridge.Workers.lookup(worker) do
      {port, ids} ->
        id = :atomics.add_get(ids, 1, 1)
        send(worker, {:pending, id, self(), ref})

        try do
          Port.command(port, Worker.frame(id, count, body))
          :ok
        rescue
          # The port closed: the worker is stopping and the request never ran.
          # Wait for it to go, so its crash notice for `ref` is not left behind.
          ArgumentError ->
            receive do
              {:DOWN, _, :process, ^worker, _} -> :ok
            after
              1_000 -> :ok
            end

            receive do
              {^ref, _} -> :ok
            after
              0 -> :ok
            end

            {:error, %WorkerCrashError{reason: {:shutdown, :recycled}, worker: worker}}
        end

      nil ->
        {:error, %WorkerCrashError{reason: {:shutdown, :recycled}, worker: worker}}
    end
  end

  defp submit(worker, ref, count, body) do
    send(worker, {:request, self(), ref, count, IO.iodata_to_binary(body)})
    :ok
  end

  defp pick(nil, {:worker, pid}), do: {:ok, nil, pid, nil}
  defp pick(nil, {:pool, name}), do: Pool.checkout(name)
  defp pick(nil, :nif), do: {:error, %ArgumentError{message: "no port worker holds an object of this request"}}

  # (A worker on a connected node is not asked: the monitor says if it is gone.)
  defp pick(pid, _backend) do
    if if(node(pid) == node(), do: Process.alive?(pid), else: node(pid) in Node.list()),
      do: {:ok, nil, pid, nil},
      else: {:error, %WorkerCrashError{reason: :object_owner_gone, worker: pid}}
  end

  # The request's elements after the id, each encoded, and the worker that owns
  # the objects in it (nil if none). Objects of two workers cannot meet.
  defp encode(request, mode) do
    handle_id = fn
      %Object{owner: {:port, pid}, ref: r} ->
        case Process.get(:snakebridge_owner) do
          nil ->
            Process.put(:snakebridge_owner, pid)
            {:ok, SnakeBridge.Native.port_handle_id(r)}

          ^pid ->
            {:ok, SnakeBridge.Native.port_handle_id(r)}

          _other ->
            :error
        end

      _ ->
        :error
    end

    elements = elements(request, Atom.to_string(mode))
    Process.delete(:snakebridge_owner)

    result =
      Enum.reduce_while(elements, {:ok, 0, []}, fn element, {:ok, n, acc} ->
        case Msgpack.encode(element, handle_id: handle_id) do
          {:ok, iodata} ->
            {:cont, {:ok, n + 1, [acc | iodata]}}

          {:error, {:unconvertible, reason, term, path}} ->
            {:halt, {:error, unconvertible(reason, term, path, request)}}
        end
      end)

    owner = Process.delete(:snakebridge_owner)

    case result do
      {:ok, n, body} -> {:ok, n, body, owner}
      error -> error
    end
  end

  # Keyword arguments travel as a map with string keys; errors name them as given.
  defp unconvertible(reason, term, [key | rest], {:call, _, _, _, kwargs}) when is_binary(key) and is_list(kwargs) do
    original = Enum.find_value(kwargs, key, fn {k, _} -> if to_string(k) == key, do: k end)
    {:unconvertible, reason, term, [original | rest]}
  end

  defp unconvertible(reason, term, path, _request), do: {:unconvertible, reason, term, path}

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

  defp await(worker, ref, mon, timeout, request, cancel_tag) do
    receive do
      {:snakebridge_output, ^ref, stream, text} ->
        SnakeBridge.Runtime.write_output_text(stream, text)
        await(worker, ref, mon, timeout, request, cancel_tag)

      {^ref, {:frame, frame, ^worker}} ->
        decode(frame, request, worker)

      {^ref, reply} ->
        reply

      {:DOWN, ^mon, :process, _, reason} ->
        {:error, %WorkerCrashError{reason: reason, worker: worker}}

      {:snakebridge_cancel, ^cancel_tag} when cancel_tag != nil ->
        _ = stop(worker, ref, mon, request)
        {:error, :cancelled}
    after
      timeout ->
        case stop(worker, ref, mon, request) do
          :cancelled -> {:error, %TimeoutError{timeout: timeout, operation: elem(request, 0)}}
          # Finished just as the deadline passed.
          {:replied, reply} -> reply
        end
    end
  end

  # Asks the worker to interrupt the request and waits for its acknowledgement:
  # the worker handles messages in order, so a reply it forwarded before the
  # cancel arrives before the acknowledgement, and none comes after.
  defp stop(worker, ref, mon, request) do
    send(worker, {:cancel, ref, self()})
    stopped(worker, ref, mon, request, :cancelled)
  end

  defp stopped(worker, ref, mon, request, result) do
    receive do
      {:snakebridge_output, ^ref, stream, text} ->
        SnakeBridge.Runtime.write_output_text(stream, text)
        stopped(worker, ref, mon, request, result)

      {^ref, :cancelled} ->
        result

      {^ref, {:frame, frame, ^worker}} ->
        stopped(worker, ref, mon, request, {:replied, decode(frame, request, worker)})

      {^ref, reply} ->
        stopped(worker, ref, mon, request, {:replied, reply})

      {:DOWN, ^mon, :process, _, _} ->
        result
    end
  end
end
