defmodule SnakeBridge.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # A bad key or value raises here, before anything starts.
    env = SnakeBridge.Config.validate!(Application.get_all_env(:snakebridge))

    # Pools declared in config (`config :snakebridge, pools: [[name: MyPool, size: 2]]`)
    # start with the application.
    pools = Enum.map(Keyword.get(env, :pools, []), &{SnakeBridge.Pool, &1})

    children =
      [
        SnakeBridge.Output,
        SnakeBridge.Workers,
        SnakeBridge.WedgeWatch,
        %{id: :pg, start: {:pg, :start_link, [SnakeBridge.PG]}}
      ] ++
        pools

    {:ok, sup} = Supervisor.start_link(children, strategy: :one_for_one, name: SnakeBridge.Supervisor)

    config = SnakeBridge.Config.interpreter()

    with :ok <- check_executable(config.python),
         :ok <- SnakeBridge.Config.check_interpreter(config.python),
         :ok <- SnakeBridge.Native.init(config) do
      {:ok, sup}
    else
      {:error, message} -> {:error, {:python_failed_to_start, message}}
    end
  end

  defp check_executable(python) do
    if File.exists?(python) do
      :ok
    else
      hint =
        case SnakeBridge.Config.python_source() do
          {_, :venv} -> "the configured venv is missing: run `mix snakebridge.setup`"
          _ -> "set SNAKEBRIDGE_PYTHON or `config :snakebridge, python: path`"
        end

      {:error, "Python interpreter #{python} does not exist (#{hint})"}
    end
  end
end
