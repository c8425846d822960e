defmodule SnakeBridge.Backend.PortWorker do
  @moduledoc false
  # A port worker's interpreter (c_src/port/, docs/protocol.md). The caller
  # encodes its request, picks a worker (the one holding the request's objects,
  # else one of the pool), registers the request with the worker's reply
  # channel and writes the frame into the worker's port itself; the reply
  # frame comes to it undecoded from the channel (read by the caller itself
  # while it polls, else by the worker process in batches: docs/protocol.md,
  # "The reply channel"), and the caller decodes it. Output and callbacks
  # arrive tagged with the request's ref, as in-process.
  @behaviour SnakeBridge.Backend
  import Bitwise, only: [<<<: 2]

  alias SnakeBridge.{Backend.Job, Msgpack, Object, Output, Pool, PythonThread, Worker, WorkerCrashError}

  @doc false
  # The worker owning the request's target, if it is a port worker's object.
  def owner(request) when is_tuple(request) and tuple_size(request) >= 2 do
    case elem(request, 1) do
      %Object{owner: {:port, pid}} -> pid
      _ -> nil
    end
  end

  def owner(_request), do: nil

  # A caller whose request is the only one (or one of two) at its worker reads
  # the reply channel itself for up to @poll_us (on its scheduler, while few
  # other processes wait for one: poll_us/0): a quick
  # reply then comes back with no process woken on its way
  # (docs/protocol.md, "The reply channel").
  @poll_us 50

  @impl true
  def start(request, mode, timeout, where) do
    owner = find_owner(request)

    with {:ok, load_key, worker, pool} <- pick(owner, where) do
      key = PythonThread.key()
      {count, body} = encode(request, mode, worker, key)
      size = IO.iodata_length(body)
      {count, body, size, shared} = share(request, mode, worker, key, {count, body, size})

      # The program reads frames of up to Worker.max_frame/0: a larger request
      # would be skipped unanswered, its caller left waiting. (The body leaves
      # room for the frame's array header and id.)
      if size > Worker.max_frame() - 16 do
        unshare(shared)
        Pool.checkin(load_key, pool)
        {:done, {:error, too_large(size)}}
      else
        send_request(request, worker, owner, load_key, pool, key, count, body, timeout, shared)
      end
    else
      error -> {:done, error}
    end
  end

  # Arrays of @share_at bytes or more go to a worker on this node through
  # shared memory (docs/protocol.md, "Shared bytes"): written once here, on a
  # dirty scheduler, and mapped by the program, where the port would copy them
  # twice on this scheduler before the pipe copies them again. The objects are
  # named for the worker's OS process. The program unlinks each as it reads
  # it; this caller unlinks them all once the request is over (done/1: the
  # program may have failed the request before reading them, or never run it);
  # the worker, as it stops, unlinks any left by a caller killed meanwhile.
  @share_at 1 <<< 20

  defp share(request, mode, worker, key, {count, body, size})
       when size >= @share_at and node(worker) == node() do
    with {port, _ids, _channel} <- SnakeBridge.Workers.lookup(worker),
         {:os_pid, os_pid} <- Port.info(port, :os_pid),
         {shared_request, [_ | _] = names} <- request |> Tuple.to_list() |> shared_list(os_pid, []) do
      {count, body} = encode(List.to_tuple(shared_request), mode, worker, key)
      {count, body, IO.iodata_length(body), names}
    else
      _ -> {count, body, size, []}
    end
  end

  defp share(_request, _mode, _worker, _key, {count, body, size}), do: {count, body, size, []}

  # The term with its large arrays' data written to shared memory, and the
  # names written (prepended to `names`).
  defp shared_in(%SnakeBridge.Array{data: data} = array, os_pid, names) when byte_size(data) >= @share_at do
    name = "/snakebridge-#{os_pid}-#{System.unique_integer([:positive])}"

    case SnakeBridge.Native.shm_write(name, data) do
      :ok -> {%{array | data: %Msgpack.Shared{name: name, size: byte_size(data)}}, [name | names]}
      # No room in /dev/shm (or none at all): through the pipe.
      {:error, _} -> {array, names}
    end
  end

  defp shared_in(%{__struct__: _} = struct, _os_pid, names), do: {struct, names}

  defp shared_in(map, os_pid, names) when is_map(map) do
    {entries, names} = map |> Map.to_list() |> shared_list(os_pid, names)
    {Map.new(entries), names}
  end

  defp shared_in(list, os_pid, names) when is_list(list), do: shared_list(list, os_pid, names)

  defp shared_in(tuple, os_pid, names) when is_tuple(tuple) do
    {items, names} = tuple |> Tuple.to_list() |> shared_list(os_pid, names)
    {List.to_tuple(items), names}
  end

  defp shared_in(other, _os_pid, names), do: {other, names}

  # (Improper lists are sent opaque and refused: their tail is left as it is.)
  defp shared_list([h | t], os_pid, names) do
    {h, names} = shared_in(h, os_pid, names)
    {t, names} = shared_list(t, os_pid, names)
    {[h | t], names}
  end

  defp shared_list(tail, _os_pid, names), do: {tail, names}

  defp unshare(names), do: Enum.each(names, &SnakeBridge.Native.shm_unlink/1)

  defp too_large(size) do
    %ArgumentError{
      message:
        "the request is #{size} bytes, more than a port worker reads in one request (1 GiB): " <>
          "pass the data in parts (or through a file), or call in-process"
    }
  end

  defp send_request(request, worker, owner, load_key, pool, key, count, body, timeout, shared) do
    # Replies come to an alias: once the caller deactivates it (done/1, or a
    # cancel whose acknowledgement does not come in time), whatever the worker
    # sends for this request later is dropped, never left in the mailbox.
    ref = :erlang.alias()
    # A worker on another node is watched by a monitor. One on this node is
    # not: every request still expected when it goes gets a crash notice,
    # from the worker itself or, killed outright, from SnakeBridge.Workers
    # (a monitor per call made the worker process run twice a call, for the
    # monitor's signals: docs/benchmarks.md).
    mon = if node(worker) != node(), do: Process.monitor(worker)

    job = %Job{
      backend: __MODULE__,
      ref: ref,
      monitor: mon,
      state: %{
        worker: worker,
        owner: owner,
        load_key: load_key,
        pool: pool,
        request: request,
        shared: shared,
        channel: nil,
        id: nil
      }
    }

    case submit(worker, ref, count, body, SnakeBridge.Runtime.deadline(timeout), key) do
      {:ok, %{channel: channel, id: id} = sent, polled} ->
        if sent[:drain?], do: Pool.retire(pool, load_key, worker)
        job = %{job | state: %{job.state | channel: channel, id: id}}

        case polled do
          {:frame, frame} -> {:done, polled(job, frame, false)}
          {:frame, frame, :sent} -> {:done, polled(job, frame, true)}
          # (:sent: its output or a callback is in the mailbox.)
          _wait_or_sent -> {:running, job}
        end

      {:ok, sent} ->
        {:running, %{job | state: Map.merge(job.state, sent)}}

      # The worker was gone by the time its port was written to (pick/2 reads
      # the registry of workers, which a worker killed outright leaves a moment
      # later): its objects went with it.
      {:error, %WorkerCrashError{reason: {:shutdown, :recycled}}} when owner != nil ->
        done(job)
        {:done, {:error, %WorkerCrashError{reason: :object_owner_gone, worker: worker}}}

      error ->
        done(job)
        {:done, error}
    end
  end

  # The reply read by the caller itself. Python's output for the request, if
  # any came before it (`sent?`), is in the mailbox already: drop/1 writes it.
  # Otherwise the mailbox is not searched: a search goes through every
  # message there, and a busy server's may hold thousands (each call paid
  # ~10 µs a thousand: docs/benchmarks.md).
  defp polled(%Job{ref: ref, state: s} = job, frame, sent?) do
    reply = decode(frame, s.request, s.worker)
    if sent?, do: drop(ref)
    done(job)
    reply
  end

  @impl true
  def reply(%Job{state: s}, {:frame, frame, _worker}), do: decode(frame, s.request, s.worker)

  # The object's worker is gone (on another node, only the monitor could tell).
  def reply(%Job{state: %{owner: owner} = s}, {:DOWN, :noproc}) when owner != nil,
    do: {:error, %WorkerCrashError{reason: :object_owner_gone, worker: s.worker}}

  def reply(%Job{state: s}, {:DOWN, reason}), do: {:error, %WorkerCrashError{reason: reason, worker: s.worker}}
  def reply(_job, {:error, _} = error), do: error

  # Asks the worker to interrupt the request and waits for its acknowledgement:
  # the worker handles messages in order, so a reply it forwarded before the
  # cancel arrives before the acknowledgement, and none comes after.
  #
  # A crash notice instead (the program died, maybe killed for a request that
  # held the GIL past its cancel, before the worker read the cancel) is not the
  # caller's outcome: it overran its deadline first, so it stays :stopped (a
  # TimeoutError). The wait goes on until the acknowledgement or the worker's
  # DOWN, whichever comes, but at most @ack_grace_ms: a congested worker process
  # or a frozen remote node does not hold the caller. Then the alias the
  # replies come to is deactivated, so nothing for the request arrives later.
  @ack_grace_ms 500

  #
  # A caller on the worker's node forgets the request in the channel instead:
  # if it was still expected, nothing more for it comes, and the worker is only
  # told to interrupt it; if not, its reply is on its way (or a crash notice).
  @impl true
  def stop(%Job{ref: ref, monitor: mon, state: %{channel: nil} = s} = job) do
    send(s.worker, {:cancel, ref, self()})
    stopped(job, ref, mon, :stopped, System.monotonic_time(:millisecond) + @ack_grace_ms)
  end

  def stop(%Job{ref: ref, monitor: mon, state: s} = job) do
    if SnakeBridge.Native.channel_forget(s.channel, s.id) do
      send(s.worker, {:cancelled, s.id})
      # (Output it sent before, still in the mailbox.)
      drop(ref)
      :stopped
    else
      taken(job, ref, mon, System.monotonic_time(:millisecond) + @ack_grace_ms)
    end
  end

  # The request's reply was taken from the channel (or its crash notice sent):
  # that message is the last for the request.
  defp taken(job, ref, mon, until) do
    receive do
      {:snakebridge_output, ^ref, stream, text} ->
        Output.write_caller(stream, text)
        taken(job, ref, mon, until)

      {^ref, {:error, %WorkerCrashError{}}} ->
        :stopped

      {^ref, message} ->
        {:replied, reply(job, message)}

      {:DOWN, ^mon, :process, _, _} ->
        :stopped
    after
      max(until - System.monotonic_time(:millisecond), 0) ->
        :erlang.unalias(ref)
        drop(ref)
        :stopped
    end
  end

  defp stopped(job, ref, mon, result, until) do
    receive do
      {:snakebridge_output, ^ref, stream, text} ->
        Output.write_caller(stream, text)
        stopped(job, ref, mon, result, until)

      {^ref, :cancelled} ->
        result

      {^ref, {:error, %WorkerCrashError{}}} ->
        stopped(job, ref, mon, result, until)

      {^ref, message} ->
        stopped(job, ref, mon, {:replied, reply(job, message)}, until)

      {:DOWN, ^mon, :process, _, _} ->
        result
    after
      max(until - System.monotonic_time(:millisecond), 0) ->
        :erlang.unalias(ref)
        drop(ref)
        result
    end
  end

  # What came for `ref` before its alias was deactivated.
  defp drop(ref) do
    receive do
      {:snakebridge_output, ^ref, stream, text} ->
        Output.write_caller(stream, text)
        drop(ref)

      # (Python is interrupted meanwhile: its wait for the answer ends.)
      {:snakebridge_port_callback, ^ref, _frame, _worker} ->
        drop(ref)

      {^ref, _} ->
        drop(ref)
    after
      0 -> :ok
    end
  end

  @impl true
  def route_callbacks(%Job{ref: ref, state: %{channel: nil} = s}, runner) do
    send(s.worker, {:route_callbacks, ref, runner})
    :ok
  end

  def route_callbacks(%Job{state: s}, runner) do
    SnakeBridge.Native.channel_route(s.channel, s.id, runner)
    :ok
  end

  @impl true
  def done(%Job{ref: ref, monitor: mon, state: s}) do
    # (Still expected after a crash notice, or the worker's exit: forgotten,
    # so that nothing for it can come later.)
    if s.channel, do: SnakeBridge.Native.channel_forget(s.channel, s.id)
    :erlang.unalias(ref)
    if mon, do: Process.demonitor(mon, [:flush])
    Pool.checkin(s.load_key, s.pool)
    unshare(s.shared)
    :ok
  end

  # ------------------------------------------------------------------ routing

  defp pick(nil, {:worker, pid}), do: {:ok, nil, pid, nil}
  defp pick(nil, {:pool, name}), do: Pool.checkout(name)
  defp pick(nil, :nif), do: {:error, {:badrequest, "no port worker holds an object of this request"}}

  # (A worker on a connected node is not asked: the monitor says if it is gone.)
  defp pick(pid, _where) do
    if if(node(pid) == node(), do: SnakeBridge.Workers.alive?(pid), else: node(pid) in Node.list()),
      do: {:ok, nil, pid, nil},
      else: {:error, %WorkerCrashError{reason: :object_owner_gone, worker: pid}}
  end

  # The worker whose objects the request holds: its target's, else the first
  # found among the arguments. Objects of another worker are then refused by
  # the core (they are sent as opaque terms) with their path.
  defp find_owner(request) do
    owner(request) || request |> Tuple.to_list() |> tl() |> owner_in()
  end

  defp owner_in(%Object{owner: {:port, pid}}), do: pid
  defp owner_in(%Object{}), do: nil
  defp owner_in([x | rest]) when is_number(x) or is_binary(x) or is_atom(x), do: owner_in(rest)
  defp owner_in([x | rest]), do: owner_in(x) || owner_in(rest)
  defp owner_in(%MapSet{} = set), do: set |> MapSet.to_list() |> owner_in()
  defp owner_in(%{__struct__: _}), do: nil
  defp owner_in(map) when is_map(map), do: Enum.find_value(map, fn {k, v} -> owner_in(k) || owner_in(v) end)
  defp owner_in(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> owner_in()
  defp owner_in(_), do: nil

  # A worker on this node: register the request with its reply channel, then
  # write the frame into its request FIFO here (registered first: the reply can come
  # as soon as the frame is written). A worker on another node writes the
  # frame itself.
  defp submit(worker, ref, count, body, deadline, key) when node(worker) == node() do
    case link(worker) do
      {ids, channel} ->
        announce(worker, key)
        id = :atomics.add_get(ids, 1, 1)

        case call(channel, id, ref, Worker.outgoing(Worker.frame(id, count, body)), deadline, 0) do
          {:error, :timeout} = timeout ->
            timeout

          # The program is gone (the worker took every request still expected)
          # and the request never ran. Its crash notice, if one was sent to
          # `ref`, is not left behind.
          closed when closed in [:closed, :closed_notified] ->
            if closed == :closed_notified do
              receive do
                {^ref, _} -> :ok
              after
                1_000 -> :ok
              end
            end

            {:error, %WorkerCrashError{reason: {:shutdown, :recycled}, worker: worker}}

          # This request reached the worker's :max_calls: no other goes to it
          # (the worker, told, drains and is replaced).
          {:drain, polled} ->
            send(worker, :maybe_drain)
            {:ok, %{channel: channel, id: id, drain?: true}, polled}

          polled ->
            {:ok, %{channel: channel, id: id}, polled}
        end

      nil ->
        {:error, %WorkerCrashError{reason: {:shutdown, :recycled}, worker: worker}}
    end
  end

  defp submit(worker, ref, count, body, _deadline, key) do
    send(worker, {:request, self(), ref, count, IO.iodata_to_binary(body), key})
    {:ok, %{}}
  end

  # A worker on this node as this process last found it: {ids, channel}, or
  # nil when the worker is gone. Looked up in SnakeBridge.Workers once per
  # worker and process (an ETS read copies the two resource references out,
  # ~1.5 µs: docs/benchmarks.md), then kept in the process dictionary: a
  # worker keeps its channel for life, and a channel whose worker is gone
  # refuses every frame (:closed), which the caller treats as the worker gone.
  # (Up to 16 workers kept; past that, those gone are dropped.)
  @links_key :snakebridge_worker_links

  defp link(worker) do
    links = Process.get(@links_key, %{})

    case links do
      %{^worker => link} ->
        link

      _ ->
        case SnakeBridge.Workers.lookup(worker) do
          {_port, ids, channel} ->
            links = if map_size(links) >= 16, do: Map.filter(links, fn {w, _} -> Process.alive?(w) end), else: links
            Process.put(@links_key, Map.put(links, worker, {ids, channel}))
            {ids, channel}

          nil ->
            nil
        end
    end
  end

  # The worker learns once of each process using it: it holds the process's
  # thread key until the process goes, and then interrupts what it left
  # running. (Remembered per worker in the process dictionary; entries of
  # workers gone are dropped as new ones come.)
  @users_key :snakebridge_worker_user_of

  defp announce(worker, key) do
    known = Process.get(@users_key, [])

    unless worker in known do
      send(worker, {:thread_user, self(), key})
      known = if length(known) >= 16, do: Enum.filter(known, &Process.alive?/1), else: known
      Process.put(@users_key, [worker | known])
    end
  end

  # The request registered with the channel, written into the program's
  # request FIFO, and its reply polled for, in one NIF call
  # (SnakeBridge.Native.channel_call/5). A caller never blocks on a full pipe
  # (a frozen or swamped program): while too much waits to be written the
  # request is not taken (nor registered), and the caller tries again,
  # backing off, until its deadline; then the request, never written, ends
  # as a timeout.
  defp call(channel, id, ref, frame, deadline, attempt) do
    case SnakeBridge.Native.channel_call(channel, id, ref, frame, poll_us()) do
      :busy ->
        if deadline != :infinity and System.monotonic_time(:millisecond) >= deadline do
          {:error, :timeout}
        else
          if attempt == 0, do: :erlang.yield(), else: Process.sleep(min(attempt, 10))
          call(channel, id, ref, frame, deadline, attempt + 1)
        end

      other ->
        other
    end
  end

  # A caller polls for its reply only while fewer processes wait for a
  # scheduler than four per scheduler: polling holds this scheduler, and
  # with many callers runnable (100 callers: 16 or more waiting at 86-89%
  # of calls) their work is what it should do meanwhile; their replies come
  # as messages. (100 processes through a pool of 2: half the calls were
  # polled for, and the BEAM spent 22-32 µs a call instead of 17. With no
  # process or fewer than one per scheduler allowed, a lone caller beside a
  # few busy processes stopped polling and took 134-202 µs a call instead of
  # 13-17: docs/benchmarks.md.)
  defp poll_us do
    if :erlang.statistics(:total_run_queue_lengths) < 4 * :erlang.system_info(:schedulers_online),
      do: @poll_us,
      else: 0
  end

  # ----------------------------------------------------------------- the wire

  # The request's elements after the id, each encoded (docs/protocol.md,
  # "Requests"): the operation, the caller's thread key, the arguments. Only
  # `worker`'s objects get a handle id; any other object is sent opaque, and
  # the core refuses it with its path.
  defp encode(request, mode, worker, key) do
    handle_id = handle_ids(worker)

    elements =
      case elements(request, Atom.to_string(mode)) do
        ["stats"] = stats -> stats
        [op | args] when node(worker) == node() -> shared_replies([op, key | args])
        [op | args] -> [op, key | args]
      end

    {length(elements), Msgpack.encode_each(elements, handle_id)}
  end

  # A caller on the worker's node takes large arrays of a reply through shared
  # memory (docs/protocol.md, "Shared bytes"): the request's last element.
  defp shared_replies(["to_array" | _] = elements), do: elements ++ [nil, true]
  defp shared_replies(["to_columns" | _] = elements), do: elements ++ [true]
  defp shared_replies(elements), do: elements

  defp elements(request, mode) do
    case request do
      {:call, target, name, args, kwargs} -> ["call", target, name, args, kwargs, mode]
      {:getattr, target, name} -> ["getattr", target, name, mode]
      {:setattr, target, name, value} -> ["setattr", target, name, value]
      {:eval, code, globals} -> ["eval", code, globals, mode]
      {:exec, code, globals} -> ["exec", code, globals, mode]
      {:describe, module, depth, private} -> ["describe", module, depth, private]
      {:next, it, max} -> ["next", it, max, mode]
      {:close, it} -> ["close", it]
      {:to_elixir, obj} -> ["to_elixir", obj]
      {:repr, obj, max} -> ["repr", obj, max]
      {:to_array, obj, copy} -> ["to_array", obj, copy]
      {:to_columns, frame, index} -> ["to_columns", frame, index, mode]
      {:stats} -> ["stats"]
    end
  end

  @doc false
  # How `worker`'s objects are spelled on its wire: their handle ids (any
  # other object is sent opaque, and the core refuses it with its path).
  def handle_ids(worker) do
    fn
      %Object{owner: {:port, ^worker}, ref: r} -> {:ok, SnakeBridge.Native.port_handle_id(r)}
      _ -> :error
    end
  end

  defp decode(frame, request, worker) do
    case Msgpack.decode(frame, handle: handles(worker)) do
      {:ok, [_id, "ok", value]} -> {:ok, value}
      {:ok, [_id, "error", reason]} -> {:error, resolve(reason, request)}
      other -> {:error, {:internal, "undecodable reply from a port worker: #{inspect(other)}"}}
    end
  end

  @doc false
  # A callback's answer, written into the worker's port by the process that
  # ran the callback. The same call's next callback is often on its way (a
  # sort key, a reduce): that process then reads the reply channel for it
  # for up to @poll_us (while few processes wait for a scheduler), as a
  # caller reads for its reply. A worker on another
  # node, or a port too busy to take the frame now, gets the answer as a
  # message, and writes it itself.
  def answer(worker, slot, answer) when node(worker) == node() do
    with {_ids, channel} <- link(worker),
         :ok <- Worker.command(channel, Worker.answer_frame(slot, answer, worker)) do
      SnakeBridge.Native.channel_poll(channel, 0, poll_us())
      :ok
    else
      _ -> send(worker, {:answer, slot, answer})
    end
  end

  def answer(worker, slot, answer), do: send(worker, {:answer, slot, answer})

  @doc false
  # A callback frame from `worker`'s channel ([0, "callback", request_id,
  # slot, fun | [module, function], args, kwargs]), as the message a call's
  # runner takes (docs/protocol.md, "Callbacks").
  def callback(ref, frame, worker) do
    case Msgpack.decode(frame, handle: handles(worker)) do
      {:ok, [0, "callback", _req_id, slot, what, args, kwargs]} ->
        {:snakebridge_callback, ref, {:port, worker, slot}, what, args, kwargs}

      # (Not from our program: the request's cancel or timeout ends it.)
      other ->
        require Logger
        Logger.warning("snakebridge port worker: undecodable callback #{inspect(other, limit: 10)}")
        nil
    end
  end

  @doc false
  # The objects of `worker`'s handles, as its replies and callbacks name them.
  def handles(worker) do
    handle =
      cond do
        # (A NIF resource can only message a local process: the relay forwards.)
        node(worker) != node() ->
          relay = Process.whereis(SnakeBridge.Workers)
          &SnakeBridge.Native.port_handle(relay, &1, worker)

        # Releases gathered in the worker's channel (c_src/nif/port_handle.hpp):
        # a collected handle costs no message (~2 µs of the collecting
        # process's time each, and a message for the worker, before:
        # docs/benchmarks.md).
        link = link(worker) ->
          {_ids, channel} = link
          &SnakeBridge.Native.channel_handle(channel, &1)

        true ->
          &SnakeBridge.Native.port_handle(worker, &1)
      end

    fn id, type -> %Object{ref: handle.(id), type: type, owner: {:port, worker}} end
  end

  # The core names a refused term by its position in what was sent; the
  # caller names it as in-process: the term itself and the keys leading to it.
  # A struct refused at one of its fields (a calendar field out of range) is
  # named as in-process: the struct, with the field last in the path.
  defp resolve({:unconvertible, why, nil, steps}, request) do
    {steps, field} =
      case Enum.reverse(steps) do
        [name | up] when is_binary(name) -> {Enum.reverse(up), [String.to_existing_atom(name)]}
        _ -> {steps, []}
      end

    case Msgpack.locate(refused_in(request, steps), steps) do
      {:ok, term, path} -> {:unconvertible, why, term, path ++ field}
      :error -> {:unconvertible, why, refused_in(request, steps), []}
    end
  end

  defp resolve(:stopping, _request), do: %WorkerCrashError{reason: {:shutdown, :recycled}}
  defp resolve(reason, _request), do: reason

  # Which part of the request the steps start in.
  defp refused_in({:call, _, _, args, kwargs}, steps) do
    case steps do
      [{tag, _} | _] when tag in [:key, :entry] -> kwargs
      _ -> args
    end
  end

  defp refused_in({:setattr, _, _, value}, _steps), do: value
  defp refused_in({op, _code, globals}, _steps) when op in [:eval, :exec], do: globals
  defp refused_in(request, _steps), do: request
end
