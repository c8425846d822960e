defmodule SnakeBridge.Runtime do
  @moduledoc false
  # Policy for every request, whatever the backend (SnakeBridge.Backend):
  # option validation, routing (in-process, a pool, or the worker holding an
  # object), the one wait for a reply (output, cancel, deadline), retries of
  # requests that never ran, and the one place where a failure's reason
  # becomes an exception. What a request means is the C++ core's business.

  alias SnakeBridge.{Backend, Callbacks, ConversionError, Output, PythonError, TimeoutError, WorkerCrashError}

  @default_timeout 30_000
  # The process running this process's callbacks during its current call.
  @runner_key :snakebridge_callback_runner

  # Retries of requests that did not run (their worker was being recycled):
  # under heavy recycling a request can meet several draining workers in a row.
  @retries 20

  @spec run(tuple(), keyword()) :: {:ok, term()} | {:error, Exception.t()}
  def run(request, opts) do
    case kwargs_problem(request) do
      nil ->
        {mode, timeout, where} = options(opts)
        request |> binaries(Keyword.get(opts, :binaries, :text)) |> dispatch(mode, timeout, where, opts)

      message ->
        {:error, %ArgumentError{message: message}}
    end
  end

  # binaries: :bytes — the Elixir binaries among the values sent (arguments,
  # keyword argument values, a set attribute, globals' values; inside lists,
  # tuples, map values and MapSets) become Python bytes. Names stay text: map
  # keys and keyword names are not touched.
  defp binaries(request, :text), do: request

  defp binaries({:call, target, name, args, kwargs}, :bytes),
    do: {:call, target, name, as_bytes(args), Enum.map(kwargs, fn {k, v} -> {k, as_bytes(v)} end)}

  defp binaries({:setattr, target, name, value}, :bytes), do: {:setattr, target, name, as_bytes(value)}
  defp binaries({op, code, globals}, :bytes) when op in [:eval, :exec], do: {op, code, as_bytes(globals)}
  defp binaries(request, :bytes), do: request

  defp as_bytes(b) when is_binary(b), do: SnakeBridge.bytes(b)
  defp as_bytes(list) when is_list(list), do: as_bytes_list(list)
  defp as_bytes(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> as_bytes_list() |> List.to_tuple()
  defp as_bytes(%MapSet{} = set), do: MapSet.new(set, &as_bytes/1)
  defp as_bytes(%_{} = struct), do: struct
  defp as_bytes(map) when is_map(map), do: Map.new(map, fn {k, v} -> {k, as_bytes(v)} end)
  defp as_bytes(other), do: other

  defp as_bytes_list([h | t]), do: [as_bytes(h) | as_bytes_list(t)]
  defp as_bytes_list(tail), do: tail

  # Keyword arguments must name their parameters: a keyword list, or a map
  # with atom or string keys.
  defp kwargs_problem({:call, _, _, _, kwargs}) when kwargs == [] or kwargs == %{}, do: nil

  defp kwargs_problem({:call, _, _, _, kwargs}) do
    if kwargs?(kwargs),
      do: nil,
      else:
        "keyword arguments must be a keyword list or a map with atom or string keys, got: " <>
          inspect(kwargs, limit: 10)
  end

  defp kwargs_problem(_request), do: nil

  @doc false
  # Whether `kwargs` names its parameters: a list of {name, value} or a map,
  # names atoms or strings. (Also the check of generated wrappers.)
  def kwargs?(kwargs) when is_map(kwargs), do: Enum.all?(Map.keys(kwargs), &(is_atom(&1) or is_binary(&1)))
  def kwargs?(kwargs) when is_list(kwargs), do: Enum.all?(kwargs, &match?({k, _} when is_atom(k) or is_binary(k), &1))
  def kwargs?(_), do: false

  defp dispatch(request, mode, timeout, where, opts) do
    # Objects from a port worker are served by that worker, whatever the backend.
    backend = if where != :nif or Backend.PortWorker.owner(request), do: Backend.PortWorker, else: Backend.InProcess
    attempt(backend, where, request, mode, timeout, opts, @retries)
  end

  defp attempt(backend, where, request, mode, timeout, opts, retries) do
    # The deadline runs from before the start: a port worker's start may itself
    # wait (a busy pipe), and that time counts against the timeout.
    deadline = deadline(timeout)

    reply =
      case backend.start(request, mode, timeout, where) do
        {:done, reply} -> reply
        {:running, job} -> wait(job, deadline, Keyword.get(opts, :cancel_tag))
      end

    case reply do
      {:ok, _} = ok ->
        ok

      {:error, :cancelled} = cancelled ->
        cancelled

      # The worker was stopping to be recycled, or already gone, when the
      # request reached it: it never ran, so it is safe to send it to another.
      {:error, %WorkerCrashError{reason: reason}}
      when reason in [{:shutdown, :recycled}, :noproc] and retries > 0 and where != :nif ->
        attempt(backend, where, request, mode, timeout, opts, retries - 1)

      # A port worker's object among the arguments of an in-process call: the
      # call goes to that worker (objects are served where they live).
      {:error, {:unconvertible, :unconvertible, %SnakeBridge.Object{owner: {:port, _}}, _path}}
      when backend == Backend.InProcess ->
        attempt(Backend.PortWorker, where, request, mode, timeout, opts, retries)

      # An in-process object the embedded interpreter does not hold: it comes
      # from another run of the VM (through binary_to_term/1, say).
      {:error, {:unconvertible, :unconvertible, %SnakeBridge.Object{owner: nil} = o, path}}
      when backend == Backend.InProcess ->
        {:error,
         %ArgumentError{
           message:
             "cannot convert #{inspect(o.__struct__)}<#{o.type}>#{format_path(path)} to Python: this Python object " <>
               "no longer exists (objects live as long as the VM that made them; this one comes from another run, " <>
               "e.g. through :erlang.binary_to_term/1)"
         }}

      {:error, reason} ->
        failed(reason, request, opts)
    end
  end

  # The one wait for a running job's reply: Python's output arrives while we
  # wait (tagged with the job's ref) and is written at once, so it shows live
  # and before the call returns.
  defp wait(job, deadline, cancel_tag) do
    await(job, deadline, cancel_tag)
  after
    job.backend.done(job)
    Callbacks.stop(Process.delete(@runner_key))
  end

  defp run_callback(job, callback) do
    case Process.get(@runner_key) do
      nil ->
        runner = Callbacks.run(nil, callback)
        Process.put(@runner_key, runner)
        job.backend.route_callbacks(job, runner)

      runner ->
        Callbacks.run(runner, callback)
    end
  end

  defp await(%Backend.Job{backend: backend, ref: ref, monitor: mon} = job, deadline, cancel_tag) do
    receive do
      {:snakebridge_output, ^ref, stream, text} ->
        Output.write_caller(stream, text)
        await(job, deadline, cancel_tag)

      {^ref, message} ->
        job |> backend.reply(message) |> overran(deadline)

      {:DOWN, ^mon, :process, _, reason} ->
        job |> backend.reply({:DOWN, reason}) |> overran(deadline)

      # Python called an Elixir function: run by this call's callback runner
      # (SnakeBridge.Callbacks), which acts for this process.
      {:snakebridge_callback, ^ref, _slot, _what, _args, _kwargs} = callback ->
        run_callback(job, callback)
        await(job, deadline, cancel_tag)

      # The same from a port worker's reply channel, still encoded.
      {:snakebridge_port_callback, ^ref, frame, worker} ->
        if callback = SnakeBridge.Backend.PortWorker.callback(ref, frame, worker), do: run_callback(job, callback)
        await(job, deadline, cancel_tag)

      {:snakebridge_cancel, ^cancel_tag} when cancel_tag != nil ->
        # SnakeBridge.cancel/1 from another process (async calls and streams).
        backend.stop(job)
        {:error, :cancelled}
    after
      remaining(deadline) ->
        case backend.stop(job) do
          :stopped -> {:error, :timeout}
          # Finished just as the deadline passed: the reply was on its way.
          {:replied, reply} -> reply
        end
    end
  end

  # A worker's crash that reaches the caller only once its deadline has passed
  # (the receive took the message before the timer fired): the caller overran
  # its timeout first, and the crash may well be the hard kill that timeouts
  # cause. Callers still within their timeout get the WorkerCrashError.
  defp overran({:error, %WorkerCrashError{}} = crash, deadline) do
    if deadline != :infinity and System.monotonic_time(:millisecond) >= deadline, do: {:error, :timeout}, else: crash
  end

  defp overran(reply, _deadline), do: reply

  @doc false
  # The monotonic millisecond by which a call with this timeout must end.
  def deadline(:infinity), do: :infinity
  def deadline(ms), do: System.monotonic_time(:millisecond) + ms

  defp remaining(:infinity), do: :infinity
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  defp options(opts) do
    case parse_options(opts) do
      {:ok, parsed} -> parsed
      {:error, message} -> raise ArgumentError, message
    end
  end

  @doc false
  # What is wrong with a list of SnakeBridge options, or nil. Generated wrappers
  # return it as an error (user input), where the runtime API raises.
  def options_problem(opts) do
    case parse_options(opts) do
      {:ok, _} -> nil
      {:error, message} -> message
    end
  end

  defp parse_options([]), do: {:ok, {:auto, @default_timeout, :nif}}

  defp parse_options(opts) when is_list(opts) do
    Enum.reduce_while(opts, {:ok, {:auto, @default_timeout, :nif}}, fn option, {:ok, acc} ->
      case option(option, acc) do
        :error -> {:halt, {:error, "invalid SnakeBridge option: #{inspect(option)}"}}
        acc -> {:cont, {:ok, acc}}
      end
    end)
  end

  defp option({:return, mode}, {_, t, b}) when mode in [:auto, :ref, :value], do: {mode, t, b}
  defp option({:timeout, :infinity}, {m, _, b}), do: {m, :infinity, b}
  defp option({:timeout, t}, {m, _, b}) when is_integer(t) and t >= 0, do: {m, t, b}
  defp option({:backend, :nif}, {m, t, _}), do: {m, t, :nif}
  defp option({:backend, {:pool, name}}, {m, t, _}), do: {m, t, {:pool, name}}
  defp option({:backend, {:worker, pid}}, {m, t, _}) when is_pid(pid), do: {m, t, {:worker, pid}}
  defp option({:binaries, b}, acc) when b in [:bytes, :text], do: acc
  defp option({:encoded, _}, acc), do: acc
  defp option({:cancel_tag, _}, acc), do: acc
  defp option(_other, _acc), do: :error

  @doc false
  # An {:error, reason} term of a backend, as an exception struct.
  def exception({:error, reason}), do: reason |> failed(nil, []) |> elem(1)

  # ------------------------------------------------------------------ errors

  defp failed(%{__exception__: true} = exception, _request, _opts), do: {:error, exception}

  defp failed({:python, type, python_type, message, traceback}, _request, _opts) do
    {:error, %PythonError{type: type, python_type: python_type, message: message, traceback: traceback}}
  end

  # A snakebridge.ElixirError from a callback: with the original error.
  defp failed({:python, type, python_type, message, traceback, original}, _request, _opts) do
    {:error,
     %PythonError{type: type, python_type: python_type, message: message, traceback: traceback, elixir: original}}
  end

  defp failed({:unconvertible, :unconvertible, %_{} = struct, path}, request, opts) do
    # A struct of the user's: apply SnakeBridge.Encoder and try again (once).
    if not Keyword.get(opts, :encoded, false) and SnakeBridge.Encoder.impl_for(struct) do
      run(encode_request(request), [{:encoded, true} | opts])
    else
      {:error, unconvertible(:unconvertible, struct, path)}
    end
  end

  defp failed({:unconvertible, reason, term, path}, _request, _opts) do
    {:error, unconvertible(reason, term, path)}
  end

  defp failed({:not_array, _python_type, message}, _request, _opts), do: {:error, %ArgumentError{message: message}}

  defp failed({:conversion, type, repr}, _request, _opts) do
    {:error, %ConversionError{python_type: type, repr: repr}}
  end

  # Past the deadline: the Python work was interrupted (on the process's
  # Python thread, or in a worker).
  defp failed(:timeout, request, opts) do
    {:error, %TimeoutError{timeout: Keyword.get(opts, :timeout, @default_timeout), operation: elem(request, 0)}}
  end

  defp failed(:not_started, _request, _opts) do
    {:error, %RuntimeError{message: "SnakeBridge is not started: add :snakebridge to your applications"}}
  end

  defp failed({:badrequest, message}, request, _opts) do
    {:error, %ArgumentError{message: "#{message}: #{inspect(request, limit: 10, printable_limit: 60)}"}}
  end

  defp failed({:unknown_object, id}, _request, _opts) do
    {:error, %ArgumentError{message: "the port worker no longer holds this Python object (handle #{id})"}}
  end

  defp failed({:internal, message}, _request, _opts) do
    {:error, %RuntimeError{message: "SnakeBridge internal error: #{message}"}}
  end

  defp unconvertible(reason, term, path) do
    why =
      case reason do
        :unconvertible -> describe(term)
        :unhashable -> "a map cannot be a Python dict key or set element (it is unhashable)"
        :collision -> "two of its keys are equal in Python (such as 1 and 1.0, 1 and true, or \"a\" and :a)"
        :too_deep -> "it is nested more than 1024 levels deep"
      end

    %ArgumentError{
      message: "cannot convert #{inspect(term, limit: 10, printable_limit: 60)}#{format_path(path)} to Python: #{why}"
    }
  end

  defp describe(term) when is_bitstring(term) and not is_binary(term),
    do: "a bitstring that is not a whole number of bytes has no Python equivalent"

  defp describe(term) when is_list(term), do: "an improper list has no Python equivalent"

  defp describe(%{__struct__: mod, calendar: cal}) when mod in [Date, Time, NaiveDateTime, DateTime] do
    if cal == Calendar.ISO, do: "its fields are out of range for Python", else: "only Calendar.ISO maps to Python"
  end

  defp describe(%SnakeBridge.Object{owner: nil}),
    do: "an in-process object cannot be sent to a port worker (use to_elixir/1 to copy its value)"

  defp describe(%SnakeBridge.Object{owner: {:port, pid}}),
    do: "it lives in another port worker (#{inspect(pid)}); objects of two workers cannot meet in one call"

  defp describe(%SnakeBridge.Array{}),
    do:
      "a SnakeBridge.Array needs a type {:s | :u, 8 | 16 | 32 | 64}, {:f, 16 | 32 | 64} or {:c, 64 | 128}, " <>
        "a shape tuple of non-negative integers, and a binary of exactly as many bytes as they say"

  defp describe(%{__struct__: mod}), do: "#{inspect(mod)} does not implement SnakeBridge.Encoder"
  defp describe(_), do: "it has no Python equivalent"

  defp format_path([]), do: ""

  defp format_path([first | rest]) do
    head =
      cond do
        is_integer(first) -> " (argument #{first}"
        true -> " (at #{inspect(first, limit: 5, printable_limit: 40)}"
      end

    steps =
      if length(rest) > 12 do
        Enum.take(rest, 5) ++ [:__elided__] ++ Enum.take(rest, -5)
      else
        rest
      end

    head <> Enum.map_join(steps, "", &format_step/1) <> ")"
  end

  defp format_step(:__elided__), do: "..."
  defp format_step(step), do: "[#{inspect(step, limit: 5, printable_limit: 40)}]"

  # ------------------------------------------------------------------ encoder

  defp encode_request({:call, target, name, args, kwargs}),
    do: {:call, target, name, encode(args), encode(kwargs)}

  defp encode_request({:setattr, target, name, value}), do: {:setattr, target, name, encode(value)}
  defp encode_request({op, code, globals}) when op in [:eval, :exec], do: {op, code, encode(globals)}
  defp encode_request(other), do: other

  @passthrough [SnakeBridge.Object, SnakeBridge.Bytes, SnakeBridge.Array, MapSet, Date, Time, NaiveDateTime, DateTime]

  @doc false
  def encode(%mod{} = struct) when mod in @passthrough, do: struct

  def encode(%_{} = struct) do
    case SnakeBridge.Encoder.impl_for(struct) do
      nil -> struct
      impl -> encode(impl.encode(struct))
    end
  end

  def encode(map) when is_map(map), do: Map.new(map, fn {k, v} -> {encode(k), encode(v)} end)
  def encode(list) when is_list(list), do: encode_list(list)
  def encode(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> Enum.map(&encode/1) |> List.to_tuple()
  def encode(other), do: other

  defp encode_list([h | t]), do: [encode(h) | encode_list(t)]
  defp encode_list(other), do: other
end
