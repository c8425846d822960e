defmodule SnakeBridge.Backend.InProcess do
  @moduledoc false
  # The interpreter embedded in this BEAM (c_src/nif/). A request runs on the
  # calling process's own Python thread (SnakeBridge.PythonThread); the NIF
  # returns its reply when it came within microseconds, else the thread
  # replies {ref, reply} (docs/backends.md, "Threading model").
  @behaviour SnakeBridge.Backend

  alias SnakeBridge.{Backend.Job, Native, Output, PythonThread}

  @impl true
  def start(request, mode, _timeout, _where) do
    with {:ok, binding} <- PythonThread.binding() do
      case Native.execute(request, mode, binding) do
        {:pending, job, ref} ->
          {:running, %Job{backend: __MODULE__, ref: ref, state: job}}

        # Python wrote output: the messages, tagged ref, are already in the
        # mailbox, written before the reply is returned.
        {tag, value, ref} ->
          Output.flush(ref)
          {:done, {tag, value}}

        reply ->
          {:done, reply}
      end
    else
      error -> {:done, error}
    end
  end

  @impl true
  def reply(_job, reply), do: reply

  # Cancels the job; output it sent before that is written, none follows.
  @impl true
  def stop(%Job{state: job, ref: ref}) do
    case Native.cancel(job) do
      :cancelled ->
        Output.flush(ref)
        :stopped

      :sent ->
        receive do
          {^ref, reply} ->
            Output.flush(ref)
            {:replied, reply}
        end
    end
  end

  @impl true
  def route_callbacks(%Job{state: job}, runner), do: Native.route_callbacks(job, runner)

  @impl true
  def done(_job), do: :ok
end
