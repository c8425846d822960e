defmodule SnakeBridge.Venv do
  @moduledoc """
  The project's Python virtual environment: creating it, installing pip
  requirements into it, and checking that they are installed. Used by
  `mix snakebridge.setup` (which documents the options) and
  `mix snakebridge.clean --venv`.

  Functions return `{:error, message}` with a message meant for a person; the
  tasks turn it into `Mix.raise/1`. Progress goes through the `:log` option (a
  one-argument function, default `IO.puts/1`).

  Requirement checking (`check/2`) runs `priv/python/snakebridge_requirements.py`
  with the venv's own interpreter (no NIF involved), which parses each
  requirement with `packaging` (or the copy inside pip, since Debian's
  `python3` lacks `packaging` without `python3-packaging`) and compares it
  with the distributions `importlib.metadata` lists:

    * `name[extras] specifiers` — PEP 440 comparison of the installed version
      (an installed pre-release satisfies `>=`, as for `pip check`; `<2.0` still
      excludes `2.0rc1`);
    * `...; marker` — the environment marker is evaluated for the venv's
      interpreter; a requirement it excludes is not needed there and is
      reported as satisfied;
    * local paths (`./dir`, `/abs/dir`, `file:///...`, `-e ./dir`, wheel and
      sdist files) — satisfied when a distribution of the project's name is
      installed; the name is read from `pyproject.toml` (`[project]` or
      `[tool.poetry]` `name`, with `tomllib`), `setup.cfg` (`[metadata] name`),
      a literal `name="..."` in `setup.py`, or the file name of a wheel/sdist;
    * `name @ url` — the name is installed.

  Anything else (URLs without a name, text that is no requirement, a project
  whose name cannot be read, an installed version that is no PEP 440 version)
  is reported as "cannot verify", which is not a failure. Requirements files
  are read here, in Elixir (`read_requirements_file/1`), because the setup task
  needs their lines before any venv exists.
  """

  @type result :: {String.t(), :ok | :missing | :mismatch | :unverifiable, String.t()}

  @default_python "/usr/bin/python3"
  @wheel_dirs ["/usr/share/python-wheels"]

  ## Locations

  @doc "The interpreter of the virtual environment in `dir`."
  @spec python(Path.t()) :: Path.t()
  def python(dir), do: Path.join(dir, "bin/python")

  @doc "Whether `dir` is a virtual environment (holds `pyvenv.cfg`)."
  @spec venv?(Path.t()) :: boolean()
  def venv?(dir), do: File.regular?(Path.join(dir, "pyvenv.cfg"))

  @doc """
  Whether the venv in `dir` was created with `--system-site-packages`, per its
  `pyvenv.cfg` (`nil` when unknown).
  """
  @spec system_site_packages?(Path.t()) :: boolean() | nil
  def system_site_packages?(dir) do
    case File.read(Path.join(dir, "pyvenv.cfg")) do
      {:ok, text} ->
        case Regex.run(~r/^\s*include-system-site-packages\s*=\s*(\w+)/mi, text) do
          [_, value] -> String.downcase(value) == "true"
          nil -> nil
        end

      {:error, _} ->
        nil
    end
  end

  @doc """
  The base interpreter a venv in `venv_dir` is created from: `explicit` (the
  `--python` option) if given, else `SNAKEBRIDGE_PYTHON`, `config :snakebridge,
  python:`, `/usr/bin/python3` — skipping a candidate that lives inside the venv.

  Returns `{:ok, path, description}` or `{:error, message}` when the interpreter
  does not exist.
  """
  @spec base_python(Path.t(), String.t() | nil) :: {:ok, Path.t(), String.t()} | {:error, String.t()}
  def base_python(venv_dir, explicit \\ nil) do
    {candidate, source} =
      if explicit,
        do: {explicit, "--python"},
        else: SnakeBridge.Config.base_python_source() |> describe_source()

    {candidate, source} =
      if explicit == nil and inside?(resolve(candidate) || Path.expand(candidate), venv_dir),
        do: {@default_python, "default, since #{source} points into the venv"},
        else: {candidate, source}

    cond do
      explicit && inside?(resolve(candidate) || Path.expand(candidate), venv_dir) ->
        {:error, "the base Python interpreter #{candidate} (#{source}) is inside the venv #{venv_dir} it should create"}

      path = resolve(candidate) ->
        {:ok, path, source}

      true ->
        {:error,
         "base Python interpreter not found: #{candidate} (#{source}); pass --python PATH, " <>
           "set SNAKEBRIDGE_PYTHON or `config :snakebridge, python: path`"}
    end
  end

  defp describe_source({python, :env}), do: {python, "SNAKEBRIDGE_PYTHON"}
  defp describe_source({python, :config}), do: {python, "config :snakebridge, python:"}
  defp describe_source({python, _}), do: {python, "default"}

  defp resolve(exe) do
    cond do
      String.contains?(exe, "/") -> if File.regular?(Path.expand(exe)), do: Path.expand(exe)
      true -> System.find_executable(exe)
    end
  end

  defp inside?(path, dir) do
    path = Path.expand(path)
    dir = Path.expand(dir)
    path == dir or String.starts_with?(path, dir <> "/")
  end

  ## Creating

  @doc """
  Creates a venv in `dir` with `base_python -m venv [--system-site-packages] dir`.
  If that fails because `ensurepip` cannot install pip, creates it
  `--without-pip` and installs pip from a local wheel (`ensure_pip/2`).

  Options: `:system_site_packages` (boolean), `:log`.
  """
  @spec create(Path.t(), Path.t(), keyword()) :: :ok | {:error, String.t()}
  def create(dir, base_python, opts \\ []) do
    log = Keyword.get(opts, :log, &IO.puts/1)
    flags = if opts[:system_site_packages], do: ["--system-site-packages"], else: []
    args = ["-m", "venv"] ++ flags ++ [dir]

    case cmd(base_python, args) do
      {_, 0} ->
        if venv?(dir), do: :ok, else: {:error, "#{command(base_python, args)} succeeded but #{dir} holds no pyvenv.cfg"}

      {out, status} ->
        if out =~ "ensurepip" do
          log.("* `#{command(base_python, args)}` could not install pip (ensurepip failed):\n" <> tail(out, 10))
          log.("* retrying without pip; pip will be installed from a local wheel")
          args = ["-m", "venv", "--without-pip"] ++ flags ++ [dir]

          case cmd(base_python, args) do
            {_, 0} ->
              ensure_pip(dir, log: log)

            {out, status} ->
              {:error, failure("creating the virtual environment failed", base_python, args, status, out)}
          end
        else
          {:error, failure("creating the virtual environment failed", base_python, args, status, out)}
        end
    end
  end

  @doc """
  Makes sure `dir/bin/python -m pip` works (with `--system-site-packages` the
  base interpreter's pip counts). If not, installs pip (and setuptools, as
  `ensurepip` would) from the wheels in `/usr/share/python-wheels` (Debian) or
  the interpreter's `ensurepip/_bundled`, without network.
  """
  @spec ensure_pip(Path.t(), keyword()) :: :ok | {:error, String.t()}
  def ensure_pip(dir, opts \\ []) do
    log = Keyword.get(opts, :log, &IO.puts/1)
    python = python(dir)

    case cmd(python, ["-m", "pip", "--version"]) do
      {_, 0} ->
        :ok

      {out, _} ->
        case local_wheels(python) do
          %{"pip" => pip} = wheels ->
            log.("* the venv has no pip; installing it from #{pip}")

            args =
              [Path.join(pip, "pip"), "install", "--no-index", "--disable-pip-version-check", "--no-input"] ++
                Enum.filter([pip, wheels["setuptools"]], & &1)

            case cmd(python, args) do
              {_, 0} -> :ok
              {out, status} -> {:error, failure("installing pip into the venv failed", python, args, status, out)}
            end

          _ ->
            {:error,
             "the venv #{dir} has no pip (`#{python} -m pip --version`: #{String.trim(tail(out, 3))}) and no local pip " <>
               "wheel was found in #{Enum.join(@wheel_dirs, ", ")} or ensurepip/_bundled; install python3-venv " <>
               "(Debian), or recreate the venv with --system-site-packages where the base Python has pip"}
        end
    end
  end

  defp local_wheels(python) do
    bundled =
      case cmd(python, [
             "-c",
             "import ensurepip, os; print(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled'))"
           ]) do
        {out, 0} -> [String.trim(out)]
        _ -> []
      end

    for dir <- @wheel_dirs ++ bundled,
        name <- ["pip", "setuptools"],
        wheel <- Path.wildcard(Path.join(dir, "#{name}-*.whl")),
        reduce: %{} do
      acc -> Map.put_new(acc, name, wheel)
    end
  end

  ## Installing

  @doc """
  Installs `requirements` (strings) and requirement files into the venv in `dir`
  with `dir/bin/python -m pip install`, passing `pip_args` (such as `--no-index`,
  `--find-links DIR`) first.
  """
  @spec install(Path.t(), [String.t()], [Path.t()], [String.t()]) :: :ok | {:error, String.t()}
  def install(dir, requirements, requirement_files, pip_args) do
    python = python(dir)

    args =
      ["-m", "pip", "install", "--disable-pip-version-check", "--no-input"] ++
        pip_args ++ requirements ++ Enum.flat_map(requirement_files, &["-r", &1])

    case cmd(python, args) do
      {_, 0} -> :ok
      {out, status} -> {:error, failure("pip failed", python, args, status, out) <> pip_hints(out, pip_args)}
    end
  end

  defp pip_hints(out, pip_args) do
    [
      {out =~ "invalid command 'bdist_wheel'",
       "hint: building a local source project needs the `wheel` package, which a venv made without " <>
         "--system-site-packages lacks offline; use --system-site-packages (Debian's python3-wheel) " <>
         "or install a prebuilt wheel with --find-links DIR"},
      {out =~ ~r/No matching distribution found for (setuptools|wheel)/ and "--no-build-isolation" not in pip_args,
       "hint: offline, pip cannot fetch the build backend into an isolated build; pass --no-build-isolation"},
      {out =~ "No matching distribution found" and "--no-index" in pip_args,
       "hint: with --no-index pip only looks in the --find-links directories"}
    ]
    |> Enum.filter(&elem(&1, 0))
    |> Enum.map_join(&("\n" <> elem(&1, 1)))
  end

  ## Requirements files

  @doc """
  Reads a pip requirements file: the requirement lines, without comments, blank
  lines and pip options; `-r`/`--requirement` files it names (relative to it)
  are read too, `-e PATH` counts as `PATH`.
  """
  @spec read_requirements_file(Path.t()) :: {:ok, [String.t()]} | {:error, String.t()}
  def read_requirements_file(file), do: read_requirements_file(file, [])

  defp read_requirements_file(file, seen) do
    full = Path.expand(file)

    cond do
      full in seen ->
        {:ok, []}

      true ->
        case File.read(full) do
          {:ok, text} ->
            text
            |> String.replace(~r/\\\r?\n/, "")
            |> String.split(~r/\r?\n/)
            |> Enum.map(&(&1 |> String.replace(~r/(^|\s)#.*$/, "") |> String.trim()))
            |> Enum.reject(&(&1 == ""))
            |> Enum.reduce_while({:ok, []}, fn line, {:ok, acc} ->
              case requirement_line(line) do
                {:file, nested} ->
                  case read_requirements_file(Path.expand(nested, Path.dirname(full)), [full | seen]) do
                    {:ok, reqs} -> {:cont, {:ok, acc ++ reqs}}
                    error -> {:halt, error}
                  end

                {:req, req} ->
                  {:cont, {:ok, acc ++ [req]}}

                :skip ->
                  {:cont, {:ok, acc}}
              end
            end)

          {:error, reason} ->
            {:error, "cannot read requirements file #{file}: #{:file.format_error(reason)}"}
        end
    end
  end

  defp requirement_line(line) do
    case Regex.run(~r/^(-r|--requirement|-c|--constraint|-e|--editable)(?:\s*=\s*|\s+)(.+)$/, line) do
      [_, opt, value] when opt in ["-r", "--requirement"] -> {:file, String.trim(value)}
      [_, opt, _] when opt in ["-c", "--constraint"] -> :skip
      [_, _, value] -> {:req, String.trim(value)}
      nil -> if String.starts_with?(line, "-"), do: :skip, else: {:req, line}
    end
  end

  ## Checking

  @doc """
  Checks, without changing anything, that `dir` is a venv whose python runs and
  that each requirement is installed. Returns `{:ok, results}` (one
  `{requirement, status, detail}` per requirement; status `:ok`, `:missing`,
  `:mismatch` or `:unverifiable`) or `{:error, message}` when the venv itself is
  missing or broken.
  """
  @spec check(Path.t(), [String.t()]) :: {:ok, [result()]} | {:error, String.t()}
  def check(dir, requirements) do
    cond do
      not File.dir?(dir) ->
        {:error, "no virtual environment at #{dir}; run `mix snakebridge.setup` to create it"}

      not venv?(dir) ->
        {:error, "#{dir} is not a virtual environment (no pyvenv.cfg); run `mix snakebridge.setup` to create it"}

      true ->
        python = python(dir)
        args = [checker()]

        case cmd(python, args ++ requirements) do
          {out, 0} ->
            case decode(out, requirements) do
              {:ok, results} ->
                {:ok, results}

              :error ->
                {:error, "#{command(python, args)} ... printed no answer SnakeBridge can read:\n" <> tail(out, 40)}
            end

          {out, status} ->
            {:error, failure("the venv's python cannot check the requirements", python, args ++ ["..."], status, out)}
        end
    end
  end

  defp checker, do: Path.join(to_string(:code.priv_dir(:snakebridge)), "python/snakebridge_requirements.py")

  @statuses %{"ok" => :ok, "missing" => :missing, "mismatch" => :mismatch, "unverifiable" => :unverifiable}

  # The checker's answer: after its header line, one "STATUS\tDETAIL" line per
  # requirement, in order (the format is described in the script). Warnings it
  # printed before the header are skipped.
  defp decode(out, requirements) do
    case :binary.split("\n" <> out, "\nsnakebridge-requirements 1\n") do
      [_, answer] -> decode_lines(requirements, String.split(answer, "\n"), [])
      _ -> :error
    end
  end

  defp decode_lines([], _lines, acc), do: {:ok, Enum.reverse(acc)}

  defp decode_lines([req | reqs], [line | lines], acc) do
    with [status, detail] <- String.split(line, "\t", parts: 2),
         {:ok, status} <- Map.fetch(@statuses, status) do
      detail = Regex.replace(~r/\\([\\tnr])/, detail, &unescape/2)
      decode_lines(reqs, lines, [{req, status, detail} | acc])
    else
      _ -> :error
    end
  end

  defp decode_lines(_reqs, [], _acc), do: :error

  defp unescape(_, "t"), do: "\t"
  defp unescape(_, "n"), do: "\n"
  defp unescape(_, "r"), do: "\r"
  defp unescape(_, "\\"), do: "\\"

  ## Commands

  @doc false
  # Runs a command, stdout and stderr together. PYTHONHOME would point the venv's
  # interpreter elsewhere, so it is removed.
  def cmd(exe, args) do
    exe = if String.contains?(exe, "/"), do: Path.expand(exe), else: exe

    try do
      System.cmd(exe, args, stderr_to_stdout: true, env: [{"PYTHONHOME", nil}, {"PYTHONDONTWRITEBYTECODE", "1"}])
    rescue
      e in ErlangError -> {"cannot run #{exe}: #{inspect(e.original)}", 127}
    end
  end

  @doc false
  def command(exe, args), do: Enum.map_join([exe | args], " ", &quote_arg/1)

  defp quote_arg(arg) do
    if arg =~ ~r/^[A-Za-z0-9_\/.=:,+@%-]+$/, do: arg, else: "'" <> String.replace(arg, "'", "'\\''") <> "'"
  end

  defp failure(what, exe, args, status, out) do
    "#{what} (exit status #{status}): #{command(exe, args)}\n" <> tail(out, 40)
  end

  @doc false
  def tail(out, n) do
    lines = out |> String.trim_trailing() |> String.split("\n")
    skipped = length(lines) - n
    shown = if skipped > 0, do: ["... (#{skipped} earlier lines)" | Enum.take(lines, -n)], else: lines
    Enum.map_join(shown, "\n", &("    " <> &1))
  end
end
