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
        {Task.Supervisor, name: SnakeBridge.CallbackTasks},
        SnakeBridge.Callbacks,
        SnakeBridge.Workers,
        SnakeBridge.WedgeWatch,
        %{id: :pg, start: {:pg, :start_link, [SnakeBridge.PG]}}
      ] ++
        pools

    config = SnakeBridge.Config.interpreter()

    # Checked before any pool starts: the port program links the same
    # libpython and, by default, runs the same interpreter.
    with :ok <- check_nif(),
         :ok <- check_executable(config.python),
         :ok <- SnakeBridge.Config.check_interpreter(config.python),
         {:ok, sup} <- Supervisor.start_link(children, strategy: :one_for_one, name: SnakeBridge.Supervisor),
         :ok <- SnakeBridge.Native.init(config) do
      {:ok, sup}
    else
      {:error, message} when is_binary(message) -> {:error, {:python_failed_to_start, message}}
      {:error, reason} -> {:error, reason}
    end
  end

  # The NIF's @on_load logs why it failed (most often, on a deployment target,
  # the libpython it links is not installed).
  defp check_nif do
    case Code.ensure_loaded(SnakeBridge.Native) do
      {:module, _} ->
        :ok

      {:error, reason} ->
        {:error,
         "the NIF #{Path.join(to_string(:code.priv_dir(:snakebridge)), "snakebridge_nif.so")} did not load " <>
           "(#{inspect(reason)}; the reason is logged above): a missing libpython3.x.so means this machine lacks " <>
           "the libpython SnakeBridge was built against (Debian: libpython3.11), see docs/deploying.md"}
    end
  end

  defp check_executable(python) do
    if File.exists?(python) do
      :ok
    else
      {_, source} = SnakeBridge.Config.python_source()
      {:error, "Python interpreter #{python} does not exist (#{missing_hint(source, SnakeBridge.Config.release?())})"}
    end
  end

  # Under Mix the venv is made with a mix task; in a release there is no Mix,
  # and a relative path is taken from the release's root.
  defp missing_hint(:venv, false), do: "the configured venv is missing: run `mix snakebridge.setup`"

  defp missing_hint(:venv, true) do
    "the venv of `config :snakebridge, venv: #{inspect(Application.get_env(:snakebridge, :venv))}` is missing; " <>
      "in a release a relative venv is taken from the release's root #{SnakeBridge.Config.root()}: " <>
      "copy it into the release with `steps: [:assemble, &SnakeBridge.Release.include_venv/1]`, create it " <>
      "there, or give an absolute `venv:` or `python:` in config/runtime.exs or SNAKEBRIDGE_PYTHON " <>
      "(docs/deploying.md)"
  end

  defp missing_hint(:env, _), do: "SNAKEBRIDGE_PYTHON names no file"

  defp missing_hint(_, false), do: "set SNAKEBRIDGE_PYTHON or `config :snakebridge, python: path`"

  defp missing_hint(:config, true),
    do: "set SNAKEBRIDGE_PYTHON or `config :snakebridge, python: path` in config/runtime.exs (docs/deploying.md)"

  defp missing_hint(:default, true),
    do:
      "install the Python SnakeBridge was built against (Debian: python3 and libpython3.11), or set " <>
        "SNAKEBRIDGE_PYTHON or `config :snakebridge, python: path` in config/runtime.exs (docs/deploying.md)"
end
