defmodule SnakeBridge.Native do
  @moduledoc false
  # The NIF (c_src/nif/). Functions here are replaced when priv/snakebridge_nif.so loads.

  @on_load :load_nif

  def load_nif do
    path = :filename.join(:code.priv_dir(:snakebridge), ~c"snakebridge_nif")

    case :erlang.load_nif(path, 0) do
      :ok -> :ok
      {:error, {:reload, _}} -> :ok
      {:error, reason} -> {:error, reason}
    end
  end

  def init(_config), do: :erlang.nif_error(:nif_not_loaded)
  def bind_thread, do: :erlang.nif_error(:nif_not_loaded)
  def execute(_request, _mode, _binding), do: :erlang.nif_error(:nif_not_loaded)
  def cancel(_job), do: :erlang.nif_error(:nif_not_loaded)
  def callback_reply(_slot, _answer), do: :erlang.nif_error(:nif_not_loaded)
  def callback_poll(_max_us), do: :erlang.nif_error(:nif_not_loaded)
  def route_callbacks(_job, _pid), do: :erlang.nif_error(:nif_not_loaded)
  def stats, do: :erlang.nif_error(:nif_not_loaded)
  def python_version, do: :erlang.nif_error(:nif_not_loaded)
  def port_handle(_owner, _id), do: :erlang.nif_error(:nif_not_loaded)
  def port_handle(_relay, _id, _remote), do: :erlang.nif_error(:nif_not_loaded)
  def port_handle_id(_handle), do: :erlang.nif_error(:nif_not_loaded)
  def kill_port_program(_os_pid), do: :erlang.nif_error(:nif_not_loaded)
  # A port worker's reply channel (c_src/nif/reply_channel.hpp).
  def reply_channel(_path, _max_calls), do: :erlang.nif_error(:nif_not_loaded)
  def channel_read(_channel), do: :erlang.nif_error(:nif_not_loaded)
  def channel_poll(_channel, _id, _max_us), do: :erlang.nif_error(:nif_not_loaded)
  def channel_expect(_channel, _id, _dest, _ref, _owner), do: :erlang.nif_error(:nif_not_loaded)
  def channel_route(_channel, _id, _runner), do: :erlang.nif_error(:nif_not_loaded)
  def channel_forget(_channel, _id), do: :erlang.nif_error(:nif_not_loaded)
  def channel_forget_owner(_channel, _owner), do: :erlang.nif_error(:nif_not_loaded)
  def channel_forget_ref(_channel, _ref), do: :erlang.nif_error(:nif_not_loaded)
  def channel_take_all(_channel), do: :erlang.nif_error(:nif_not_loaded)
  def channel_info(_channel), do: :erlang.nif_error(:nif_not_loaded)
  def channel_close(_channel), do: :erlang.nif_error(:nif_not_loaded)
  def channel_requests(_channel, _path), do: :erlang.nif_error(:nif_not_loaded)
  def channel_send(_channel, _frame), do: :erlang.nif_error(:nif_not_loaded)
  def channel_flush(_channel), do: :erlang.nif_error(:nif_not_loaded)
  def channel_output(_channel), do: :erlang.nif_error(:nif_not_loaded)
  def channel_call(_channel, _id, _ref, _frame, _max_us), do: :erlang.nif_error(:nif_not_loaded)
  def channel_handle(_channel, _id), do: :erlang.nif_error(:nif_not_loaded)
  def channel_take_releases(_channel), do: :erlang.nif_error(:nif_not_loaded)
  def shm_write(_name, _binary), do: :erlang.nif_error(:nif_not_loaded)
  def shm_take(_name, _size), do: :erlang.nif_error(:nif_not_loaded)
  def shm_unlink(_name), do: :erlang.nif_error(:nif_not_loaded)
  def shm_clean(_prefix), do: :erlang.nif_error(:nif_not_loaded)
end
