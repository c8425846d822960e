defmodule SnakeBridge.Callbacks do
  @moduledoc false
  # Python calling Elixir (docs/callbacks.md).
  #
  # A callback Python makes while a call is in progress reaches the process
  # waiting for that call (SnakeBridge.Runtime's wait), which hands it to the
  # call's runner: a process started for the call at its first callback,
  # linked to the caller, that takes over the caller's Python identity (its
  # Python thread, its pool workers), so that a callback calling Python again
  # runs on the same Python thread, to any depth. The caller keeps waiting
  # with its deadline meanwhile: at its timeout it interrupts Python and kills
  # the runner, which is never left running after its call.
  #
  # A callback Python makes outside any call (a threading.Timer, a handler kept
  # and called later) reaches this process, registered under its name, which
  # runs it in a task under SnakeBridge's supervisor.
  #
  # What Python asks for: `fun` with `args` (a list) and `kwargs` (a map), or
  # `{module, function}` named by text (snakebridge.call). The answer:
  #   {:ok, value}
  #   {:type_error, message}                       arity mismatch: TypeError in Python
  #   {:error, message, stacktrace, {kind, reason, stacktrace}}   snakebridge.ElixirError
  use GenServer

  alias SnakeBridge.{Native, PythonThread}

  def start_link(_opts), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(nil), do: {:ok, nil}

  @impl true
  def handle_info({:snakebridge_callback, nil, slot, what, args, kwargs}, state) do
    Task.Supervisor.start_child(SnakeBridge.CallbackTasks, fn -> answer(slot, invoke(what, args, kwargs)) end)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @doc false
  # Hands a callback of the caller's current call to its runner (started at
  # the first, and then told to the backend, which sends it the next
  # callbacks directly); returns the runner.
  def run(nil, callback) do
    caller = self()
    identity = PythonThread.identity()
    callers = [caller | Process.get(:"$callers", [])]

    runner =
      spawn_link(fn ->
        Process.put(:"$callers", callers)
        PythonThread.adopt(identity)
        loop()
      end)

    run(runner, callback)
  end

  def run(runner, callback) do
    send(runner, callback)
    runner
  end

  @doc false
  # The call is over: its runner goes (a callback still running there was
  # abandoned by Python: the call's timeout, or its cancel).
  def stop(nil), do: :ok

  def stop(runner) do
    Process.unlink(runner)
    Process.exit(runner, :kill)
    :ok
  end

  defp loop do
    receive do
      {:snakebridge_callback, _ref, slot, what, args, kwargs} ->
        run_one(slot, what, args, kwargs)
        loop()

      # From a port worker's reply channel, once the call routed its callbacks here.
      {:snakebridge_port_callback, ref, frame, worker} ->
        with {:snakebridge_callback, _ref, slot, what, args, kwargs} <-
               SnakeBridge.Backend.PortWorker.callback(ref, frame, worker),
             do: answer(slot, invoke(what, args, kwargs))

        loop()
    end
  end

  # A runner's callback. In-process, once it has answered, it polls up to
  # @poll_us for the same call's next callback, which the Python thread then
  # hands over without a message (Native.callback_poll/1): a sort key or a
  # reduce calls back as soon as it has its answer.
  @poll_us 50

  defp run_one({:port, _, _} = slot, what, args, kwargs), do: answer(slot, invoke(what, args, kwargs))

  defp run_one(slot, what, args, kwargs) do
    answer(slot, invoke(what, args, kwargs))

    case Native.callback_poll(@poll_us) do
      {:snakebridge_callback, _ref, slot, what, args, kwargs} -> run_one(slot, what, args, kwargs)
      :none -> :ok
    end
  end

  # In-process, the slot is the NIF's; through a worker, the answer goes into
  # its port (Backend.PortWorker.answer/3).
  defp answer({:port, worker, slot}, answer), do: SnakeBridge.Backend.PortWorker.answer(worker, slot, answer)
  defp answer(slot, answer), do: Native.callback_reply(slot, answer)

  @doc false
  def invoke(what, args, kwargs) do
    case target(what, args, kwargs) do
      {:ok, fun, args} ->
        try do
          {:ok, apply(fun, args)}
        catch
          kind, reason -> error(kind, reason, __STACKTRACE__)
        end

      refused ->
        refused
    end
  end

  # What to apply, and to what: a fun of arity n takes the n positional
  # arguments (and no keywords), one of arity n + 1 also the keywords as a map.
  defp target(fun, args, kwargs) when is_function(fun) do
    {:arity, arity} = Function.info(fun, :arity)
    n = length(args)

    cond do
      arity == n and kwargs == %{} ->
        {:ok, fun, args}

      arity == n + 1 ->
        {:ok, fun, args ++ [kwargs]}

      arity == n ->
        {:type_error,
         "#{inspect(fun)} takes no keyword arguments (#{Enum.join(Map.keys(kwargs), ", ")} given); " <>
           "a function of arity #{n + 1} receives them as a map"}

      true ->
        {:type_error, "#{inspect(fun)} takes #{arity} positional argument(s) but #{n} were given"}
    end
  end

  defp target({module, function}, args, _kwargs) when is_binary(module) and is_binary(function) do
    case {module_atom(module), existing_atom(function)} do
      {{:ok, mod}, {:ok, fun}} ->
        if Code.ensure_loaded?(mod) and function_exported?(mod, fun, length(args)),
          do: {:ok, Function.capture(mod, fun, length(args)), args},
          else: undefined(module, function, length(args))

      _ ->
        undefined(module, function, length(args))
    end
  end

  defp target(what, _args, _kwargs), do: {:type_error, "not an Elixir function: #{inspect(what)}"}

  # "Enum" and "Elixir.Enum" are the Elixir module; "lists" or ":lists" the Erlang one.
  defp module_atom(":" <> erlang), do: existing_atom(erlang)
  defp module_atom("Elixir." <> _ = name), do: existing_atom(name)

  defp module_atom(<<first, _::binary>> = name) when first in ?A..?Z, do: existing_atom("Elixir." <> name)
  defp module_atom(name), do: existing_atom(name)

  defp existing_atom(text) do
    {:ok, String.to_existing_atom(text)}
  rescue
    ArgumentError -> :error
  end

  defp undefined(module, function, arity) do
    error(:error, %ArgumentError{message: "no Elixir function #{module}.#{function}/#{arity}"}, [])
  end

  # An error's reason as the exception Elixir code would rescue ({:badkey, :k}
  # becomes %KeyError{}); exits and throws as they are.
  defp error(kind, reason, stacktrace) do
    reason = Exception.normalize(kind, reason, stacktrace)

    {:error, Exception.format_banner(kind, reason, stacktrace), Exception.format_stacktrace(stacktrace),
     {kind, reason, stacktrace}}
  end
end
