defmodule SnakeBridge.ReleaseTest do
  # `mix release` of an application that uses SnakeBridge (docs/deploying.md):
  # a fresh Mix project with generated modules, its own Python module in its
  # priv/, a venv copied into the release and a pool, released, moved away from
  # where it was built (the project is then deleted) and run from another
  # directory, as `bin/app eval` and as `bin/app start`.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers, only: [mix: 3, write_files: 2]

  @moduletag :release
  @moduletag :tmp_dir
  @moduletag timeout: 300_000

  @files %{
    "mix.exs" => """
    defmodule RelApp.MixProject do
      use Mix.Project

      def project do
        [
          app: :rel_app,
          version: "0.1.0",
          elixir: "~> 1.14",
          deps: [{:snakebridge, path: SNAKEBRIDGE_ROOT}],
          releases: [rel_app: [steps: [:assemble, &SnakeBridge.Release.include_venv/1]]]
        ]
      end

      def application, do: [extra_applications: [:logger], mod: {RelApp.Application, []}]
    end
    """,
    "config/config.exs" => """
    import Config

    config :snakebridge,
      venv: ".venv",
      venv_system_site_packages: true,
      python_paths: [{:rel_app, "priv/python"}],
      pools: [[name: RelApp.Python, size: 1, python_paths: [{:rel_app, "priv/python"}]]]
    """,
    # The venv can be chosen where the release runs.
    "config/runtime.exs" => """
    import Config

    if venv = System.get_env("RELAPP_VENV") do
      config :snakebridge, venv: venv
    end
    """,
    "priv/python/relapp_where.py" => """
    import os, sys

    def where():
        \"\"\"Where this module, the interpreter and the process are.\"\"\"
        return {"file": __file__, "prefix": sys.prefix, "executable": sys.executable,
                "path": sys.path, "exe": os.readlink("/proc/self/exe"),
                "introspection": "snakebridge_introspect" in sys.modules}
    """,
    "lib/rel_app/json.ex" => """
    defmodule RelApp.Json do
      use SnakeBridge, python: "json", only: ["dumps", "loads"]
    end
    """,
    "lib/rel_app/where.ex" => """
    defmodule RelApp.Where do
      use SnakeBridge, python: "relapp_where"
    end
    """,
    # A Debian package (python3-packaging), seen through the venv's system site-packages.
    "lib/rel_app/version.ex" => """
    defmodule RelApp.Version do
      use SnakeBridge, python: "packaging.version", only: ["parse"]
    end
    """,
    "lib/rel_app/pool_where.ex" => """
    defmodule RelApp.PoolWhere do
      use SnakeBridge, python: "relapp_where", backend: {:pool, RelApp.Python}
    end
    """,
    "lib/rel_app.ex" => """
    defmodule RelApp do
      def report do
        result = %{
          dumps: RelApp.Json.dumps!(%{"a" => [1, 2]}),
          loads: RelApp.Json.loads!("[1, 2.5, null]"),
          in_process: RelApp.Where.where!(),
          pool: RelApp.PoolWhere.where!(),
          priv_dir: to_string(:code.priv_dir(:snakebridge)),
          cwd: File.cwd!()
        }

        IO.puts("RESULT " <> Base.encode64(:erlang.term_to_binary(result)))
      end
    end
    """,
    "lib/rel_app/application.ex" => """
    defmodule RelApp.Application do
      use Application

      def start(_type, _args) do
        # `bin/rel_app start` with RELAPP_REPORT=1: report, then stop.
        if System.get_env("RELAPP_REPORT") == "1", do: spawn(fn -> RelApp.report(); System.stop(0) end)
        Supervisor.start_link([], strategy: :one_for_one, name: RelApp.Supervisor)
      end
    end
    """
  }

  test "a release runs generated modules in-process and in a pool, moved away from its build, with its venv",
       %{tmp_dir: tmp} do
    root = Path.expand("../..", __DIR__)
    project = Path.join(tmp, "build/rel_app")

    write_files(
      project,
      Enum.map(@files, fn {path, text} -> {path, String.replace(text, "SNAKEBRIDGE_ROOT", inspect(root))} end)
    )

    # The project's venv (no pip: nothing to install; Debian's packages stay visible).
    python = SnakeBridge.Config.python()
    assert {_, 0} = System.cmd(python, ~w(-m venv --system-site-packages --without-pip .venv), cd: project)

    # Compiled and released with the venv's interpreter (no SNAKEBRIDGE_PYTHON).
    assert {out, 0} = mix(project, ["release"], [{"MIX_ENV", "prod"}, {"SNAKEBRIDGE_PYTHON", nil}])
    assert out =~ "copied the venv .venv into the release"

    # Moved elsewhere; the project it was built from is gone.
    release = Path.join(tmp, "deployed/opt/rel_app")
    File.mkdir_p!(Path.dirname(release))
    File.rename!(Path.join(project, "_build/prod/rel/rel_app"), release)
    File.rm_rf!(Path.join(tmp, "build"))
    cwd = Path.join(tmp, "deployed/elsewhere")
    File.mkdir_p!(cwd)

    report = run!(release, cwd, ["eval", "{:ok, _} = Application.ensure_all_started(:rel_app); RelApp.report()"])

    # The same answers as Python gives here.
    assert report.dumps == SnakeBridge.call!("json", "dumps", [%{"a" => [1, 2]}])
    assert report.loads == SnakeBridge.call!("json", "loads", ["[1, 2.5, null]"])

    venv = Path.join(release, ".venv")

    for {where, backend} <- [{report.in_process, "in-process"}, {report.pool, "pool"}] do
      assert where["prefix"] == venv, "#{backend}: #{inspect(where)}"
      assert where["executable"] == Path.join(venv, "bin/python"), backend
      assert where["file"] == Path.join(release, "lib/rel_app-0.1.0/priv/python/relapp_where.py"), backend
      assert Path.join(release, "lib/snakebridge-0.1.0/priv/python") in where["path"], backend
      # Nothing from where it was built, nor SnakeBridge's sources.
      refute Enum.any?(where["path"], &String.starts_with?(&1, [Path.join(tmp, "build"), Path.join(root, "priv")])),
             "#{backend}: #{inspect(where["path"])}"

      # Generated modules describe nothing at run time.
      refute where["introspection"], backend
    end

    assert report.pool["exe"] == Path.join(release, "lib/snakebridge-0.1.0/priv/snakebridge_port")
    assert report.priv_dir == Path.join(release, "lib/snakebridge-0.1.0/priv")
    assert report.cwd == cwd

    # Booted as a service (embedded mode, the release's boot script).
    assert run!(release, cwd, ["start"], [{"RELAPP_REPORT", "1"}]) == report

    # config/runtime.exs picks another venv where the release runs.
    other = Path.join(tmp, "deployed/other_venv")
    assert {_, 0} = System.cmd(python, ["-m", "venv", "--system-site-packages", "--without-pip", other])
    eval = ["eval", "{:ok, _} = Application.ensure_all_started(:rel_app); RelApp.report()"]
    assert run!(release, cwd, eval, [{"RELAPP_VENV", other}]).in_process["prefix"] == other

    # check/0 on the target: SnakeBridge starts, the pool answers, the Python
    # modules of the generated modules import (in the pool for RelApp.PoolWhere).
    {out, 0} = release_cmd(release, cwd, ["eval", "SnakeBridge.Release.check()"], [])
    assert out =~ "ok   SnakeBridge starts with #{Path.join(release, ".venv/bin/python")}"
    assert out =~ "ok   pool RelApp.Python answers"
    assert out =~ ~s|ok   RelApp.Version (use SnakeBridge, python: "packaging.version")|
    assert out =~ ~s|ok   RelApp.PoolWhere (use SnakeBridge, python: "relapp_where")|
    refute out =~ "FAIL"

    # A venv that cannot see Debian's packages: check/0 names what is missing.
    isolated = Path.join(tmp, "deployed/isolated_venv")
    assert {_, 0} = System.cmd(python, ["-m", "venv", "--without-pip", isolated])
    {out, status} = release_cmd(release, cwd, ["eval", "SnakeBridge.Release.check()"], [{"RELAPP_VENV", isolated}])
    assert status != 0
    assert out =~ ~s|FAIL RelApp.Version (use SnakeBridge, python: "packaging.version"): does not import|
    assert out =~ "No module named 'packaging'"
    assert out =~ "ok   RelApp.Json"
    assert out =~ "checks failed"

    # A missing venv is an error that suits a release: a relative one is taken
    # from the release's root, and there is no mix task to run.
    {out, status} = release_cmd(release, cwd, eval, [{"RELAPP_VENV", "no_such_venv"}])
    assert status != 0
    assert out =~ "Python interpreter #{Path.join(release, "no_such_venv/bin/python")} does not exist"
    assert out =~ "taken from the release's root #{release}"
    assert out =~ "SnakeBridge.Release.include_venv/1"
    refute out =~ "mix snakebridge.setup"
  end

  test "configured paths: relative ones from the project under Mix, {app, path} inside the application" do
    System.put_env("RELEASE_ROOT", "/srv/some_release")
    on_exit(fn -> System.delete_env("RELEASE_ROOT") end)

    # RELEASE_ROOT counts only outside Mix (in a release).
    refute SnakeBridge.Config.release?()
    assert SnakeBridge.Config.root() == File.cwd!()
    assert SnakeBridge.Config.expand("py/lib") == Path.join(File.cwd!(), "py/lib")
    assert SnakeBridge.Config.expand("/abs/py") == "/abs/py"
    assert SnakeBridge.Config.expand({:snakebridge, "priv/python"}) == Application.app_dir(:snakebridge, "priv/python")

    assert_raise ArgumentError, ~r/no application :no_such_app is in the code path/, fn ->
      SnakeBridge.Config.expand({:no_such_app, "priv/python"})
    end
  end

  test "include_venv refuses a release without a usable relative venv", %{tmp_dir: tmp} do
    release = %{path: Path.join(tmp, "rel")}

    for {venv, message} <- [
          {nil, "no venv is configured"},
          {"/opt/venv", "is absolute, so the release uses that path as it is"},
          {"../venv", "lies outside the project"},
          {Path.relative_to_cwd(Path.join(tmp, "missing")), "run `mix snakebridge.setup` first"}
        ] do
      with_venv(venv, fn ->
        assert_raise Mix.Error, ~r/#{Regex.escape(message)}/, fn -> SnakeBridge.Release.include_venv(release) end
      end)
    end

    refute File.exists?(release.path)
  end

  defp with_venv(venv, fun) do
    previous = Application.fetch_env(:snakebridge, :venv)
    Application.put_env(:snakebridge, :venv, venv)

    try do
      fun.()
    after
      case previous do
        {:ok, value} -> Application.put_env(:snakebridge, :venv, value)
        :error -> Application.delete_env(:snakebridge, :venv)
      end
    end
  end

  # Runs bin/rel_app (bounded by `timeout`: a hung release must not hang the
  # suite) and decodes the report it printed.
  defp run!(release, cwd, args, env \\ []) do
    {out, status} = release_cmd(release, cwd, args, env)
    assert status == 0, "bin/rel_app #{hd(args)} exited with #{status}:\n#{out}"
    assert [_, encoded] = Regex.run(~r/^RESULT (\S+)$/m, out), out
    :erlang.binary_to_term(Base.decode64!(encoded))
  end

  defp release_cmd(release, cwd, args, env) do
    # As on a target: no interpreter chosen by the environment, no distribution.
    env = [{"SNAKEBRIDGE_PYTHON", nil}, {"RELEASE_DISTRIBUTION", "none"}, {"MIX_ENV", nil}] ++ env
    System.cmd("timeout", ["60", Path.join(release, "bin/rel_app") | args], cd: cwd, env: env, stderr_to_stdout: true)
  end
end
