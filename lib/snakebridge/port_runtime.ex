defmodule SnakeBridge.PortRuntime do
  @moduledoc false
  # Runs one request on a port worker and waits for its reply, forwarding
  # Python's output as it arrives (the same messages as the in-process pool).

  alias SnakeBridge.{Object, Pool, TimeoutError, WorkerCrashError}

  # The worker owning the request's target object, if it is a port object.
  def owner(request) when is_tuple(request) and tuple_size(request) >= 2 do
    case elem(request, 1) do
      %Object{owner: {:port, pid}} -> pid
      _ -> nil
    end
  end

  def owner(_request), do: nil

  def run(request, mode, timeout, backend, retries \\ 2) do
    case attempt(request, mode, timeout, backend) do
      # The worker stopped to be recycled before it read the request: it never
      # ran, so it is safe to send it to another.
      {:error, %WorkerCrashError{reason: {:shutdown, :recycled}}} when retries > 0 and backend != :nif ->
        run(request, mode, timeout, backend, retries - 1)

      other ->
        other
    end
  end

  defp attempt(request, mode, timeout, backend) do
    with {:ok, index, worker, loads} <- pick(request, backend) do
      ref = make_ref()
      mon = Process.monitor(worker)
      send(worker, {:request, self(), ref, request, mode})

      try do
        await(worker, ref, mon, timeout, request)
      after
        Process.demonitor(mon, [:flush])
        if loads, do: :atomics.sub(loads, index, 1)
      end
    end
  end

  defp pick(request, backend) do
    case {owner(request), backend} do
      {nil, {:worker, pid}} ->
        {:ok, nil, pid, nil}

      {pid, _} when is_pid(pid) ->
        if Process.alive?(pid),
          do: {:ok, nil, pid, nil},
          else: {:error, %WorkerCrashError{reason: :object_owner_gone, worker: pid}}

      {nil, {:pool, name}} ->
        case Pool.checkout(name) do
          {:ok, index, pid, loads} -> {:ok, index, pid, loads}
          {:error, e} -> {:error, e}
        end
    end
  end

  defp decode(frame, request, worker) do
    handle = fn id, type ->
      %Object{ref: SnakeBridge.Native.port_handle(worker, id), type: type, owner: {:port, worker}}
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

      {^ref, {:frame, frame, request, worker}} ->
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
