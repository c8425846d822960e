defmodule SnakeBridge.Async do
  @moduledoc """
  A Python call or stream running in the background, delivering its results as
  messages (`SnakeBridge.async_call/5`, `SnakeBridge.async_stream/5`).

  ## Messages

  To the chosen process (`to:` option, default the caller), tagged with the
  handle's `ref`:

    * `async_call`: one `{:snakebridge, ref, {:ok, value} | {:error, exception}}`
    * `async_stream`: `{:snakebridge_stream, ref, {:items, [item]}}` for each batch,
      then `{:snakebridge_stream, ref, :done}` or
      `{:snakebridge_stream, ref, {:error, exception}}` (after the items before it)

  ## Backpressure

  A stream sends at most `:window` batches (default 2) that have not been
  acknowledged: call `SnakeBridge.ack/1` for each `{:items, _}` handled. The
  producer pauses until then, so nothing piles up in the mailbox.

  ## Cancelling

  `SnakeBridge.cancel/1` stops the work (interrupting the Python call, closing
  the generator) and returns `:ok`. No message with the handle's ref arrives
  after it returns; if the caller is the receiving process, messages already
  delivered are removed from its mailbox.

  If the receiving process dies, the work is cancelled.
  """

  alias SnakeBridge.{PythonThread, Runtime}

  defstruct [:ref, :pid, :state, :to, :kind]

  @type t :: %__MODULE__{ref: reference(), pid: pid(), state: :atomics.atomics_ref(), to: pid(), kind: :call | :stream}

  # state: 0 running, 1 sending a message, 2 cancelled, 3 finished
  @running 0
  @sending 1
  @cancelled 2
  @finished 3

  @doc false
  def call(request, opts) do
    {to, opts} = Keyword.pop(opts, :to, self())

    {ref, state, pid} =
      start_helper(to, fn ref, state, _mref ->
        result = Runtime.run(request, [{:cancel_tag, ref} | opts])
        if result != {:error, :cancelled}, do: deliver(state, to, {:snakebridge, ref, result}, @finished)
      end)

    %__MODULE__{ref: ref, pid: pid, state: state, to: to, kind: :call}
  end

  @doc false
  def stream(source, opts) do
    {to, opts} = Keyword.pop(opts, :to, self())
    {window, opts} = Keyword.pop(opts, :window, 2)
    {batch, opts} = Keyword.pop(opts, :batch_size, 1024)

    {ref, state, pid} =
      start_helper(to, fn ref, state, mref ->
        stream_loop(source, opts, batch, window, %{ref: ref, to: to, state: state, mref: mref})
      end)

    %__MODULE__{ref: ref, pid: pid, state: state, to: to, kind: :stream}
  end

  @doc false
  def ack(%__MODULE__{pid: pid, ref: ref}), do: send(pid, {:snakebridge_ack, ref}) && :ok

  @doc false
  def cancel(%__MODULE__{} = async) do
    case :atomics.compare_exchange(async.state, 1, @running, @cancelled) do
      :ok ->
        send(async.pid, {:snakebridge_cancel, async.ref})
        flush(async)

      @sending ->
        Process.sleep(0)
        cancel(async)

      _finished_or_cancelled ->
        flush(async)
    end
  end

  @doc false
  def await(%__MODULE__{kind: :call, ref: ref}, timeout) do
    receive do
      {:snakebridge, ^ref, result} -> result
    after
      timeout -> {:error, %SnakeBridge.TimeoutError{timeout: timeout, operation: :await}}
    end
  end

  # Removes what was delivered before the cancel, when the canceller receives.
  defp flush(%__MODULE__{to: to, ref: ref}) do
    if to == self(), do: flush_ref(ref)
    :ok
  end

  defp flush_ref(ref) do
    receive do
      {:snakebridge, ^ref, _} -> flush_ref(ref)
      {:snakebridge_stream, ^ref, _} -> flush_ref(ref)
    after
      0 -> :ok
    end
  end

  # Sends only while not cancelled; the state change makes the check and the send
  # one step as far as cancel/1 can tell.
  defp deliver(state, to, message, after_state) do
    case :atomics.compare_exchange(state, 1, @running, @sending) do
      :ok ->
        send(to, message)
        :atomics.put(state, 1, after_state)
        true

      _ ->
        false
    end
  end

  # The process doing the work for the caller, on the caller's Python thread
  # (SnakeBridge.PythonThread: its calls run where the caller's do), watching
  # the receiving process: `work.(ref, state, watcher_monitor)`.
  defp start_helper(to, work) do
    ref = make_ref()
    state = :atomics.new(1, signed: false)
    identity = PythonThread.identity()

    pid =
      spawn(fn ->
        PythonThread.adopt(identity)
        work.(ref, state, watch(to, state, ref))
      end)

    {ref, state, pid}
  end

  defp watch(to, state, ref) do
    relay = self()

    # The receiver's death cancels the work (the relay may be busy in Python).
    spawn(fn ->
      rmon = Process.monitor(relay)
      tmon = Process.monitor(to)

      receive do
        {:DOWN, ^tmon, _, _, _} ->
          if :atomics.compare_exchange(state, 1, @running, @cancelled) == :ok,
            do: send(relay, {:snakebridge_cancel, ref})

        {:DOWN, ^rmon, _, _, _} ->
          :ok
      end
    end)
  end

  # ------------------------------------------------------------------ streams

  defp stream_loop(source, opts, batch, window, s) do
    started =
      case source do
        {:object, object} ->
          Runtime.run({:call, "builtins", "iter", [object], []}, [{:return, :ref}, {:cancel_tag, s.ref} | opts])

        {:call, request} ->
          with {:ok, r} <- Runtime.run(request, [{:return, :ref}, {:cancel_tag, s.ref} | opts]),
               do: Runtime.run({:call, "builtins", "iter", [r], []}, [{:return, :ref} | opts])
      end

    case started do
      {:ok, it} ->
        pump(it, opts, 8, batch, window, s)
        Runtime.run({:close, it}, timeout: 5_000)

      error ->
        failed(error, s)
    end
  end

  # A request of the stream failed: the error ends it, unless it was cancelled.
  defp failed({:error, :cancelled}, _s), do: :ok
  defp failed({:error, e}, s), do: deliver(s.state, s.to, {:snakebridge_stream, s.ref, {:error, e}}, @finished)

  defp pump(it, opts, n, max, credits, s) do
    credits = if credits == 0, do: wait_ack(s), else: credits

    if credits == :cancelled do
      :ok
    else
      case Runtime.run({:next, it, n}, [{:cancel_tag, s.ref} | opts]) do
        {:ok, {items, :cont}} ->
          if deliver(s.state, s.to, {:snakebridge_stream, s.ref, {:items, items}}, @running),
            do: pump(it, opts, min(n * 2, max), max, credits - 1, s)

        {:ok, {items, :done}} ->
          last(s, items, :done)

        {:ok, {items, {:error, _} = error}} ->
          last(s, items, {:error, Runtime.exception(error)})

        error ->
          failed(error, s)
      end
    end
  end

  # The final batch (if any), then the stream's end.
  defp last(s, items, ending) do
    if items == [] or deliver(s.state, s.to, {:snakebridge_stream, s.ref, {:items, items}}, @running),
      do: deliver(s.state, s.to, {:snakebridge_stream, s.ref, ending}, @finished)
  end

  defp wait_ack(%{ref: ref}) do
    receive do
      {:snakebridge_ack, ^ref} -> 1
      {:snakebridge_cancel, ^ref} -> :cancelled
    end
  end
end
