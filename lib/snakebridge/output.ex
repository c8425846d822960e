defmodule SnakeBridge.Output do
  @moduledoc """
  Receives what Python writes to `sys.stdout` and `sys.stderr`.

  Standard output goes to the group leader of the Elixir process whose call
  printed it (so it shows in IEx, in a test's captured IO, or in a remote shell),
  standard error to `:standard_error`. Output from threads that Python started on
  its own goes to this server's group leader.
  """
  use GenServer

  @doc false
  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(nil), do: {:ok, nil}

  @impl true
  def handle_info({:snakebridge_output, :stderr, _pid, text}, state) do
    IO.write(:standard_error, text)
    {:noreply, state}
  end

  def handle_info({:snakebridge_output, :stdout, pid, text}, state) do
    IO.write(group_leader(pid), text)
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp group_leader(pid) when is_pid(pid) do
    case Process.info(pid, :group_leader) do
      {:group_leader, gl} -> gl
      nil -> Process.group_leader()
    end
  end

  defp group_leader(_), do: Process.group_leader()
end
