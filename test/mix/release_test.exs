defmodule SnakeBridge.ReleaseTest do
  # `mix release` of an application that uses SnakeBridge, built from the
  # files docs/deploying.md shows (generated modules, its own Python module in
  # priv/python, a venv copied into the release, a pool, config/runtime.exs),
  # released, moved away from where it was built (the project is then
  # deleted) and run from another directory, as `bin/my_app eval` and as
  # `bin/my_app start`, with the page's commands.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers, only: [mix: 3, write_files: 2]

  @moduletag :release
  @moduletag :tmp_dir
  @moduletag timeout: 300_000

  @doc_file Path.expand("../../docs/deploying.md", __DIR__)
  @external_resource @doc_file
  @doc_text File.read!(@doc_file)

  # The page's files: code blocks whose first line is `# <path>`; a later
  # block for the same path replaces an earlier one.
  @doc_files ~r/```(?:elixir|python)\n(# ([\w\/.]+)\n.*?)```/s
             |> Regex.scan(@doc_text, capture: :all_but_first)
             |> Map.new(fn [text, path] -> {path, text} end)

  # The page's `bin/my_app eval '...'` commands.
  @doc_evals Regex.scan(~r/^(?:\$ )?bin\/my_app eval '([^']+)'$/m, @doc_text, capture: :all_but_first) |> List.flatten()

  # What the test adds to see where things run from.
  @probe_files %{
    "priv/python/my_where.py" => """
    import os, sys

    def where():
        \"\"\"Where this module, the interpreter and the process are.\"\"\"
        return {"file": __file__, "prefix": sys.prefix, "executable": sys.executable,
                "path": sys.path, "exe": os.readlink("/proc/self/exe"),
                "introspection": "snakebridge_introspect" in sys.modules}
    """,
    "lib/my_app/where.ex" => """
    defmodule MyApp.Where do
      use SnakeBridge, python: "my_where"
    end
    """,
    "lib/my_app/pool_where.ex" => """
    defmodule MyApp.PoolWhere do
      use SnakeBridge, python: "my_where", backend: {:pool, MyApp.Python}
    end
    """,
    # A Debian package (python3-packaging), seen through the venv's system site-packages.
    "lib/my_app/version.ex" => """
    defmodule MyApp.Version do
      use SnakeBridge, python: "packaging.version", only: ["parse"]
    end
    """,
    "lib/my_app/report.ex" => """
    defmodule MyApp.Report do
      def report do
        result = %{
          dumps: MyApp.Json.dumps!(%{"a" => [1, 2]}),
          loads: MyApp.Json.loads!("[1, 2.5, null]"),
          greeting: MyApp.Helpers.greet!("release"),
          in_process: MyApp.Where.where!(),
          pool: MyApp.PoolWhere.where!(),
          priv_dir: to_string(:code.priv_dir(:snakebridge)),
          cwd: File.cwd!()
        }

        IO.puts("RESULT " <> Base.encode64(:erlang.term_to_binary(result)))
      end
    end
    """,
    "lib/my_app/application.ex" => """
    defmodule MyApp.Application do
      use Application

      def start(_type, _args) do
        # `bin/my_app start` with MY_APP_REPORT=1: report, then stop.
        if System.get_env("MY_APP_REPORT") == "1", do: spawn(fn -> MyApp.Report.report(); System.stop(0) end)
        Supervisor.start_link([], strategy: :one_for_one, name: MyApp.Supervisor)
      end
    end
    """
  }

  test "docs/deploying.md shows a whole project and the commands to check a release" do
    for path <- ~w(mix.exs config/config.exs config/runtime.exs lib/my_app/json.ex lib/my_app/helpers.ex
                   priv/python/my_helpers.py),
        do: assert(Map.has_key?(@doc_files, path), "docs/deploying.md shows no #{path}")

    assert @doc_files["mix.exs"] =~ ~s|{:snakebridge, path: "../snakebridge"}|
    assert "SnakeBridge.Release.check()" in @doc_evals
    assert Enum.any?(@doc_evals, &(&1 =~ "MyApp.Json.dumps!"))
  end

  test "the release of docs/deploying.md runs in-process and in a pool, moved away from its build, with its venv",
       %{tmp_dir: tmp} do
    root = Path.expand("../..", __DIR__)
    project = Path.join(tmp, "build/my_app")
    doc_files = Map.update!(@doc_files, "mix.exs", &String.replace(&1, ~s|"../snakebridge"|, inspect(root)))
    write_files(project, Map.merge(doc_files, @probe_files))

    # The project's venv (no pip: nothing to install; Debian's packages stay visible).
    python = SnakeBridge.Config.python()
    assert {_, 0} = System.cmd(python, ~w(-m venv --system-site-packages --without-pip .venv), cd: project)

    # Compiled and released with the venv's interpreter (no SNAKEBRIDGE_PYTHON).
    assert {out, 0} = mix(project, ["release"], [{"MIX_ENV", "prod"}, {"SNAKEBRIDGE_PYTHON", nil}])
    assert out =~ "copied the venv .venv into the release"

    # Moved elsewhere; the project it was built from is gone.
    release = Path.join(tmp, "deployed/opt/my_app")
    File.mkdir_p!(Path.dirname(release))
    File.rename!(Path.join(project, "_build/prod/rel/my_app"), release)
    File.rm_rf!(Path.join(tmp, "build"))
    cwd = Path.join(tmp, "deployed/elsewhere")
    File.mkdir_p!(cwd)

    eval = ["eval", "{:ok, _} = Application.ensure_all_started(:my_app); MyApp.Report.report()"]
    report = run!(release, cwd, eval)

    # The same answers as Python gives here.
    assert report.dumps == SnakeBridge.call!("json", "dumps", [%{"a" => [1, 2]}])
    assert report.loads == SnakeBridge.call!("json", "loads", ["[1, 2.5, null]"])
    helpers = SnakeBridge.exec!(@doc_files["priv/python/my_helpers.py"])
    assert report.greeting == SnakeBridge.eval!("greet('release')", helpers)

    venv = Path.join(release, ".venv")

    for {where, backend} <- [{report.in_process, "in-process"}, {report.pool, "pool"}] do
      assert where["prefix"] == venv, "#{backend}: #{inspect(where)}"
      assert where["executable"] == Path.join(venv, "bin/python"), backend
      assert where["file"] == Path.join(release, "lib/my_app-0.1.0/priv/python/my_where.py"), backend
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
    assert run!(release, cwd, ["start"], [{"MY_APP_REPORT", "1"}]) == report

    # The page's commands: check/0, and a call from eval.
    for command <- @doc_evals do
      {out, status} = release_cmd(release, cwd, ["eval", command], [])
      assert status == 0, "bin/my_app eval '#{command}':\n#{out}"

      if command =~ "MyApp.Json.dumps!" do
        assert out =~ inspect(SnakeBridge.call!("json", "dumps", [%{"a" => 1}]))
      end
    end

    # check/0 on the target: SnakeBridge starts, the pool answers, the Python
    # modules of the generated modules import (in the pool for MyApp.PoolWhere).
    {out, 0} = release_cmd(release, cwd, ["eval", "SnakeBridge.Release.check()"], [])
    assert out =~ "ok   SnakeBridge starts with #{Path.join(release, ".venv/bin/python")}"
    assert out =~ "ok   pool MyApp.Python answers"
    assert out =~ ~s|ok   MyApp.Helpers (use SnakeBridge, python: "my_helpers")|
    assert out =~ ~s|ok   MyApp.Version (use SnakeBridge, python: "packaging.version")|
    assert out =~ ~s|ok   MyApp.PoolWhere (use SnakeBridge, python: "my_where")|
    refute out =~ "FAIL"

    # config/runtime.exs picks another venv where the release runs.
    other = Path.join(tmp, "deployed/srv/venv")
    assert {_, 0} = System.cmd(python, ["-m", "venv", "--system-site-packages", "--without-pip", other])
    assert run!(release, cwd, eval, [{"MY_APP_VENV", other}]).in_process["prefix"] == other

    # A venv that cannot see Debian's packages: check/0 names what is missing.
    isolated = Path.join(tmp, "deployed/isolated_venv")
    assert {_, 0} = System.cmd(python, ["-m", "venv", "--without-pip", isolated])
    {out, status} = release_cmd(release, cwd, ["eval", "SnakeBridge.Release.check()"], [{"MY_APP_VENV", isolated}])
    assert status != 0
    assert out =~ ~s|FAIL MyApp.Version (use SnakeBridge, python: "packaging.version"): does not import|
    assert out =~ "No module named 'packaging'"
    assert out =~ "ok   MyApp.Json"
    assert out =~ "checks failed"

    # A machine without the libpython the NIF links (here: one that cannot be loaded).
    {soname, 0} = System.cmd(python, ["-c", "import sysconfig; print(sysconfig.get_config_var('INSTSONAME'))"])
    File.mkdir_p!(Path.join(tmp, "deployed/badlib"))
    File.write!(Path.join([tmp, "deployed/badlib", String.trim(soname)]), "")
    env = [{"LD_LIBRARY_PATH", Path.join(tmp, "deployed/badlib")}]
    {out, status} = release_cmd(release, cwd, ["eval", "SnakeBridge.Release.check()"], env)
    assert status != 0
    assert out =~ "FAIL SnakeBridge starts: the NIF #{report.priv_dir}/snakebridge_nif.so did not load"
    assert out =~ String.trim(soname)

    # A missing venv is an error that suits a release: a relative one is taken
    # from the release's root, and there is no mix task to run.
    {out, status} = release_cmd(release, cwd, eval, [{"MY_APP_VENV", "no_such_venv"}])
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

  # Runs bin/my_app (bounded by `timeout`: a hung release must not hang the
  # suite) and decodes the report it printed.
  defp run!(release, cwd, args, env \\ []) do
    {out, status} = release_cmd(release, cwd, args, env)
    assert status == 0, "bin/my_app #{hd(args)} exited with #{status}:\n#{out}"
    assert [_, encoded] = Regex.run(~r/^RESULT (\S+)$/m, out), out
    :erlang.binary_to_term(Base.decode64!(encoded))
  end

  defp release_cmd(release, cwd, args, env) do
    # As on a target: no interpreter chosen by the environment, no distribution.
    env = [{"SNAKEBRIDGE_PYTHON", nil}, {"RELEASE_DISTRIBUTION", "none"}, {"MIX_ENV", nil}] ++ env
    System.cmd("timeout", ["60", Path.join(release, "bin/my_app") | args], cd: cwd, env: env, stderr_to_stdout: true)
  end
end
