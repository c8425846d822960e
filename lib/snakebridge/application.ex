defmodule SnakeBridge.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    children = [SnakeBridge.Output]
    {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one, name: SnakeBridge.Supervisor)

    case SnakeBridge.Native.init(SnakeBridge.Config.interpreter()) do
      :ok -> {:ok, sup}
      {:error, message} -> {:error, {:python_failed_to_start, message}}
    end
  end
end
