defmodule SnakeBridge.Config do
  @moduledoc """
  Where SnakeBridge finds Python, and how it runs it.

  Read once, when the application starts, which first checks every
  `config :snakebridge, ...` key: an unknown key or a value of the wrong type
  stops the application with an `ArgumentError` naming the key (and, for
  `pools:`, the pool and its option), before any pool or Python starts.

    * The interpreter to embed, the first of:
        1. `SNAKEBRIDGE_PYTHON` (environment);
        2. `config :snakebridge, python: path` (a non-empty string);
        3. `<venv>/bin/python` when `config :snakebridge, venv: dir` is set;
        4. `/usr/bin/python3`.
      A virtual environment's `bin/python` makes that environment's
      `site-packages` importable. It must be the same Python version the NIF was
      built against (see `mix compile` output / `docs/getting_started.md`).
    * `config :snakebridge, venv: ".venv"` (string or `nil`, default `nil`) — the
      project's virtual environment. `mix snakebridge.setup` creates it and
      installs the requirements; `mix snakebridge.clean --venv` removes it;
      `SnakeBridge.Release.include_venv/1` copies it into a release.
    * `config :snakebridge, python_requirements: ["numpy==1.24.2", "./py/mylib"]`
      (list of strings, default `[]`) — pip requirement strings (names with
      version specifiers, local directories, wheel files) that
      `mix snakebridge.setup` installs into the venv.
    * `config :snakebridge, venv_system_site_packages: false` (boolean, default
      `false`) — create the venv with `--system-site-packages`, so that packages
      installed in the base interpreter (Debian's `python3-numpy`, say) stay
      importable.
    * `config :snakebridge, python_paths: [dir]` (list, default `[]`) —
      directories put first on `sys.path`, each a string or `{app, path}`:
      `{:my_app, "priv/python"}` is `Application.app_dir(:my_app, "priv/python")`,
      the same directory under Mix and in a release.
    * `PYTHONPATH` (environment, read when the interpreter starts; for a pool,
      its `env:`) is honoured: its directories go on `sys.path` ahead of the
      standard library, after `python_paths`; other `PYTHON*` variables (a stray
      `PYTHONHOME` in particular) are ignored.
    * `config :snakebridge, max_python_threads: 128` (integer from 1 to
      4294967295, default 128) — the most OS threads that run Python in-process.
      Each calling Elixir process's calls run on a thread of its own (an Elixir
      process is a Python thread); past this many processes, processes share
      threads (see `docs/backends.md`, "Threading model").
    * `config :snakebridge, fast_path: true` (boolean, default `true`) — let
      the calling scheduler wait a few microseconds for the reply of a call it
      expects to be quick (the process's last call was), instead of waiting in
      `receive`, and run itself the calls that cannot tell which thread runs
      them (a C function of `math` or `cmath` given numbers; see
      `docs/backends.md`, "Calls that run where they arrive").
    * `config :snakebridge, thread_spin_us: 200` (integer from 0 to 4294967295,
      default 200) — how long a thread that just finished a call polls for the
      next one before it sleeps (0: sleep at once; a sleeping thread takes
      ~20–50 µs to wake on these machines). At most two threads poll at a
      time, and each gives its core away to anything else ready to run on it.
    * `config :snakebridge, pools: [[name: MyApp.Python, size: 4]]` (list of
      keyword lists, default `[]`) — port-worker pools started with the
      application, each with the options of `SnakeBridge.Pool`.

  Relative paths (`python:`, `venv:`, `python_paths:`, and a pool's `python:`,
  `python_paths:` and `cd:`) are taken from the application's root, `root/0`:
  the project's directory when Mix runs, the release's root in a release
  (`docs/deploying.md`). `SNAKEBRIDGE_PYTHON` is taken from the current
  directory, as a shell would.
  """

  @default_python "/usr/bin/python3"

  @doc """
  The directory relative paths in `config :snakebridge` are taken from: the
  current directory while Mix runs a project (`mix compile`, `mix test`,
  `mix run`: the project's root), else `RELEASE_ROOT` — the release's root,
  which its `bin/` scripts set — else the current directory.
  """
  @spec root() :: Path.t()
  def root do
    case System.get_env("RELEASE_ROOT") do
      release when release not in [nil, ""] -> if(mix_project?(), do: File.cwd!(), else: release)
      _ -> File.cwd!()
    end
  end

  @doc "Whether SnakeBridge runs from a release rather than under Mix (see `root/0`)."
  @spec release?() :: boolean()
  def release?, do: System.get_env("RELEASE_ROOT") not in [nil, ""] and not mix_project?()

  defp mix_project? do
    List.keymember?(Application.started_applications(), :mix, 0) and Mix.Project.get() != nil
  end

  @doc """
  A configured path made absolute: a string relative to `root/0`, or
  `{app, path}` inside the application `app`'s directory
  (`Application.app_dir/2`).
  """
  @spec expand(Path.t() | {atom(), Path.t()}) :: Path.t()
  def expand({app, path}) when is_atom(app) do
    Application.app_dir(app, to_string(path))
  rescue
    ArgumentError ->
      raise ArgumentError,
            "#{inspect({app, path})}: no application #{inspect(app)} is in the code path " <>
              "(a {app, path} directory is inside that application's directory)"
  end

  def expand(path), do: Path.expand(to_string(path), root())

  @doc "The interpreter executable in use."
  @spec python() :: String.t()
  def python, do: python_source() |> elem(0)

  @doc """
  The interpreter executable in use and where that choice came from:
  `:env` (`SNAKEBRIDGE_PYTHON`), `:config` (`config :snakebridge, python:`),
  `:venv` (`config :snakebridge, venv:`) or `:default`.
  """
  @spec python_source() :: {String.t(), :env | :config | :venv | :default}
  def python_source do
    cond do
      (env = System.get_env("SNAKEBRIDGE_PYTHON")) not in [nil, ""] -> {Path.expand(env), :env}
      (configured = Application.get_env(:snakebridge, :python)) != nil -> {expand(configured), :config}
      (venv = venv()) != nil -> {Path.join(venv, "bin/python"), :venv}
      true -> {@default_python, :default}
    end
  end

  @doc """
  The configured virtual environment (`config :snakebridge, venv:`) as an absolute
  path (a relative one is taken from `root/0`), or `nil`.
  """
  @spec venv() :: Path.t() | nil
  def venv do
    case Application.get_env(:snakebridge, :venv) do
      nil -> nil
      "" -> nil
      dir -> expand(dir)
    end
  end

  @doc """
  The interpreter a virtual environment is created from: `SNAKEBRIDGE_PYTHON`,
  else `config :snakebridge, python:`, else `/usr/bin/python3` — never the
  configured venv itself.
  """
  @spec base_python() :: String.t()
  def base_python, do: base_python_source() |> elem(0)

  @doc false
  def base_python_source do
    case python_source() do
      {_, :venv} -> {@default_python, :default}
      other -> other
    end
  end

  # Key => type (SnakeBridge.Options); :pools is checked by SnakeBridge.Pool.
  # The NIF reads the two integers as C unsigned ints.
  @keys [
    python: {:or, [:string, {:in, [nil]}]},
    venv: {:or, [:string, {:in, [nil, ""]}]},
    python_requirements: :strings,
    venv_system_site_packages: :boolean,
    python_paths: :paths,
    max_python_threads: 1..4_294_967_295,
    fast_path: :boolean,
    thread_spin_us: 0..4_294_967_295
  ]

  @doc false
  # Checks the application's configuration (`Application.get_all_env(:snakebridge)`):
  # returns it, or raises ArgumentError naming `config :snakebridge, <key>`.
  def validate!(env) when is_list(env) do
    case SnakeBridge.Options.check(Keyword.delete(env, :pools), @keys) do
      :ok ->
        validate_pools!(Keyword.get(env, :pools, []))
        env

      {:error, {:unknown, keys}} ->
        raise ArgumentError,
              "unknown config :snakebridge key#{if length(keys) > 1, do: "s"} " <>
                "#{Enum.map_join(keys, ", ", &inspect/1)} (known: #{Enum.map_join([:pools | Keyword.keys(@keys)], ", ", &inspect/1)})"

      {:error, {:invalid, key, value, expected}} ->
        raise ArgumentError, "config :snakebridge, #{key}: must be #{expected}, got: #{inspect(value)}"
    end
  end

  defp validate_pools!(pools) do
    unless is_list(pools) and Enum.all?(pools, &(is_list(&1) and Keyword.keyword?(&1))) do
      raise ArgumentError,
            "config :snakebridge, pools: must be a list of keyword lists (each the options of a SnakeBridge.Pool), " <>
              "got: #{inspect(pools)}"
    end

    for opts <- pools do
      with {:error, message} <- SnakeBridge.Pool.validate_options(opts),
           do: raise(ArgumentError, "config :snakebridge, pools: " <> message)
    end

    names = Enum.map(pools, & &1[:name])

    case names -- Enum.uniq(names) do
      [] -> :ok
      [name | _] -> raise ArgumentError, "config :snakebridge, pools: more than one pool is named #{inspect(name)}"
    end
  end

  @doc false
  def interpreter do
    %{
      python: python(),
      # SnakeBridge's own Python helpers (introspection) go last.
      paths:
        Enum.map(Application.get_env(:snakebridge, :python_paths, []), &expand/1) ++
          [Path.join(to_string(:code.priv_dir(:snakebridge)), "python")],
      pythonpath: System.get_env("PYTHONPATH") || "",
      max_threads: Application.get_env(:snakebridge, :max_python_threads, 128),
      spin_us: Application.get_env(:snakebridge, :thread_spin_us, 200),
      fast_path: Application.get_env(:snakebridge, :fast_path, true)
    }
  end

  @doc """
  Checks that `python` is the Python build SnakeBridge was compiled against.

  SnakeBridge links one libpython; the configured interpreter only says where
  its standard library and packages are. Another build of the same minor
  version (a pyenv 3.11.7 beside Debian's 3.11.2) would start, then load that
  build's standard library into this libpython and fail in odd ways later. A
  venv made from the right interpreter reports the same version and passes.
  Returns `:ok` or `{:error, message}` saying what to do.
  """
  @spec check_interpreter(Path.t()) :: :ok | {:error, String.t()}
  def check_interpreter(python) do
    linked = SnakeBridge.Native.python_version()
    clean_env = [{"PYTHONHOME", nil}, {"PYTHONPATH", nil}, {"PYTHONSTARTUP", nil}]

    case System.cmd(python, ["-c", "import sys; print(sys.version)"], env: clean_env, stderr_to_stdout: true) do
      {out, 0} ->
        version = out |> String.split("\n", trim: true) |> List.last("") |> String.trim()

        if version == linked do
          :ok
        else
          {:error,
           "Python interpreter #{python} is Python #{version}, but SnakeBridge was built against " <>
             "libpython #{linked}: point `config :snakebridge, python:` (or SNAKEBRIDGE_PYTHON) at that " <>
             "interpreter or a venv made from it, or rebuild SnakeBridge for this one " <>
             "(`SNAKEBRIDGE_PYTHON=#{python} make build` after removing _build/cmake)"}
        end

      {out, status} ->
        {:error, "Python interpreter #{python} does not run (exit status #{status}): #{String.trim(out)}"}
    end
  end
end
