defmodule SnakeBridge.Workers do
  @moduledoc false
  # This node's port workers: a table from worker pid to {port, ids, channel}
  # that lets a caller write its request straight into the worker's port and
  # take its reply from the worker's reply channel (c_src/nif/reply_channel.hpp),
  # with no hop through the worker process either way. Also the relay for releases of
  # handles that live in workers on other nodes (a NIF resource can only message
  # a local process).
  use GenServer

  @table __MODULE__

  def start_link(_opts), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  # (Watched from here too: a worker killed outright, whose terminate/2 does
  # not run, still has its row dropped and its reply channel closed.)
  def register(pid, port, ids, channel) do
    :ets.insert(@table, {pid, port, ids, channel})
    GenServer.cast(__MODULE__, {:watch, pid})
  end

  def unregister(pid), do: :ets.delete(@table, pid)

  @doc """
  Whether `pid` is a running worker on this node: registered here from its
  start until it stops (or, killed outright, until its DOWN reaches this
  process). Unlike `Process.alive?/1`, which in OTP 21+ is a signal to the
  process and back (the worker has to be scheduled to answer: ~2 µs on a call
  that takes 10), this is a table read.
  """
  def alive?(pid) do
    :ets.member(@table, pid)
  rescue
    ArgumentError -> false
  end

  @doc "{port, ids, channel} of a worker on this node, or nil."
  def lookup(pid) do
    case :ets.lookup(@table, pid) do
      [{_, port, ids, channel}] -> {port, ids, channel}
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
  def handle_cast({:watch, pid}, state) do
    Process.monitor(pid)
    {:noreply, state}
  end

  @impl true
  # Callers do not monitor a worker on this node: every request still
  # expected of one killed outright (its terminate/2 did not send the crash
  # notices) gets its notice from here.
  def handle_info({:DOWN, _mon, :process, pid, reason}, state) do
    with [{_, _port, _ids, channel}] <- :ets.take(@table, pid) do
      for {_dest, ref} <- SnakeBridge.Native.channel_take_all(channel) do
        send(ref, {ref, {:error, %SnakeBridge.WorkerCrashError{reason: reason, worker: pid}}})
      end

      SnakeBridge.Native.channel_close(channel)
    end

    {:noreply, state}
  end

  def handle_info({:snakebridge_release, id, remote}, state) do
    send(remote, {:snakebridge_release, id})
    {:noreply, state}
  end

  def handle_info(_other, state), do: {:noreply, state}
end
