defmodule SnakeBridge.Config do
  @moduledoc """
  Where SnakeBridge finds Python, and how it runs it.

  Read once, when the application starts:

    * `SNAKEBRIDGE_PYTHON` (environment) or `config :snakebridge, python: path` —
      the interpreter to embed; the environment variable wins. Default
      `/usr/bin/python3`. A virtual environment's `bin/python` makes that
      environment's `site-packages` importable. It must be the same Python version
      the NIF was built against (see `mix compile` output / `docs/getting_started.md`).
    * `config :snakebridge, python_paths: [dir]` — directories put first on `sys.path`.
    * `PYTHONPATH` (environment) is honoured; other `PYTHON*` variables (a stray
      `PYTHONHOME` in particular) are ignored.
    * `config :snakebridge, max_python_threads: 128` — the most threads that run
      Python calls concurrently off the schedulers (see `docs/backends.md`).
    * `config :snakebridge, fast_path: true` — let calls that proved quick run on the
      calling scheduler (about 1 µs instead of a thread hand-off).
  """

  @default_python "/usr/bin/python3"

  @doc "The interpreter executable in use."
  @spec python() :: String.t()
  def python do
    System.get_env("SNAKEBRIDGE_PYTHON") || Application.get_env(:snakebridge, :python, @default_python)
  end

  @doc false
  def interpreter do
    %{
      python: python(),
      # SnakeBridge's own Python helpers (introspection) go last.
      paths:
        Enum.map(Application.get_env(:snakebridge, :python_paths, []), &to_string/1) ++
          [Path.join(to_string(:code.priv_dir(:snakebridge)), "python")],
      pythonpath: System.get_env("PYTHONPATH") || "",
      max_threads: Application.get_env(:snakebridge, :max_python_threads, 128),
      fast_path: Application.get_env(:snakebridge, :fast_path, true)
    }
  end
end
