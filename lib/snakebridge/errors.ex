defmodule SnakeBridge.PythonError do
  @moduledoc """
  A Python exception raised by the code SnakeBridge ran.

    * `type` — the exception class name, `"ValueError"`
    * `python_type` — module-qualified, `"json.decoder.JSONDecodeError"`
    * `message` — `str(exception)`
    * `traceback` — the formatted Python traceback, as Python prints it
    * `elixir` — for a `snakebridge.ElixirError` that an Elixir function
      called from Python raised and Python let escape: the original
      `{kind, reason, stacktrace}` (`kind` is `:error`, `:exit` or `:throw`, as
      in `catch kind, reason`; for `:error`, `reason` is the exception as
      `rescue` sees it, `%KeyError{}` rather than `{:badkey, :k}`); re-raise
      it with `:erlang.raise(kind, reason, stacktrace)`. `nil` otherwise.
  """
  defexception [:type, :python_type, :message, :traceback, elixir: nil]

  @impl true
  def message(%__MODULE__{type: type, message: message}), do: "#{type}: #{message}"
end

defmodule SnakeBridge.TimeoutError do
  @moduledoc """
  A call ran past its `:timeout`. The Python work was interrupted: a
  `snakebridge.Cancelled` exception (a `BaseException`) is raised in the thread
  running it at its next bytecode boundary.
  """
  defexception [:timeout, :operation]

  @impl true
  def message(%__MODULE__{timeout: timeout, operation: op}) do
    "Python #{op || "call"} did not finish within #{timeout} ms and was interrupted"
  end
end

defmodule SnakeBridge.WorkerCrashError do
  @moduledoc "The port worker running a call died (`reason` is its exit status or signal)."
  defexception [:reason, :worker]

  @impl true
  def message(%__MODULE__{reason: reason}), do: "Python worker crashed: #{inspect(reason)}"
end

defmodule SnakeBridge.ConversionError do
  @moduledoc """
  `return: :value` (or `SnakeBridge.to_elixir/2`) met a Python object that has no
  Elixir equivalent. `python_type` names it and `repr` shows it.
  """
  defexception [:python_type, :repr]

  @impl true
  def message(%__MODULE__{python_type: type, repr: repr}) do
    "no Elixir value for Python #{type} object #{repr}; use return: :auto or :ref to get a reference"
  end
end

defmodule SnakeBridge.OverloadError do
  @moduledoc """
  A pool call refused before it was sent: every worker it could go to already
  had `max_in_flight` calls in flight (`SnakeBridge.Pool`, option
  `:max_in_flight`). Nothing ran; the calls in flight are not affected. Retry
  later, add workers, or raise the bound.

    * `pool` — the pool's name
    * `worker` — the least-loaded worker (or, with `affinity: :process`, the
      caller's own)
    * `max_in_flight` — the bound
  """
  defexception [:pool, :worker, :max_in_flight]

  @impl true
  def message(%__MODULE__{pool: pool, max_in_flight: max}) do
    "SnakeBridge pool #{inspect(pool)} is overloaded: its workers have #{max} calls in flight each " <>
      "(max_in_flight); the call was not sent"
  end
end
