defmodule SnakeBridge.Venv do
  @moduledoc """
  The project's Python virtual environment: creating it, installing pip
  requirements into it, and checking that they are installed. Used by
  `mix snakebridge.setup` (which documents the options) and
  `mix snakebridge.clean --venv`.

  Functions return `{:error, message}` with a message meant for a person; the
  tasks turn it into `Mix.raise/1`. Progress goes through the `:log` option (a
  one-argument function, default `IO.puts/1`).

  Requirement checking (`check/2`) reads the installed distributions through
  `importlib.metadata` in the venv's interpreter and compares them with the
  requirement strings itself, for the forms it understands:

    * `name`, `name[extra]` — installed, any version;
    * `name OP version[, OP version...]` with `==`, `!=`, `>=`, `<=`, `>`, `<`,
      `~=`, `===` and `==1.2.*` (PEP 440 ordering of releases, pre-, post- and
      dev-releases);
    * local paths (`./dir`, `/abs/dir`, `file:///...`, `-e ./dir`, wheel and
      sdist files) — satisfied when a distribution of the project's name is
      installed; the name is read from `pyproject.toml` (`[project]` or
      `[tool.poetry]` `name`), `setup.cfg` (`[metadata] name`), a literal
      `name="..."` in `setup.py`, or the file name of a wheel/sdist;
    * `name @ url` — the name is installed.

  Anything else (URLs without a name, environment markers, a project whose name
  cannot be read) is reported as "cannot verify", which is not a failure.
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

  ## Requirements

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

  @doc """
  Parses a requirement string into
  `{:name, name, [{op, version}]}`, `{:path, path}`, `{:named, name, url}` or
  `{:unverifiable, reason}`.
  """
  @spec parse_requirement(String.t()) ::
          {:name, String.t(), [{String.t(), String.t()}]}
          | {:path, Path.t()}
          | {:named, String.t(), String.t()}
          | {:unverifiable, String.t()}
  def parse_requirement(req) do
    req = req |> String.trim() |> String.replace(~r/^(-e|--editable)\s+/, "")

    cond do
      match = Regex.run(~r/^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*@\s*(\S.*)$/, req) ->
        [_, name, _, url] = match
        {:named, name, url}

      String.starts_with?(req, "file:") ->
        {:path, req |> String.replace(~r/^file:(\/\/(localhost)?)?/, "") |> URI.decode()}

      req =~ ~r/^[A-Za-z][A-Za-z0-9+.-]*:\/\// ->
        {:unverifiable, "URL requirement"}

      String.starts_with?(req, [".", "/", "~"]) or String.contains?(req, "/") or
          req =~ ~r/\.(whl|tar\.gz|tgz|zip|tar\.bz2)$/ ->
        {:path, req}

      match = Regex.run(~r/^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*(.*)$/s, req) ->
        [_, name, _, rest] = match
        parse_specifiers(name, rest)

      true ->
        {:unverifiable, "not a requirement SnakeBridge understands"}
    end
  end

  defp parse_specifiers(name, rest) do
    rest = String.trim(rest)

    cond do
      String.contains?(rest, ";") ->
        {:unverifiable, "environment marker"}

      rest == "" ->
        {:name, name, []}

      true ->
        rest = rest |> String.trim_leading("(") |> String.trim_trailing(")")

        specs =
          rest
          |> String.split(",")
          |> Enum.map(&Regex.run(~r/^\s*(===|==|!=|~=|>=|<=|>|<)\s*([A-Za-z0-9.*+!_-]+)\s*$/, &1))

        if Enum.all?(specs),
          do: {:name, name, Enum.map(specs, fn [_, op, v] -> {op, v} end)},
          else: {:unverifiable, "version specifier #{inspect(rest)}"}
    end
  end

  @doc "A distribution name normalized (PEP 503): lower case, runs of `-_.` as `-`."
  @spec normalize(String.t()) :: String.t()
  def normalize(name), do: name |> String.downcase() |> String.replace(~r/[-_.]+/, "-")

  @doc """
  The name of the Python project at a local path (a source directory, wheel or
  sdist), or `nil` if it cannot be read.
  """
  @spec project_name(Path.t()) :: String.t() | nil
  def project_name(path) do
    cond do
      File.dir?(path) ->
        toml_name(Path.join(path, "pyproject.toml")) || cfg_name(Path.join(path, "setup.cfg")) ||
          setup_py_name(Path.join(path, "setup.py"))

      String.ends_with?(path, ".whl") ->
        path |> Path.basename() |> String.split("-") |> hd()

      match = Regex.run(~r/^(.+)-[^-]+\.(tar\.gz|tgz|zip|tar\.bz2)$/, Path.basename(path)) ->
        Enum.at(match, 1)

      true ->
        nil
    end
  end

  defp toml_name(file) do
    sections = ini_sections(file)
    sections["project"]["name"] || sections["tool.poetry"]["name"]
  end

  defp cfg_name(file), do: ini_sections(file)["metadata"]["name"]

  # Top-level `key = "value"` pairs of each [section]: enough for TOML and
  # setup.cfg names (quotes removed).
  defp ini_sections(file) do
    case File.read(file) do
      {:ok, text} ->
        text
        |> String.split(~r/\r?\n/)
        |> Enum.reduce({nil, %{}}, fn line, {section, acc} ->
          header = Regex.run(~r/^\s*\[\s*([^\]\s]+)\s*\]\s*(#.*)?$/, line)

          pair =
            Regex.run(~r/^\s*([A-Za-z0-9_.-]+)\s*[=:]\s*(?:"([^"]*)"|'([^']*)'|([^\s#"'\[{][^#]*?))\s*(#.*)?$/, line)

          cond do
            header ->
              {Enum.at(header, 1), acc}

            section && pair ->
              [_, key | values] = pair
              value = values |> Enum.take(3) |> Enum.find(&(&1 not in [nil, ""]))
              {section, Map.update(acc, section, %{key => value}, &Map.put_new(&1, key, value))}

            true ->
              {section, acc}
          end
        end)
        |> elem(1)

      {:error, _} ->
        %{}
    end
  end

  defp setup_py_name(file) do
    with {:ok, text} <- File.read(file),
         [[_, name]] <- Regex.scan(~r/\bname\s*=\s*["']([A-Za-z0-9._-]+)["']/, text) do
      name
    else
      _ -> nil
    end
  end

  ## Checking

  @doc """
  The installed distributions visible to the venv's interpreter, as
  `%{normalized_name => version}`.
  """
  @spec installed(Path.t()) :: {:ok, %{String.t() => String.t()}} | {:error, String.t()}
  def installed(dir) do
    python = python(dir)

    script = """
    import importlib.metadata as m
    for d in m.distributions():
        name = d.metadata['Name']
        if name:
            print(name + '\\t' + (d.version or ''))
    """

    case cmd(python, ["-c", script]) do
      {out, 0} ->
        map =
          for line <- String.split(out, "\n", trim: true),
              [name, version] <- [String.split(line, "\t", parts: 2)],
              reduce: %{} do
            acc -> Map.put_new(acc, normalize(name), String.trim(version))
          end

        {:ok, map}

      {out, status} ->
        {:error,
         failure("the venv's python does not run", python, ["-c", "import importlib.metadata ..."], status, out)}
    end
  end

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
        with {:ok, installed} <- installed(dir) do
          {:ok, Enum.map(requirements, &check_one(&1, installed))}
        end
    end
  end

  defp check_one(req, installed) do
    case parse_requirement(req) do
      {:name, name, specs} ->
        case installed[normalize(name)] do
          nil ->
            {req, :missing, "not installed"}

          version ->
            case satisfies?(version, specs) do
              true -> {req, :ok, "#{version} installed"}
              false -> {req, :mismatch, "#{version} installed"}
              :unknown -> {req, :unverifiable, "cannot verify: #{version} installed, version not comparable"}
            end
        end

      {:named, name, _url} ->
        installed_name(req, name, "direct reference", installed)

      {:path, path} ->
        full = Path.expand(path)

        cond do
          not File.exists?(full) ->
            {req, :missing, "local path #{full} does not exist"}

          name = project_name(full) ->
            installed_name(req, name, "from local path", installed)

          true ->
            {req, :unverifiable, "cannot verify: cannot read the project name at #{path}"}
        end

      {:unverifiable, reason} ->
        {req, :unverifiable, "cannot verify: #{reason}"}
    end
  end

  defp installed_name(req, name, how, installed) do
    case installed[normalize(name)] do
      nil -> {req, :missing, "#{name} not installed"}
      version -> {req, :ok, "#{name} #{version} installed (#{how})"}
    end
  end

  ## Versions (PEP 440, the common part)

  @doc """
  Whether `version` satisfies every `{op, spec}`; `:unknown` when a version
  cannot be parsed.
  """
  @spec satisfies?(String.t(), [{String.t(), String.t()}]) :: boolean() | :unknown
  def satisfies?(version, specs) do
    Enum.reduce_while(specs, true, fn {op, spec}, true ->
      case compare_spec(version, op, spec) do
        true -> {:cont, true}
        other -> {:halt, other}
      end
    end)
  end

  defp compare_spec(version, "===", spec), do: version == spec

  defp compare_spec(version, op, spec) when op in ["==", "!="] do
    result =
      if String.ends_with?(spec, ".*") do
        prefix = raw_release(String.trim_trailing(spec, ".*"))

        case parse_version(version) do
          {:ok, {release, _, _, _}} when prefix != [] ->
            Enum.take(pad(release, length(prefix)), length(prefix)) == prefix

          _ ->
            :unknown
        end
      else
        with {:ok, v} <- parse_version(version), {:ok, s} <- parse_version(spec), do: v == s
      end

    case {result, op} do
      {bool, "=="} when is_boolean(bool) -> bool
      {bool, "!="} when is_boolean(bool) -> not bool
      _ -> :unknown
    end
  end

  defp compare_spec(version, "~=", spec) do
    release = raw_release(spec)

    if length(release) < 2 do
      :unknown
    else
      prefix = release |> Enum.drop(-1) |> Enum.join(".")

      case compare_spec(version, ">=", spec) do
        true -> compare_spec(version, "==", prefix <> ".*")
        other -> other
      end
    end
  end

  defp compare_spec(version, op, spec) do
    with {:ok, v} <- parse_version(version), {:ok, s} <- parse_version(spec) do
      case op do
        ">=" -> v >= s
        "<=" -> v <= s
        ">" -> v > s
        "<" -> v < s
      end
    else
      _ -> :unknown
    end
  end

  defp raw_release(spec) do
    case Regex.run(~r/^v?(\d+(?:\.\d+)*)/i, spec) do
      [_, r] -> r |> String.split(".") |> Enum.map(&String.to_integer/1)
      nil -> []
    end
  end

  defp pad(list, n) when length(list) >= n, do: list
  defp pad(list, n), do: list ++ List.duplicate(0, n - length(list))

  # A sort key: {release without trailing zeros, pre, post, dev}, where [0] sorts
  # below [1, n] below [2] (lists compare element by element).
  defp parse_version(text) do
    re =
      ~r/^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|alpha|b|beta|c|rc|pre|preview)[-_.]?(\d*))?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d*))?(?:[-_.]?(dev)[-_.]?(\d*))?(?:\+[a-z0-9.]+)?$/i

    case Regex.run(re, String.trim(text)) do
      nil ->
        :error

      m ->
        m = m ++ List.duplicate("", 9 - length(m))
        [_, release, pre_l, pre_n, post_implicit, post_l, post_n, dev_l, dev_n] = m

        release =
          release
          |> String.split(".")
          |> Enum.map(&String.to_integer/1)
          |> Enum.reverse()
          |> Enum.drop_while(&(&1 == 0))
          |> Enum.reverse()

        pre = if pre_l != "", do: [1, pre_rank(String.downcase(pre_l)), int(pre_n)]

        post =
          cond do
            post_implicit != "" -> [1, int(post_implicit)]
            post_l != "" -> [1, int(post_n)]
            true -> nil
          end

        dev = if dev_l != "", do: [1, int(dev_n)]

        pre_key =
          cond do
            pre -> pre
            post == nil and dev != nil -> [0]
            true -> [2]
          end

        {:ok, {release, pre_key, post || [0], dev || [2]}}
    end
  end

  defp pre_rank(l) when l in ["a", "alpha"], do: 0
  defp pre_rank(l) when l in ["b", "beta"], do: 1
  defp pre_rank(_), do: 2

  defp int(""), do: 0
  defp int(s), do: String.to_integer(s)

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
