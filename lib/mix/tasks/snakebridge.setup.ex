defmodule Mix.Tasks.Snakebridge.Setup do
  @shortdoc "Creates the project's Python venv and installs its requirements"
  @moduledoc """
  Creates the project's Python virtual environment, if missing, and installs the
  project's Python requirements into it with pip.

      mix snakebridge.setup
      mix snakebridge.setup --check
      mix snakebridge.setup --no-index --find-links vendor/wheels
      mix snakebridge.setup -r requirements.txt --system-site-packages
      mix snakebridge.setup --venv /opt/myapp/venv --python /usr/bin/python3.11
      mix snakebridge.setup --no-index --no-build-isolation -- --pre

  ## Configuration

      # config/config.exs
      config :snakebridge,
        venv: ".venv",
        python_requirements: ["numpy==1.24.2", "requests>=2.28", "./py/mylib"],
        venv_system_site_packages: false

    * `venv` — the venv's directory, relative to the project root. When set, and
      neither `SNAKEBRIDGE_PYTHON` nor `config :snakebridge, python:` is, SnakeBridge
      embeds `<venv>/bin/python` (see `SnakeBridge.Config`). Default: no venv.
    * `python_requirements` — pip requirement strings: `name`, `name==1.0`,
      `name>=1.0,<2`, a local project directory, a wheel file, `name @ url`.
      Relative paths are relative to the project root.
    * `venv_system_site_packages` — create the venv with
      `--system-site-packages`, so the base interpreter's packages (Debian's
      `python3-numpy`, say) stay importable. Default `false`.

  ## What it does

    1. Creates the venv with `BASE -m venv [--system-site-packages] DIR`, unless
       `DIR/pyvenv.cfg` already exists. `BASE` is `--python`, else
       `SNAKEBRIDGE_PYTHON`, else `config :snakebridge, python:`, else
       `/usr/bin/python3` — never the venv itself. If `ensurepip` fails (no
       network needed normally: Debian's `python3-venv` ships the wheels), the
       venv is created `--without-pip` and pip is installed from a local wheel.
    2. Runs `DIR/bin/python -m pip install [pip options] REQUIREMENTS -r FILE...`
       with the requirements from the configuration and every `--requirement`
       file. Nothing to install: pip is not run.

  An existing venv is kept (remove it with `mix snakebridge.clean --venv` to
  recreate it).

  ## Options

    * `--venv DIR` — the venv's directory (overrides `config :snakebridge, venv:`)
    * `--python PATH` — the base interpreter the venv is created from
    * `--system-site-packages` — create the venv with access to the base
      interpreter's packages (also `config :snakebridge, venv_system_site_packages: true`)
    * `-r FILE`, `--requirement FILE` — also install a requirements file (repeatable)
    * `--no-index` — pip does not use the package index (PyPI)
    * `--find-links DIR` — pip also looks for packages in DIR (repeatable)
    * `--no-build-isolation` — pip builds local source projects with the venv's
      own setuptools/wheel; needed offline, where pip cannot fetch them
    * `--check` — change nothing; verify that the venv exists, its python runs
      and every requirement is installed (see below). Fails with a list of what
      is missing.
    * `-- ARGS` — everything after `--` is passed to `pip install` as is

  ## --check

  Runs a small script with the venv's interpreter that reads the installed
  distributions with `importlib.metadata` and compares them with the
  requirements using `packaging` (pip's copy when `packaging` itself is not
  installed): `name` (installed), `name==1.0`, `name>=1.0` and the other PEP 440
  comparisons; a requirement whose environment marker (`; python_version < "3.9"`)
  is false for that interpreter is not needed and passes; a local path is
  satisfied when a distribution with the project's name (from its
  `pyproject.toml`, `setup.cfg` or `setup.py`, or the wheel's file name) is
  installed. Requirements it cannot judge (URLs without a name) are listed as
  "cannot verify" and do not fail the check.

  ## Offline

  Without a package index, install from local directories or wheels:

      mix snakebridge.setup --no-index --find-links vendor/wheels
      mix snakebridge.setup --system-site-packages --no-index --no-build-isolation

  Building a local source project needs setuptools and `wheel` in the venv;
  a venv made without `--system-site-packages` has no `wheel` offline, so use
  `--system-site-packages` (with Debian's `python3-wheel`) or prebuilt wheels.
  """
  use Mix.Task

  alias SnakeBridge.Venv

  @switches [
    venv: :string,
    python: :string,
    system_site_packages: :boolean,
    requirement: :keep,
    no_index: :boolean,
    find_links: :keep,
    no_build_isolation: :boolean,
    check: :boolean
  ]

  @impl true
  def run(argv) do
    {argv, pip_extra} =
      case Enum.split_while(argv, &(&1 != "--")) do
        {before, ["--" | rest]} -> {before, rest}
        {before, []} -> {before, []}
      end

    {opts, args, invalid} = OptionParser.parse(argv, strict: @switches, aliases: [r: :requirement])
    if invalid != [], do: Mix.raise("Unknown option(s): #{Enum.map_join(invalid, ", ", &elem(&1, 0))}")
    if args != [], do: Mix.raise("Unexpected argument(s): #{Enum.join(args, " ")} (pip arguments go after --)")

    dir = venv_dir!(opts)
    requirements = config_requirements!()
    files = Keyword.get_values(opts, :requirement)

    file_requirements =
      Enum.flat_map(files, fn file ->
        case Venv.read_requirements_file(file) do
          {:ok, reqs} -> reqs
          {:error, message} -> Mix.raise(message)
        end
      end)

    if opts[:check] do
      check(dir, requirements ++ file_requirements)
    else
      setup(dir, opts, requirements, files, length(requirements) + length(file_requirements), pip_extra)
    end
  end

  defp setup(dir, opts, requirements, files, count, pip_extra) do
    info = &Mix.shell().info/1

    system_site =
      Keyword.get(opts, :system_site_packages, Application.get_env(:snakebridge, :venv_system_site_packages, false))

    if Venv.venv?(dir) do
      info.("* using existing venv at #{shown(dir)}")

      if system_site and Venv.system_site_packages?(dir) == false do
        Mix.shell().error(
          "warning: the existing venv was created without --system-site-packages; " <>
            "remove it (`mix snakebridge.clean --venv`) and run setup again to recreate it"
        )
      end

      ok!(Venv.ensure_pip(dir, log: info))
    else
      if File.exists?(dir) and not (File.dir?(dir) and File.ls!(dir) == []) do
        Mix.raise(
          "#{dir} exists but is not a virtual environment (no pyvenv.cfg); move it away or choose another --venv"
        )
      end

      {base, source} =
        case Venv.base_python(dir, opts[:python]) do
          {:ok, base, source} -> {base, source}
          {:error, message} -> Mix.raise(message)
        end

      info.("* creating venv at #{shown(dir)} with #{base} (#{source})#{if system_site, do: " --system-site-packages"}")
      ok!(Venv.create(dir, base, system_site_packages: system_site, log: info))
      ok!(Venv.ensure_pip(dir, log: info))
    end

    if count == 0 and files == [] do
      info.("* no requirements to install (config :snakebridge, python_requirements: [...] or -r FILE)")
    else
      pip_args =
        if(opts[:no_index], do: ["--no-index"], else: []) ++
          Enum.flat_map(Keyword.get_values(opts, :find_links), &["--find-links", &1]) ++
          if(opts[:no_build_isolation], do: ["--no-build-isolation"], else: []) ++ pip_extra

      info.("* installing #{count} requirement#{if count == 1, do: "", else: "s"} into #{shown(dir)}...")
      ok!(Venv.install(dir, requirements, files, pip_args))
    end

    info.("* ok")
    note_interpreter(dir)
    :ok
  end

  defp check(dir, requirements) do
    info = &Mix.shell().info/1
    info.("* checking venv at #{shown(dir)}")

    results =
      case Venv.check(dir, requirements) do
        {:ok, results} -> results
        {:error, message} -> Mix.raise("snakebridge.setup --check: " <> message)
      end

    for {req, status, detail} <- results do
      label = %{ok: "ok", missing: "MISSING", mismatch: "WRONG VERSION", unverifiable: "?"}[status]
      info.("  #{String.pad_trailing(label, 13)} #{req} (#{detail})")
    end

    failed = Enum.filter(results, fn {_, status, _} -> status in [:missing, :mismatch] end)

    if failed != [] do
      Mix.raise(
        "snakebridge.setup --check: #{length(failed)} of #{length(results)} requirements not satisfied in #{shown(dir)}:\n" <>
          Enum.map_join(failed, "\n", fn {req, _, detail} -> "  - #{req}: #{detail}" end) <>
          "\nRun `mix snakebridge.setup` to install them."
      )
    end

    info.(
      "* ok: venv present, #{length(results) - length(Enum.filter(results, &(elem(&1, 1) == :unverifiable)))} of #{length(results)} requirements verified"
    )

    :ok
  end

  defp venv_dir!(opts) do
    case opts[:venv] || Application.get_env(:snakebridge, :venv) do
      dir when dir in [nil, ""] ->
        Mix.raise(
          "No virtual environment configured: set `config :snakebridge, venv: \".venv\"` " <>
            "(and python_requirements: [...]) or pass --venv DIR"
        )

      dir ->
        Path.expand(to_string(dir))
    end
  end

  defp config_requirements! do
    case Application.get_env(:snakebridge, :python_requirements, []) do
      list when is_list(list) ->
        Enum.map(list, fn
          req when is_binary(req) -> req
          other -> Mix.raise("config :snakebridge, python_requirements: must be strings, got: #{inspect(other)}")
        end)

      other ->
        Mix.raise("config :snakebridge, python_requirements: must be a list of strings, got: #{inspect(other)}")
    end
  end

  defp ok!(:ok), do: :ok
  defp ok!({:error, message}), do: Mix.raise(message)

  # Tell the user when SnakeBridge would not embed this venv's interpreter.
  defp note_interpreter(dir) do
    case SnakeBridge.Config.python_source() do
      {python, source} when source in [:env, :config] ->
        from = if source == :env, do: "SNAKEBRIDGE_PYTHON", else: "config :snakebridge, python:"

        if Path.expand(python) != Venv.python(dir) do
          Mix.shell().info("note: SnakeBridge embeds #{python} (#{from}), not this venv's python")
        end

      {python, :venv} ->
        if python != Venv.python(dir) do
          Mix.shell().info("note: SnakeBridge embeds #{python} (config :snakebridge, venv:), not #{Venv.python(dir)}")
        end

      {_, :default} ->
        Mix.shell().info(
          "note: add `config :snakebridge, venv: #{inspect(shown(dir))}` so SnakeBridge embeds this venv's python"
        )
    end
  end

  defp shown(dir), do: Path.relative_to_cwd(dir)
end
