defmodule SnakeBridge.Output do
  @moduledoc """
  Writes Python output that belongs to no waiting call.

  What a call prints to `sys.stdout` is written by the calling process itself to
  its group leader (so it shows in IEx, in `ExUnit.CaptureIO`, in a remote
  shell), and `sys.stderr` to `:standard_error`, before the call returns. Output
  with no caller — from threads Python started on its own, from a call after it
  was cancelled, or for a caller whose group leader has gone — comes here and is
  written to this server's group leader (stderr to `:standard_error`).
  """
  use GenServer

  @doc false
  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(nil), do: {:ok, nil}

  @impl true
  def handle_info({:snakebridge_output, :stderr, _pid, text}, state) do
    write(:standard_error, text)
    {:noreply, state}
  end

  def handle_info({:snakebridge_output, :stdout, pid, text}, state) do
    write(group_leader(pid), text)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  @doc false
  # A caller writes output of its own call: stdout to its group leader, stderr
  # to :standard_error. A group leader that has gone (a finished capture_io)
  # passes the text to this server.
  def write_caller(:stdout, text), do: write_to(Process.group_leader(), :stdout, text)
  def write_caller(:stderr, text), do: write_to(:standard_error, :stderr, text)

  @doc false
  # Writes the output messages already in the caller's mailbox for `tag`.
  def flush(tag) do
    receive do
      {:snakebridge_output, ^tag, stream, text} ->
        write_caller(stream, text)
        flush(tag)
    after
      0 -> :ok
    end
  end

  defp write_to(device, stream, text) do
    IO.write(device, text)
  catch
    _kind, _ -> send(__MODULE__, {:snakebridge_output, stream, nil, text})
  end

  # A group leader that has gone (a finished capture_io) must not take this
  # server down: the text goes to our own group leader instead.
  defp write(device, text) do
    IO.write(device, text)
  catch
    _kind, _ -> IO.write(Process.group_leader(), text)
  end

  defp group_leader(pid) when is_pid(pid) do
    case Process.info(pid, :group_leader) do
      {:group_leader, gl} -> gl
      nil -> Process.group_leader()
    end
  end

  defp group_leader(_), do: Process.group_leader()
end
