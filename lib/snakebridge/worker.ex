defmodule SnakeBridge.Worker do
  @moduledoc false
  # One port worker: an OS process running priv/snakebridge_port (its own
  # interpreter), owned by this GenServer. Callers send requests here and wait
  # for the reply themselves (SnakeBridge.PortRuntime); the worker encodes them
  # as frames, matches replies by id, forwards Python's output to the caller that
  # caused it, and releases handles the BEAM garbage-collected. If the OS process
  # dies, every caller still waiting gets a WorkerCrashError and the GenServer
  # stops (its supervisor starts a fresh one).
  use GenServer

  alias SnakeBridge.{Msgpack, Object, WorkerCrashError}

  # After a cancel, how long a request may take to wind down before the process is killed.
  @grace_ms 1_000

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    exe = Path.join(to_string(:code.priv_dir(:snakebridge)), "snakebridge_port")
    python = Keyword.get(opts, :python) || SnakeBridge.Config.python()
    paths = Keyword.get(opts, :python_paths, []) ++ [Path.join(to_string(:code.priv_dir(:snakebridge)), "python")]

    env =
      [{~c"SNAKEBRIDGE_PYTHON", to_charlist(python)}, {~c"SNAKEBRIDGE_PATHS", to_charlist(Enum.join(paths, ":"))}] ++
        Enum.map(Keyword.get(opts, :env, []), fn {k, v} -> {to_charlist(k), to_charlist(v)} end)

    port_opts =
      [:binary, :nouse_stdio, {:packet, 4}, :exit_status, {:env, env}] ++
        if(dir = opts[:cd], do: [{:cd, to_charlist(dir)}], else: [])

    port = Port.open({:spawn_executable, exe}, port_opts)
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    if register = opts[:register], do: register.(self())

    {:ok,
     %{
       port: port,
       os_pid: os_pid,
       next_id: 1,
       pending: %{},
       by_ref: %{},
       releases: [],
       calls: 0,
       max_calls: Keyword.get(opts, :max_calls, :infinity),
       index: opts[:index]
     }}
  end

  @impl true
  def handle_info({:request, from, ref, request, mode}, state) do
    id = state.next_id
    me = self()

    handle_id = fn
      %Object{owner: {:port, ^me}, ref: r} -> {:ok, SnakeBridge.Native.port_handle_id(r)}
      _ -> :error
    end

    case encode(id, request, mode, handle_id) do
      {:ok, frame} ->
        Port.command(state.port, frame)
        pending = Map.put(state.pending, id, {from, ref, request})

        {:noreply,
         %{state | next_id: id + 1, pending: pending, by_ref: Map.put(state.by_ref, ref, id), calls: state.calls + 1}}

      {:error, reason} ->
        send(from, {ref, {:error, reason}})
        {:noreply, state}
    end
  end

  def handle_info({:cancel, ref}, state) do
    case Map.fetch(state.by_ref, ref) do
      {:ok, id} ->
        Port.command(state.port, Msgpack.encode!([0, "cancel", id]))
        Process.send_after(self(), {:grace_over, id}, @grace_ms)
        # The caller has given up: its reply, when it comes, is dropped.
        {:noreply, %{state | pending: Map.update!(state.pending, id, fn {_, r, req} -> {nil, r, req} end)}}

      :error ->
        {:noreply, state}
    end
  end

  def handle_info({:grace_over, id}, state) do
    if Map.has_key?(state.pending, id) do
      # Still running after the interrupt: C code that does not return. Kill it.
      System.cmd("kill", ["-9", Integer.to_string(state.os_pid)])
    end

    {:noreply, state}
  end

  def handle_info({:snakebridge_release, id}, state) do
    # Batched: one frame for the handles collected since the last one.
    if state.releases == [], do: send(self(), :flush_releases)
    {:noreply, %{state | releases: [id | state.releases]}}
  end

  def handle_info(:flush_releases, state) do
    if state.releases != [], do: Port.command(state.port, Msgpack.encode!([0, "release", state.releases]))
    {:noreply, %{state | releases: []}}
  end

  # Replies are forwarded undecoded: the caller decodes them, so decoding work is
  # spread over the callers and the objects' resources live only in the caller's
  # heap (a resource decoded here would stay referenced until this process next
  # collects garbage, delaying its release). Only the id is read here.
  def handle_info({port, {:data, frame}}, %{port: port} = state) do
    case reply_id(frame) do
      id when is_integer(id) and id > 0 ->
        {entry, pending} = Map.pop(state.pending, id)

        case entry do
          {from, ref, request} when is_pid(from) ->
            send(from, {ref, {:frame, frame, request, self()}})
            {:noreply, %{state | pending: pending, by_ref: Map.delete(state.by_ref, ref)}} |> maybe_recycle()

          {nil, ref, _} ->
            {:noreply, %{state | pending: pending, by_ref: Map.delete(state.by_ref, ref)}} |> maybe_recycle()

          nil ->
            {:noreply, state}
        end

      _ ->
        notice(Msgpack.decode(frame), state)
    end
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    crash(state, {:exit_status, status})
    {:stop, {:shutdown, {:worker_exited, status}}, %{state | pending: %{}}}
  end

  def handle_info({:EXIT, port, reason}, %{port: port} = state) do
    crash(state, reason)
    {:stop, {:shutdown, {:worker_exited, reason}}, %{state | pending: %{}}}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    crash(state, :worker_stopped)
    if Port.info(state.port) != nil, do: Port.close(state.port)
    :ok
  end

  # Recycling: after max_calls, stop once idle; the supervisor starts a fresh process.
  defp maybe_recycle({:noreply, %{calls: calls, max_calls: max, pending: pending} = state})
       when is_integer(max) and calls >= max and map_size(pending) == 0 do
    {:stop, {:shutdown, :recycled}, state}
  end

  defp maybe_recycle(result), do: result

  defp crash(state, reason) do
    for {_id, {from, ref, _}} <- state.pending, is_pid(from) do
      send(from, {ref, {:error, %WorkerCrashError{reason: reason, worker: self()}}})
    end
  end

  # Output frames and protocol-level errors (id 0).
  defp notice({:ok, [0, "output", stream, text, req_id]}, state) do
    case state.pending[req_id] do
      {from, ref, _} when is_pid(from) -> send(from, {:snakebridge_output, ref, output_stream(stream), text})
      _ -> send(SnakeBridge.Output, {:snakebridge_output, output_stream(stream), nil, text})
    end

    {:noreply, state}
  end

  defp notice(other, state) do
    require Logger
    Logger.warning("snakebridge port worker: unexpected frame #{inspect(other)}")
    {:noreply, state}
  end

  # The id of a [id, status, value] reply, read without decoding the value.
  defp reply_id(<<0x93, id, _::binary>>) when id < 0x80, do: id
  defp reply_id(<<0x93, 0xCC, id::8, _::binary>>), do: id
  defp reply_id(<<0x93, 0xCD, id::16, _::binary>>), do: id
  defp reply_id(<<0x93, 0xCE, id::32, _::binary>>), do: id
  defp reply_id(<<0x93, 0xCF, id::64, _::binary>>), do: id
  defp reply_id(_), do: nil

  defp output_stream("stderr"), do: :stderr
  defp output_stream(_), do: :stdout

  defp encode(id, request, mode, handle_id) do
    mode = Atom.to_string(mode)

    message =
      case request do
        {:call, target, name, args, kwargs} -> [id, "call", target(target), name(name), args, kwargs_map(kwargs), mode]
        {:getattr, target, name} -> [id, "getattr", target(target), to_string(name), mode]
        {:setattr, target, name, value} -> [id, "setattr", target(target), to_string(name), value]
        {:eval, code, globals} -> [id, "eval", code, globals, mode]
        {:exec, code, globals} -> [id, "exec", code, globals]
        {:describe, module, depth, private} -> [id, "describe", module, depth, private]
        {:next, it, max} -> [id, "next", it, max, mode]
        {:close, it} -> [id, "close", it]
        {:to_elixir, obj} -> [id, "to_elixir", obj]
        {:repr, obj, max} -> [id, "repr", obj, max]
        {:stats} -> [id, "stats"]
      end

    case Msgpack.encode(message, handle_id: handle_id) do
      {:ok, iodata} -> {:ok, iodata}
      {:error, {:unconvertible, reason, term, path}} -> {:error, {:unconvertible, reason, term, Enum.drop(path, 1)}}
    end
  end

  defp target(%Object{} = o), do: o
  defp target(name), do: to_string(name)

  defp name(nil), do: nil
  defp name(name), do: to_string(name)

  defp kwargs_map(kwargs) when is_map(kwargs), do: Map.new(kwargs, fn {k, v} -> {to_string(k), v} end)
  defp kwargs_map(kwargs) when is_list(kwargs), do: Map.new(kwargs, fn {k, v} -> {to_string(k), v} end)
end
