defmodule SnakeBridge.Worker do
  @moduledoc false
  # One port worker: an OS process running priv/snakebridge_port (its own
  # interpreter), owned by this GenServer.
  #
  # A caller on this node encodes its request, registers it with the worker's
  # reply channel (c_src/nif/reply_channel.hpp) and writes the frame into the
  # port itself (SnakeBridge.Backend.PortWorker). The program writes its
  # replies into the channel's FIFO. Whoever reads it (the caller polling for
  # its reply, or this process when the BEAM reports it readable) hands each
  # reply undecoded to its caller, as `{ref, {:frame, ...}}`, and a request's
  # output and callbacks to its caller, in the program's order: a call's reply
  # does not pass through this process. A caller tells this process only that it uses
  # the worker ({:thread_user, pid, key}, once) and which requests it gave up
  # ({:cancelled, id}). A caller on another node sends the encoded body here
  # ({:request, ...}); the worker writes it, registered with itself as the
  # destination, and relays what comes for it.
  #
  # This process gets the frames no caller waits for: replies of requests
  # given up, pings, the drain, Python's sends and output outside any request.
  # It also batches the release of handles the BEAM garbage-collected,
  # recycles the program after :max_calls calls or past :max_memory_mb, and,
  # if the OS process dies, gives every caller still waiting a
  # WorkerCrashError and stops (its supervisor starts a fresh one).
  #
  # The program can be gone before this process has seen its exit (its
  # {:exit_status, _} is still in the mailbox), and a frozen program's request
  # FIFO can fill: every frame this process writes goes through
  # write_frame/2, which never raises and never blocks; what a full FIFO
  # cannot take (cancels, releases, forgotten thread keys) waits here and is
  # retried.
  #
  # The hard kill: a request still running @grace_ms after its cancel (C code
  # holding the GIL) gets the program's whole process group SIGKILLed (the
  # program calls setpgid(0, 0) first thing, so the group id is its os pid),
  # taking the processes Python started with it. At most once per worker, and
  # only while the port is open: the OS process then cannot have been reaped,
  # so its pid, and its group, are still ours.
  #
  # Recycling is safe to retry: the worker sends "drain" and stops when its
  # reply comes; the program finishes what it read before the drain and refuses
  # what comes after (kind "stopping"), so a request that fails with
  # {:shutdown, :recycled} never ran.
  use GenServer
  import Bitwise, only: [<<<: 2]
  require Logger

  alias SnakeBridge.{Msgpack, WorkerCrashError, Workers}

  # The largest frame the program reads (docs/protocol.md).
  @max_frame 1 <<< 30
  # After a cancel, how long a request may take to wind down before the process is killed.
  @grace_ms 1_000
  @memory_check_ms 1_000
  # While requests are in flight, the program is pinged every @liveness_tick_ms
  # (its I/O thread answers without the GIL, whatever Python is doing); one
  # not answered within @liveness_ms means a frozen or stuck program, killed
  # and replaced whatever its callers' timeouts (an :infinity caller included).
  @liveness_tick_ms 1_000
  @liveness_ms 5_000
  # Handles the BEAM let go of are released in one frame per @release_batch_ms
  # (or per @release_batch ids, whichever comes first): each frame is a pipe
  # write that wakes the program, and flushing at once (a caller's garbage
  # collection lets go of a few objects at a time) cost a caller creating
  # objects in a loop a third of its time (docs/benchmarks.md).
  @release_batch_ms 10
  # (The channel tells of every kReleaseNotice more ids, c_src/nif/reply_channel.hpp: the same number.)
  @release_batch 1_000

  # Frames smaller than this are copied into one binary by the NIF as they
  # are written; larger ones are passed as binaries, their large parts queued
  # as they are if the pipe does not take them at once.
  @flat_below 64 * 1024

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts)

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    priv = to_string(:code.priv_dir(:snakebridge))
    python = Keyword.get(opts, :python) || SnakeBridge.Config.python()
    paths = Keyword.get(opts, :python_paths, []) ++ [Path.join(priv, "python")]

    env =
      [{~c"SNAKEBRIDGE_PYTHON", to_charlist(python)}, {~c"SNAKEBRIDGE_PATHS", to_charlist(Enum.join(paths, ":"))}] ++
        if(spin = opts[:spin_us], do: [{~c"SNAKEBRIDGE_SPIN_US", to_charlist(Integer.to_string(spin))}], else: []) ++
        if(n = opts[:threads], do: [{~c"SNAKEBRIDGE_THREADS", to_charlist(Integer.to_string(n))}], else: []) ++
        Enum.map(Keyword.get(opts, :env, []), fn {k, v} -> {to_charlist(k), to_charlist(v)} end)

    # The program's replies come through a FIFO read by the NIF (the reply
    # channel), and its requests through another, written by the NIF (every
    # caller writes its own frame there, in one system call, without the
    # port): named here and unlinked by the program once it opened them.
    base = Path.join(System.tmp_dir!(), "snakebridge-#{System.pid()}-#{System.unique_integer([:positive])}")
    fifo = base <> ".reply"
    requests = base <> ".requests"
    max_calls = Keyword.get(opts, :max_calls, :infinity)

    channel = SnakeBridge.Native.reply_channel(fifo, if(is_integer(max_calls), do: max_calls, else: 0))

    try do
      :ok = SnakeBridge.Native.channel_requests(channel, requests)
    rescue
      # (mkfifo or open refused: the reply FIFO made above goes too.)
      e ->
        SnakeBridge.Native.channel_close(channel)
        File.rm(fifo)
        reraise e, __STACKTRACE__
    end

    env = [{~c"SNAKEBRIDGE_REPLY_FIFO", to_charlist(fifo)}, {~c"SNAKEBRIDGE_REQUEST_FIFO", to_charlist(requests)} | env]

    port_opts =
      [:binary, :nouse_stdio, {:packet, 4}, :exit_status, {:env, env}] ++
        if(dir = opts[:cd], do: [{:cd, to_charlist(dir)}], else: [])

    port =
      try do
        Port.open({:spawn_executable, Path.join(priv, "snakebridge_port")}, port_opts)
      rescue
        e ->
          SnakeBridge.Native.channel_close(channel)
          File.rm(fifo)
          File.rm(requests)
          reraise e, __STACKTRACE__
      end

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    ids = :atomics.new(1, signed: false)
    Workers.register(self(), port, ids, channel)
    if table = opts[:table], do: :ets.insert(table, {opts[:index], self()})
    if group = opts[:group], do: :pg.join(SnakeBridge.PG, group, self())

    max_memory = if mb = opts[:max_memory_mb], do: mb * 1024 * 1024
    if max_memory, do: Process.send_after(self(), :check_memory, @memory_check_ms)
    Process.send_after(self(), :liveness, @liveness_tick_ms)

    {:ok,
     %{
       port: port,
       os_pid: os_pid,
       ids: ids,
       channel: channel,
       fifo: fifo,
       requests: requests,
       # requests given up, whose program may still be running them: id => true
       cancelled: %{},
       # callers on other nodes: their alias => their callback runner
       remote_routes: %{},
       thread_pids: %{},
       thread_users: %{},
       thread_keys: %{},
       forgotten: [],
       # ids of handles to release (those collected on this node wait in the
       # channel until the batch is written), and whether a write is due
       releases: [],
       release_count: 0,
       release_timer: false,
       cancels: [],
       max_calls: max_calls,
       max_memory: max_memory,
       draining: nil,
       killed: false,
       ping: nil,
       table: opts[:table],
       index: opts[:index],
       group: opts[:group]
     }}
  end

  @doc false
  # The largest frame the program reads: callers refuse larger requests.
  def max_frame, do: @max_frame

  @doc false
  # The frame for request `id`: [id | elements], `body` being the elements,
  # already encoded (`count` of them).
  def frame(id, count, body), do: [0x90 + count + 1, Msgpack.encode!(id) | body]

  # A process on this node uses this worker for the first time: its thread
  # key is in use until it goes.
  @impl true
  def handle_info({:thread_user, pid, key}, state), do: {:noreply, add_thread_user(state, pid, key)}

  # A caller on this node gave up request `id` (it forgot it in the channel:
  # nothing more for it reaches the caller): interrupt it.
  def handle_info({:cancelled, id}, state), do: {:noreply, cancel_ids(state, [id])}

  # The program reached max_calls requests: recycle.
  def handle_info(:maybe_drain, state), do: {:noreply, maybe_drain(state)}

  # From a caller on another node: the worker writes the frame, and relays
  # what comes for it (the channel sends only to local processes).
  def handle_info({:request, from, ref, count, body, key}, state) do
    id = :atomics.add_get(state.ids, 1, 1)
    drain? = SnakeBridge.Native.channel_expect(state.channel, id, self(), ref, from) == :drain

    case write_frame(state, frame(id, count, body)) do
      :ok ->
        state = add_thread_user(state, from, key)
        {:noreply, if(drain?, do: maybe_drain(state), else: state)}

      # The program is gone (its exit is on its way here), or its pipe is full:
      # the request never ran, so the caller may send it to another worker.
      _closed_or_busy ->
        SnakeBridge.Native.channel_forget(state.channel, id)
        send(ref, {ref, {:error, %WorkerCrashError{reason: {:shutdown, :recycled}, worker: self()}}})
        {:noreply, state}
    end
  end

  # A caller on another node gave up: interrupt the request and acknowledge
  # (this process relays in order: nothing for `ref` follows the acknowledgement).
  def handle_info({:cancel, ref, _from}, state) do
    state = cancel_ids(state, SnakeBridge.Native.channel_forget_ref(state.channel, ref))
    send(ref, {ref, :cancelled})
    {:noreply, %{state | remote_routes: Map.delete(state.remote_routes, ref)}}
  end

  # What the channel sent here for a caller on another node.
  def handle_info({ref, {:frame, _frame, _worker}} = reply, state) when is_reference(ref) do
    send(ref, reply)
    {:noreply, %{state | remote_routes: Map.delete(state.remote_routes, ref)}}
  end

  def handle_info({:snakebridge_output, ref, _stream, _text} = output, state) when is_reference(ref) do
    send(ref, output)
    {:noreply, state}
  end

  def handle_info({:snakebridge_port_callback, ref, frame, _worker}, state) do
    if callback = SnakeBridge.Backend.PortWorker.callback(ref, frame, self()),
      do: send(Map.get(state.remote_routes, ref, ref), callback)

    {:noreply, state}
  end

  # The reply channel has frames: those for callers go to them from the NIF,
  # in one batch; the rest are handled here, in order.
  def handle_info({:select, channel, _ref, :ready_input}, %{channel: channel} = state), do: read_channel(state)

  # The request FIFO has room again for frames that waited.
  def handle_info({:select, channel, _ref, :ready_output}, %{channel: channel} = state) do
    SnakeBridge.Native.channel_flush(channel)
    {:noreply, state}
  end

  def handle_info(:read_channel, state), do: read_channel(state)

  # A reply no caller waits for: the drain's, a ping's, or one given up.
  def handle_info({:snakebridge_unclaimed, id, frame}, state) do
    cond do
      # Every request read before the drain has been answered, and its reply
      # sent to its caller before this frame was read (the channel sends in
      # the program's order): what is still expected was refused unrun.
      id == state.draining ->
        {:stop, {:shutdown, :recycled}, state}

      is_tuple(state.ping) and elem(state.ping, 0) === id ->
        {:noreply, %{state | ping: nil}}

      true ->
        dropped(frame)
        {:noreply, %{state | cancelled: Map.delete(state.cancelled, id)}}
    end
  end

  def handle_info({:snakebridge_notice, frame}, state),
    do: notice(Msgpack.decode(frame, handle: SnakeBridge.Backend.PortWorker.handles(self())), state)

  # The last process using a thread key is gone: the program may give its
  # thread to another caller (batched, as releases).
  # Its requests still running are interrupted.
  def handle_info({:DOWN, mon, :process, _pid, _reason}, state) when is_map_key(state.thread_users, mon) do
    {{pid, key}, users} = Map.pop(state.thread_users, mon)
    state = cancel_ids(state, SnakeBridge.Native.channel_forget_owner(state.channel, pid))
    state = %{state | thread_users: users, thread_pids: Map.delete(state.thread_pids, pid)}

    case Map.get(state.thread_keys, key, 1) do
      1 ->
        if state.forgotten == [], do: send(self(), :flush_forgotten)
        {:noreply, %{state | thread_keys: Map.delete(state.thread_keys, key), forgotten: [key | state.forgotten]}}

      n ->
        {:noreply, %{state | thread_keys: Map.put(state.thread_keys, key, n - 1)}}
    end
  end

  def handle_info(:flush_forgotten, state), do: {:noreply, flush(state, :forgotten, "forget", :flush_forgotten)}

  # A callback's answer, for the Python thread waiting for it (from a runner
  # on another node, or one that found the port busy).
  def handle_info({:answer, slot, answer}, state) do
    if write_frame(state, answer_frame(slot, answer, self())) == :busy do
      Process.send_after(self(), {:answer, slot, answer}, 10)
    end

    {:noreply, state}
  end

  # A caller on another node started its call's callback runner: the next
  # callbacks go there (a caller on this node routes them in the channel).
  def handle_info({:route_callbacks, ref, runner}, state),
    do: {:noreply, %{state | remote_routes: Map.put(state.remote_routes, ref, runner)}}

  # Cancels the full pipe could not take, written together when it can.
  def handle_info(:flush_cancels, state), do: {:noreply, flush(state, :cancels, "cancel", :flush_cancels)}

  # Still running a grace period after its cancel: C code that does not return.
  def handle_info({:grace_over, id}, state) do
    if Map.has_key?(state.cancelled, id) and not state.killed do
      Logger.warning(
        "SnakeBridge: port worker #{inspect(self())} (os pid #{state.os_pid}): a request still running " <>
          "#{@grace_ms} ms after its cancel (C code holding the GIL): killed and replaced"
      )

      {:noreply, hard_kill(state)}
    else
      {:noreply, state}
    end
  end

  # Handles collected on this node: their ids wait in the channel
  # (c_src/nif/port_handle.hpp), which says when the first of a batch came and
  # every @release_batch more. Batched: one frame for the handles collected
  # since the last one, or at once when the batch is full (if the pipe is busy
  # then, the retry timer it sets takes the rest).
  def handle_info({:snakebridge_releases, waiting}, state) do
    if waiting >= @release_batch, do: {:noreply, flush_releases(state)}, else: {:noreply, release_soon(state)}
  end

  # Handles collected on another node, each relayed by its SnakeBridge.Workers.
  def handle_info({:snakebridge_release, id}, state) do
    state = release_soon(%{state | releases: [id | state.releases], release_count: state.release_count + 1})
    if state.release_count >= @release_batch, do: {:noreply, flush_releases(state)}, else: {:noreply, state}
  end

  def handle_info(:flush_releases, state), do: {:noreply, flush_releases(%{state | release_timer: false})}

  def handle_info(:liveness, state) do
    Process.send_after(self(), :liveness, @liveness_tick_ms)
    now = System.monotonic_time(:millisecond)

    case state.ping do
      _ when state.killed ->
        {:noreply, state}

      # No answer to the ping, or the port refusing even to take one (its
      # queue to the program full, and not written from, all along: a healthy
      # program drains it in milliseconds), for the whole bound.
      ping when is_tuple(ping) and now - elem(ping, 1) > @liveness_ms ->
        Logger.warning(
          "SnakeBridge: port worker #{inspect(self())} (os pid #{state.os_pid}) did not answer a ping " <>
            "in #{@liveness_ms} ms: killed and replaced"
        )

        {:noreply, hard_kill(state)}

      {id, _sent} when is_integer(id) ->
        {:noreply, state}

      nil when map_size(state.cancelled) == 0 ->
        if SnakeBridge.Native.channel_info(state.channel).pending == 0,
          do: {:noreply, state},
          else: {:noreply, ping(state, nil, now)}

      # No ping out, or the last attempt found the port busy (many requests
      # being written): try now, the clock running from the first attempt.
      nil_or_busy ->
        {:noreply, ping(state, nil_or_busy, now)}
    end
  end

  def handle_info(:check_memory, state) do
    Process.send_after(self(), :check_memory, @memory_check_ms)
    {:noreply, maybe_drain(state)}
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    crash(state, {:exit_status, status})
    {:stop, {:shutdown, {:worker_exited, status}}, state}
  end

  # A write (a queued cancel, a ping, an answer) that reaches the program
  # after this worker SIGKILLed it closes the port with :epipe before the exit
  # status can come: the cause is the kill, reported exactly as its status.
  def handle_info({:EXIT, port, :epipe}, %{port: port, killed: true} = state),
    do: handle_info({port, {:exit_status, 137}}, state)

  def handle_info({:EXIT, port, reason}, %{port: port} = state) do
    crash(state, reason)
    {:stop, {:shutdown, {:worker_exited, reason}}, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp read_channel(state) do
    state.channel
    |> SnakeBridge.Native.channel_read()
    |> Enum.reduce_while({:noreply, state}, fn
      # (Read again after what else is in the mailbox: a large reply does not
      # hold this process.)
      :more, acc ->
        send(self(), :read_channel)
        {:cont, acc}

      # The program closed its end: its exit status is on its way.
      :eof, acc ->
        {:cont, acc}

      frame, {:noreply, state} ->
        case handle_info(frame, state) do
          {:noreply, _} = acc -> {:cont, acc}
          stop -> {:halt, stop}
        end
    end)
  end

  # (Its reply comes unclaimed: no caller expects it.)
  defp ping(state, nil_or_busy, now) do
    id = :atomics.add_get(state.ids, 1, 1)

    ping =
      case write_frame(state, Msgpack.encode!([id, "ping"])) do
        :ok -> {id, now}
        :busy -> busy(nil_or_busy, state.channel, now)
        _closed -> nil
      end

    %{state | ping: ping}
  end

  @impl true
  def terminate(reason, state) do
    Workers.unregister(self())
    crash(state, if(reason == {:shutdown, :recycled}, do: reason, else: :worker_stopped))
    close(state.port)
    SnakeBridge.Native.channel_close(state.channel)
    File.rm(state.fifo)
    File.rm(state.requests)
    forget_shared(state.os_pid)
    :ok
  end

  # The reply of a request whose caller gave up: the arrays its program left
  # in shared memory for it (docs/protocol.md, "Shared bytes") are taken
  # here, so that nothing stays in /dev/shm (decoding takes each, the
  # garbage collector unmaps it).
  defp dropped(frame) do
    if :binary.match(frame, "/snakebridge-") != :nomatch,
      do: Msgpack.decode(frame, handle: SnakeBridge.Backend.PortWorker.handles(self()))

    :ok
  end

  # Shared-memory objects written for the program that it did not read (it
  # died first; docs/protocol.md, "Shared bytes"): named for its OS pid.
  defp forget_shared(os_pid) do
    SnakeBridge.Native.shm_clean("/snakebridge-#{os_pid}-")
  rescue
    _not_loaded -> :ok
  end

  defp close(port) do
    Port.close(port)
  rescue
    # Closed already (the program exited).
    ArgumentError -> :ok
  end

  # The request FIFO still busy at this tick. Bytes the program read since
  # the last look mean it is reading: the clock restarts (back-to-back
  # arguments of 64 MiB keep the queue over its limit most of the time, and a
  # tick would find it busy five times in a row more often than not).
  defp busy(previous, channel, now) do
    {written, _waiting} = SnakeBridge.Native.channel_output(channel)

    case previous do
      {:busy, since, before} when written == before -> {:busy, since, written}
      _progress_or_first -> {:busy, now, written}
    end
  end

  # Writes never block this process: a request FIFO too full (a frozen or
  # swamped program) is :busy and the data is not queued; once the program
  # is gone (this process learns it from the {:exit_status, _} message),
  # :closed.
  defp write_frame(%{channel: channel}, data), do: command(channel, data)

  @doc false
  # A frame (`data`, without its length) to the program of `channel` without
  # blocking: :ok, :busy (too much waits already: nothing was queued) or
  # :closed. (Also how a callback's runner writes its answer,
  # Backend.PortWorker.answer/3.)
  def command(channel, data), do: SnakeBridge.Native.channel_send(channel, outgoing(data))

  @doc false
  # A frame as the NIF takes it: a large one as a list of binaries, which the
  # NIF queues without copying them; a small one as it is (the NIF copies it
  # into one write). (Also how a caller hands over its request,
  # Backend.PortWorker.)
  def outgoing(data) when is_binary(data), do: data

  def outgoing(data) do
    if IO.iodata_length(data) >= @flat_below, do: :erlang.iolist_to_iovec(data), else: data
  end

  # SIGKILL to the program's process group (c_src/nif/port_kill.cpp), once,
  # and only while the port is open (see the module's comment). Its exit then
  # comes as {:exit_status, 137}.
  defp hard_kill(%{killed: true} = state), do: state

  defp hard_kill(%{port: port, os_pid: os_pid} = state) do
    if Port.info(port) != nil do
      _ = SnakeBridge.Native.kill_port_program(os_pid)
      %{state | killed: true}
    else
      state
    end
  end

  defp release_soon(%{release_timer: false} = state) do
    Process.send_after(self(), :flush_releases, @release_batch_ms)
    %{state | release_timer: true}
  end

  defp release_soon(state), do: state

  # (A timer left from a batch flushed early finds the next batch, or none.)
  defp flush_releases(state) do
    state = %{state | releases: SnakeBridge.Native.channel_take_releases(state.channel) ++ state.releases}
    state = flush(state, :releases, "release", :flush_releases)
    # (Not written, the pipe busy: flush/4 set the retry timer.)
    if state.releases == [], do: %{state | release_count: 0}, else: %{state | release_timer: true}
  end

  # One frame [0, op, items] for the items batched in state[field] (handles
  # to release, thread keys to forget). The pipe full: try again shortly, with
  # whatever more has come.
  defp flush(state, field, op, again) do
    items = Map.fetch!(state, field)

    if items != [] and write_frame(state, Msgpack.encode!([0, op, items])) == :busy do
      Process.send_after(self(), again, 10)
      state
    else
      Map.put(state, field, [])
    end
  end

  # The processes whose requests used a thread key (a process and the helpers
  # of its async calls share one), each monitored once.
  defp add_thread_user(state, pid, key) do
    if is_map_key(state.thread_pids, pid) do
      state
    else
      mon = Process.monitor(pid)

      %{
        state
        | thread_pids: Map.put(state.thread_pids, pid, mon),
          thread_users: Map.put(state.thread_users, mon, {pid, key}),
          thread_keys: Map.update(state.thread_keys, key, 1, &(&1 + 1))
      }
    end
  end

  # Requests given up, forgotten in the channel already: interrupt them. The
  # grace starts when the program says the request was running
  # (["interrupting", id]): a request cancelled before it started is answered
  # at once and never killed for. A cancel the pipe cannot take now (the
  # program swamped by a flood of requests, or frozen) waits with the others
  # for the pipe, and is written with them as one frame; a program that stays
  # frozen is killed by the liveness check.
  defp cancel_ids(state, ids) do
    Enum.reduce(ids, state, fn id, state ->
      %{queue_cancel(state, id) | cancelled: Map.put(state.cancelled, id, true)}
    end)
  end

  @doc false
  # The frame answering callback `slot` of `worker`'s program. The program
  # reads at most 1 GiB at once: a larger answer would be skipped, and the
  # Python side left waiting for it, so it becomes a TypeError.
  def answer_frame(slot, answer, worker) do
    frame = encode_answer_frame(slot, answer, worker)

    case IO.iodata_length(frame) do
      size when size > @max_frame ->
        encode_answer_frame(
          slot,
          {:type_error, "the Elixir function's result is #{size} bytes, more than a port worker reads at once (1 GiB)"},
          worker
        )

      _ ->
        frame
    end
  end

  defp encode_answer_frame(slot, answer, worker),
    do: [0x94, Msgpack.encode!(0), Msgpack.encode!("answer"), Msgpack.encode!(slot), encode_answer(answer, worker)]

  # As the tuples the NIF reads (core/callback_answer.hpp); the original error
  # as ext 14, the term itself.
  defp encode_answer({:error, message, stacktrace, original}, _worker) do
    [
      Msgpack.tuple_header(4),
      Msgpack.encode!(:error),
      Msgpack.encode!(message),
      Msgpack.encode!(stacktrace),
      Msgpack.term(original)
    ]
  end

  defp encode_answer(answer, worker),
    do: Msgpack.encode(answer, handle_id: SnakeBridge.Backend.PortWorker.handle_ids(worker))

  defp queue_cancel(%{cancels: []} = state, id) do
    if write_frame(state, Msgpack.encode!([0, "cancel", [id]])) == :busy do
      Process.send_after(self(), :flush_cancels, 10)
      %{state | cancels: [id]}
    else
      state
    end
  end

  defp queue_cancel(state, id), do: %{state | cancels: [id | state.cancels]}

  # Recycling: past max_calls or max_memory, stop taking work and drain.
  defp maybe_drain(%{draining: nil} = state) do
    if recycle?(state) do
      if state.table, do: :ets.delete_object(state.table, {state.index, self()})
      if state.group, do: :pg.leave(SnakeBridge.PG, state.group, self())
      id = :atomics.add_get(state.ids, 1, 1)
      # (On a closed port the program's exit, on its way, stops the worker.)
      write_frame(state, Msgpack.encode!([id, "drain"]))
      %{state | draining: id}
    else
      state
    end
  end

  defp maybe_drain(state), do: state

  defp recycle?(%{max_calls: max} = state) when is_integer(max) do
    SnakeBridge.Native.channel_info(state.channel).calls >= max or recycle?(%{state | max_calls: :infinity})
  end

  defp recycle?(%{max_memory: nil}), do: false
  defp recycle?(%{max_memory: max, os_pid: os_pid}), do: rss_bytes(os_pid) > max

  # Resident set size from /proc (Linux); 0 where it cannot be read.
  defp rss_bytes(os_pid) do
    case File.read("/proc/#{os_pid}/statm") do
      {:ok, statm} ->
        [_size, resident | _] = String.split(statm)
        String.to_integer(resident) * 4096

      _ ->
        0
    end
  end

  # Every request still expected (on this node or another) ends with the crash.
  defp crash(state, reason) do
    for {_dest, ref} <- SnakeBridge.Native.channel_take_all(state.channel) do
      send(ref, {ref, {:error, %WorkerCrashError{reason: reason, worker: self()}}})
    end
  end

  # Frames of id 0 the channel sent here: no caller waits for them.
  # Output outside any request, or of one given up: to the application's output.
  defp notice({:ok, [0, "output", stream, text, _req_id]}, state) do
    send(SnakeBridge.Output, {:snakebridge_output, output_stream(stream), nil, text})
    {:noreply, state}
  end

  # Python called Elixir outside any request (a callback it kept): run by
  # SnakeBridge.Callbacks, which answers here ({:answer, slot, answer}). A
  # callback of a request given up (being interrupted) is dropped. (Those of
  # a request still expected go to its caller from the channel.)
  defp notice({:ok, [0, "callback", req_id, slot, what, args, kwargs]}, state) do
    # (SnakeBridge.Callbacks is not running while the application stops:
    # the callback then waits for its request's cancel, like any callback
    # whose caller is gone.)
    if req_id == nil do
      if pid = Process.whereis(SnakeBridge.Callbacks),
        do: send(pid, {:snakebridge_callback, nil, {:port, self(), slot}, what, args, kwargs})
    end

    {:noreply, state}
  end

  defp notice({:ok, [0, "send", pid, message]}, state) do
    if is_pid(pid), do: send(pid, message)
    {:noreply, state}
  end

  # A cancelled request was running: its grace starts (the program is killed
  # if it has not answered by then: C code holding the GIL).
  defp notice({:ok, [0, "interrupting", id]}, state) do
    if Map.has_key?(state.cancelled, id) and not state.killed,
      do: Process.send_after(self(), {:grace_over, id}, @grace_ms)

    {:noreply, state}
  end

  defp notice(other, state) do
    require Logger
    Logger.warning("snakebridge port worker: unexpected frame #{inspect(other)}")
    {:noreply, state}
  end

  defp output_stream("stderr"), do: :stderr
  defp output_stream(_), do: :stdout
end
