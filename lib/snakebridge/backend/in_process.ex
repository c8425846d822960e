defmodule SnakeBridge.Backend.InProcess do
  @moduledoc false
  # The interpreter embedded in this BEAM (c_src/nif/). The NIF either answers
  # at once (a call site proven quick runs on the calling scheduler) or runs the
  # request on its thread pool and replies {ref, reply} (docs/backends.md,
  # "Threading model").
  @behaviour SnakeBridge.Backend

  alias SnakeBridge.{Backend.Job, Native, Output}

  @impl true
  def start(request, mode, timeout, _where) do
    case Native.execute(request, mode, if(timeout == :infinity, do: -1, else: timeout)) do
      {:pending, job, ref} ->
        {:running, %Job{backend: __MODULE__, ref: ref, state: job}}

      # Python wrote output during a request run right here: the messages are
      # already in the mailbox, written before the reply is returned.
      {tag, value, :output} ->
        Output.flush(nil)
        {:done, {tag, value}}

      reply ->
        {:done, reply}
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
  def done(_job), do: :ok
end
