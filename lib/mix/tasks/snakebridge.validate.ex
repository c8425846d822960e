defmodule Mix.Tasks.Snakebridge.Validate do
  @shortdoc "Checks a project's SnakeBridge setup (for CI)"
  @moduledoc """
  Checks that a project's SnakeBridge setup works, and exits non-zero with a
  report when something does not; suitable for CI:

      mix snakebridge.validate

  It checks, printing one line per check:

    * the Python interpreter exists, is the build SnakeBridge links
      (`SnakeBridge.Config.check_interpreter/1`), and starts;
    * the requirements of the configured venv (`python_requirements`) are
      installed (what `mix snakebridge.setup --check` reports);
    * every pool in `config :snakebridge, pools:` starts and answers a call;
    * every Python module named by a `use SnakeBridge` module of the project
      imports, and its cached schema matches the installed library;
    * every file `mix snakebridge.gen` wrote (files under `lib/` that start with
      its header, and those in its manifest) imports its Python module and is
      what the same `mix snakebridge.gen` command would write today.
  """
  use Mix.Task

  alias SnakeBridge.{Cache, Config, Venv}

  @impl true
  def run(argv) do
    if argv != [], do: Mix.raise("Usage: mix snakebridge.validate")
    results = compiles() ++ interpreter() ++ started_checks()
    shell = Mix.shell()

    for {status, what, detail} <- results do
      line = "#{if status == :ok, do: "ok  ", else: "FAIL"} #{what}" <> if(detail, do: ": #{detail}", else: "")
      if status == :ok, do: shell.info(line), else: shell.error(line)
    end

    case Enum.count(results, &(elem(&1, 0) != :ok)) do
      0 -> shell.info("* SnakeBridge setup is valid (#{length(results)} checks)")
      n -> Mix.raise("mix snakebridge.validate: #{n} of #{length(results)} checks failed")
    end
  end

  # A project that no longer compiles (a `use SnakeBridge` of a module that is
  # gone fails at compile time) is reported, and the other checks still run, on
  # what was compiled before.
  defp compiles do
    Mix.Task.run("compile", [])
    [{:ok, "project compiles", nil}]
  catch
    kind, reason when kind in [:exit, :error] ->
      detail = if kind == :error, do: Exception.message(reason), else: "see the errors above"
      [{:fail, "project compiles", detail}]
  end

  defp interpreter do
    python = Config.python()

    cond do
      not File.exists?(python) ->
        [{:fail, "interpreter #{python}", "does not exist"}]

      true ->
        case Config.check_interpreter(python) do
          :ok -> [{:ok, "interpreter #{python} matches the linked libpython", nil}]
          {:error, message} -> [{:fail, "interpreter #{python}", message}]
        end
    end
  end

  # Checks that need SnakeBridge (and so Python) running.
  defp started_checks do
    case Application.ensure_all_started(:snakebridge) do
      {:ok, _} ->
        [{:ok, "SnakeBridge starts (interpreter and configured pools)", nil}] ++
          requirements() ++ pools() ++ use_modules() ++ generated_files()

      {:error, reason} ->
        [{:fail, "SnakeBridge starts", inspect(reason)}]
    end
  end

  defp requirements do
    case {Config.venv(), Application.get_env(:snakebridge, :python_requirements, [])} do
      {nil, _} ->
        []

      {_dir, []} ->
        []

      {dir, reqs} ->
        case Venv.check(dir, reqs) do
          {:ok, results} ->
            for {req, status, detail} <- results do
              if status in [:ok, :unverifiable],
                do: {:ok, "requirement #{req}", if(status == :ok, do: nil, else: detail)},
                else: {:fail, "requirement #{req}", detail}
            end

          {:error, message} ->
            [{:fail, "requirements of #{dir}", message}]
        end
    end
  end

  defp pools do
    for pool <- Application.get_env(:snakebridge, :pools, []) do
      name = Keyword.fetch!(pool, :name)

      case SnakeBridge.call("builtins", "len", [[1, 2]], [], backend: {:pool, name}, timeout: 30_000) do
        {:ok, 2} -> {:ok, "pool #{inspect(name)} answers", nil}
        other -> {:fail, "pool #{inspect(name)}", inspect(other)}
      end
    end
  end

  defp project_modules do
    app = Mix.Project.config()[:app]
    Application.load(app)

    case :application.get_key(app, :modules) do
      {:ok, modules} -> modules
      _ -> []
    end
  end

  # The `use SnakeBridge` modules: compiled ones, and those in the sources
  # (a module that no longer compiles has no .beam to ask).
  defp use_modules do
    compiled =
      for module <- project_modules(),
          Code.ensure_loaded?(module),
          function_exported?(module, :__snakebridge__, 1),
          do: {inspect(module), module.__snakebridge__(:python_module), module.__snakebridge__(:schema_cache)}

    in_sources =
      for path <- Path.wildcard("lib/**/*.ex"),
          text = File.read!(path),
          [_, module, python] <-
            Regex.scan(~r/defmodule\s+([\w.]+)\s+do\s+use SnakeBridge,\s*python:\s*"([^"]+)"/, text),
          not Enum.any?(compiled, fn {m, _, _} -> m == module end),
          do: {module, python, nil}

    for {module, python, cache} <- compiled ++ in_sources do
      what = "#{module} (use SnakeBridge, python: #{inspect(python)})"

      case imports(python) do
        {:error, e} ->
          {:fail, what, "the Python module does not import: #{Exception.message(e)}"}

        {:ok, _} ->
          if cache && not SnakeBridge.SchemaCache.fresh?(cache),
            do: {:fail, what, "the installed library changed since it was compiled: run `mix compile`"},
            else: {:ok, what, nil}
      end
    end
  end

  defp imports(python), do: SnakeBridge.call("importlib", "import_module", [python], [], return: :ref)

  defp generated_files do
    listed = Cache.generated_files()
    found = for path <- Path.wildcard("lib/**/*.ex"), Cache.generated?(path), do: path

    (listed ++ found)
    |> Enum.map(&Path.relative_to_cwd(Path.expand(&1)))
    |> Enum.uniq()
    |> Enum.filter(&File.regular?/1)
    |> Enum.map(&check_generated/1)
  end

  # The file's second line records the command that wrote it.
  defp check_generated(path) do
    what = "generated #{path}"

    with {:ok, text} <- File.read(path),
         [_, args] <- Regex.run(~r/^# Regenerate with `mix snakebridge\.gen (.+)`; edits are lost\.$/m, text) do
      try do
        files = Mix.Tasks.Snakebridge.Gen.generate(OptionParser.split(args))

        case List.keyfind(files, path, 0) do
          {^path, ^text} -> {:ok, what, nil}
          {^path, _} -> {:fail, what, "out of date: run `mix snakebridge.gen #{args}`"}
          nil -> {:fail, what, "`mix snakebridge.gen #{args}` no longer writes this file"}
        end
      rescue
        e in Mix.Error -> {:fail, what, Exception.message(e)}
      end
    else
      _ -> {:fail, what, "not written by this version of mix snakebridge.gen (no command recorded): regenerate it"}
    end
  end
end
