defmodule SnakeBridge.Workers do
  @moduledoc false
  # This node's port workers: a table from worker pid to {port, ids} that lets
  # a caller write its request straight into the worker's port (one process hop
  # fewer; the worker still receives the reply). Also the relay for releases of
  # handles that live in workers on other nodes (a NIF resource can only message
  # a local process).
  use GenServer

  @table __MODULE__

  def start_link(_opts), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  def register(pid, port, ids), do: :ets.insert(@table, {pid, port, ids})
  def unregister(pid), do: :ets.delete(@table, pid)

  @doc "{port, ids} of a worker on this node, or nil."
  def lookup(pid) do
    case :ets.lookup(@table, pid) do
      [{_, port, ids}] -> {port, ids}
      [] -> nil
    end
  rescue
    ArgumentError -> nil
  end

  @impl true
  def init(nil) do
    :ets.new(@table, [:named_table, :public, :set, read_concurrency: true])
    {:ok, nil}
  end

  @impl true
  def handle_info({:snakebridge_release, id, remote}, state) do
    send(remote, {:snakebridge_release, id})
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}
end
