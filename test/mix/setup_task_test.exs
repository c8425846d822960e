defmodule Mix.Tasks.Snakebridge.SetupTest do
  # Runs the task for real (python -m venv, pip) inside a temporary directory.
  # Changes the current directory, the application environment and
  # SNAKEBRIDGE_PYTHON, hence async: false.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers, only: [mix_output: 0, write_files: 2]

  alias SnakeBridge.Venv

  @moduletag timeout: 120_000
  @keys [:venv, :python_requirements, :venv_system_site_packages, :python]

  setup do
    saved = for key <- @keys, do: {key, Application.fetch_env(:snakebridge, key)}
    saved_env = System.get_env("SNAKEBRIDGE_PYTHON")
    for key <- @keys, do: Application.delete_env(:snakebridge, key)
    System.delete_env("SNAKEBRIDGE_PYTHON")
    Mix.shell(Mix.Shell.Process)

    on_exit(fn ->
      for {key, value} <- saved do
        case value do
          {:ok, v} -> Application.put_env(:snakebridge, key, v)
          :error -> Application.delete_env(:snakebridge, key)
        end
      end

      if saved_env, do: System.put_env("SNAKEBRIDGE_PYTHON", saved_env), else: System.delete_env("SNAKEBRIDGE_PYTHON")
      Mix.shell(Mix.Shell.IO)
    end)

    :ok
  end

  defp config(kv), do: Enum.each(kv, fn {k, v} -> Application.put_env(:snakebridge, k, v) end)

  defp setup_task(tmp, args), do: File.cd!(tmp, fn -> Mix.Task.rerun("snakebridge.setup", args) end)

  defp setup_error(tmp, args) do
    error = assert_raise(Mix.Error, fn -> setup_task(tmp, args) end)
    error.message
  end

  defp py(venv, code) do
    System.cmd(Path.join(venv, "bin/python"), ["-c", code], stderr_to_stdout: true, env: [{"PYTHONHOME", nil}])
  end

  # A wheel built by hand: a zip with the package and its dist-info.
  defp build_wheel(dir, name, version, module, value) do
    File.mkdir_p!(dir)
    dist = "#{String.replace(name, "-", "_")}-#{version}"
    wheel = Path.join(dir, "#{dist}-py3-none-any.whl")

    files = [
      {"#{module}/__init__.py", "VALUE = #{inspect(value)}\n"},
      {"#{dist}.dist-info/METADATA", "Metadata-Version: 2.1\nName: #{name}\nVersion: #{version}\n"},
      {"#{dist}.dist-info/WHEEL",
       "Wheel-Version: 1.0\nGenerator: snakebridge-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    ]

    record = Enum.map_join(files, "", fn {path, _} -> "#{path},,\n" end) <> "#{dist}.dist-info/RECORD,,\n"
    entries = for {path, data} <- files ++ [{"#{dist}.dist-info/RECORD", record}], do: {String.to_charlist(path), data}
    {:ok, _} = :zip.create(String.to_charlist(wheel), entries)
    wheel
  end

  @tag :tmp_dir
  test "creates a plain venv (pip from ensurepip) and installs a wheel offline; --check passes, then reports what is missing",
       %{tmp_dir: tmp} do
    build_wheel(Path.join(tmp, "wheels"), "sb-wheel-probe", "0.3.0", "sb_wheel_probe", "from a wheel")
    config(venv: "venv", python_requirements: ["sb-wheel-probe==0.3.0"])
    venv = Path.join(tmp, "venv")

    setup_task(tmp, ["--no-index", "--find-links", "wheels"])
    out = mix_output()
    assert out =~ "* creating venv at venv with /usr/bin/python3 (default)"
    assert out =~ "* installing 1 requirement into venv..."
    assert out =~ "* ok"
    refute out =~ "--system-site-packages"

    assert {"from a wheel\n", 0} = py(venv, "import sb_wheel_probe; print(sb_wheel_probe.VALUE)")
    assert Venv.system_site_packages?(venv) == false
    # pip came from ensurepip, into the venv itself.
    assert {pip, 0} = py(venv, "import pip; print(pip.__file__)")
    assert String.starts_with?(pip, venv)

    # --check passes, and changes nothing.
    cfg_mtime = File.stat!(Path.join(venv, "pyvenv.cfg")).mtime
    setup_task(tmp, ["--check"])
    out = mix_output()
    assert out =~ ~r/ok\s+sb-wheel-probe==0.3.0 \(0.3.0 installed\)/
    assert out =~ "* ok: venv present, 1 of 1 requirements verified"
    assert File.stat!(Path.join(venv, "pyvenv.cfg")).mtime == cfg_mtime

    # A missing package and a wrong version fail the check with a list.
    config(
      python_requirements: [
        "sb_Wheel.Probe",
        "sb-wheel-probe>=1.0",
        "sb-not-installed",
        "git+https://example.invalid/x.git"
      ]
    )

    message = setup_error(tmp, ["--check"])
    assert message =~ "2 of 4 requirements not satisfied in venv"
    assert message =~ "- sb-wheel-probe>=1.0: 0.3.0 installed"
    assert message =~ "- sb-not-installed: not installed"
    assert message =~ "Run `mix snakebridge.setup`"
    out = mix_output()
    assert out =~ ~r/ok\s+sb_Wheel.Probe/
    assert out =~ ~r/\?\s+git\+https:.*cannot verify: URL requirement/

    # Offline, a plain venv has setuptools but no `wheel`: building a local
    # source project fails, with a hint.
    write_files(Path.join(tmp, "src_pkg"), [
      {"pyproject.toml",
       ~s([build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n[project]\nname = "sb-src"\nversion = "1"\n)},
      {"sb_src/__init__.py", ""}
    ])

    config(python_requirements: ["./src_pkg"])
    message = setup_error(tmp, ["--no-index", "--no-build-isolation"])
    assert message =~ "invalid command 'bdist_wheel'"
    assert message =~ "hint: building a local source project needs the `wheel` package"

    # Running setup again keeps the venv.
    config(python_requirements: [])
    setup_task(tmp, [])
    out = mix_output()
    assert out =~ "* using existing venv at venv"
    assert out =~ "* no requirements to install"
    assert File.stat!(Path.join(venv, "pyvenv.cfg")).mtime == cfg_mtime
  end

  @tag :tmp_dir
  test "--system-site-packages venv; local source projects from config and a -r file are all installed and checked",
       %{tmp_dir: tmp} do
    write_files(Path.join(tmp, "py/pkg_a"), [
      {"pyproject.toml",
       ~s([build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "sb-src-a"\nversion = "1.2.0"\n)},
      {"sb_src_a/__init__.py", "VALUE = 'a'\n"}
    ])

    write_files(Path.join(tmp, "py/pkg_b"), [
      {"setup.py", ~s{from setuptools import setup\nsetup(name="sb-src-b", version="0.1", packages=["sb_src_b"])\n}},
      {"sb_src_b/__init__.py", "VALUE = 'b'\n"}
    ])

    File.write!(Path.join(tmp, "requirements.txt"), "# local projects\n--no-index\n./py/pkg_b  # the second one\n")
    config(venv: "venv", python_requirements: ["./py/pkg_a"], venv_system_site_packages: true)
    venv = Path.join(tmp, "venv")

    setup_task(tmp, ["-r", "requirements.txt", "--no-index", "--no-build-isolation"])
    out = mix_output()
    assert out =~ "* creating venv at venv with /usr/bin/python3 (default) --system-site-packages"
    assert out =~ "* installing 2 requirements into venv..."
    assert out =~ "* ok"

    assert Venv.system_site_packages?(venv) == true
    assert {"a b\n", 0} = py(venv, "import sb_src_a, sb_src_b; print(sb_src_a.VALUE, sb_src_b.VALUE)")
    # The base interpreter's packages stay visible (setuptools is Debian's).
    assert {"ok\n", 0} = py(venv, "import setuptools, sys; assert sys.prefix != sys.base_prefix; print('ok')")

    setup_task(tmp, ["--check", "--requirement", "requirements.txt"])
    out = mix_output()
    assert out =~ ~r"ok\s+\./py/pkg_a \(sb-src-a 1\.2\.0 installed \(from local path\)\)"
    assert out =~ ~r"ok\s+\./py/pkg_b \(sb-src-b 0\.1 installed \(from local path\)\)"
    assert out =~ "2 of 2 requirements verified"
  end

  @tag :tmp_dir
  test "--check without a venv fails and creates nothing", %{tmp_dir: tmp} do
    config(venv: ".venv", python_requirements: ["json5"])
    message = setup_error(tmp, ["--check"])
    assert message =~ "no virtual environment at #{tmp}/.venv"
    assert message =~ "run `mix snakebridge.setup`"
    assert File.ls!(tmp) == []
  end

  @tag :tmp_dir
  test "a missing base interpreter is reported and nothing is created", %{tmp_dir: tmp} do
    message = setup_error(tmp, ["--venv", "v", "--python", "/nonexistent/python3"])
    assert message =~ "base Python interpreter not found: /nonexistent/python3 (--python)"
    assert File.ls!(tmp) == []

    config(python: "/nonexistent/python9")
    message = setup_error(tmp, ["--venv", "v"])
    assert message =~ "base Python interpreter not found: /nonexistent/python9 (config :snakebridge, python:)"
    assert File.ls!(tmp) == []
  end

  @tag :tmp_dir
  test "a pip failure raises with the output of pip and the command", %{tmp_dir: tmp} do
    config(venv: "venv", python_requirements: ["sb-does-not-exist==9.9"])
    message = setup_error(tmp, ["--system-site-packages", "--no-index"])
    assert message =~ "pip failed (exit status 1): #{tmp}/venv/bin/python -m pip install"
    assert message =~ "--no-index sb-does-not-exist==9.9"
    assert message =~ "No matching distribution found for sb-does-not-exist==9.9"
    assert message =~ "hint: with --no-index pip only looks in the --find-links directories"
    # The venv itself was made.
    assert Venv.venv?(Path.join(tmp, "venv"))
  end

  @tag :tmp_dir
  test "a venv without pip gets pip from the local wheels; pip arguments after -- pass through", %{tmp_dir: tmp} do
    venv = Path.join(tmp, "venv")
    {_, 0} = System.cmd("/usr/bin/python3", ["-m", "venv", "--without-pip", venv])
    assert {_, 1} = py(venv, "import pip")
    build_wheel(Path.join(tmp, "wheels"), "sb-pass-probe", "2.0", "sb_pass_probe", 2)

    setup_task(tmp, ["--venv", "venv", "--", "--no-index", "--find-links", "wheels", "sb-pass-probe"])
    out = mix_output()
    assert out =~ "* using existing venv at venv"
    assert out =~ ~r"the venv has no pip; installing it from \S+/pip-[\d.]+-py3-none-any\.whl"
    assert out =~ "* no requirements to install"
    assert {pip, 0} = py(venv, "import pip; print(pip.__file__)")
    assert String.starts_with?(pip, venv)
    # Extra pip arguments only go to `pip install` when there is something to install.
    assert {_, 1} = py(venv, "import sb_pass_probe")

    File.write!(Path.join(tmp, "req.txt"), "sb-pass-probe>=2\n")
    setup_task(tmp, ["--venv", "venv", "-r", "req.txt", "--", "--no-index", "--find-links", "wheels"])
    assert mix_output() =~ "* installing 1 requirement into venv..."
    assert {"2\n", 0} = py(venv, "import sb_pass_probe; print(sb_pass_probe.VALUE)")
  end

  @tag :tmp_dir
  test "when ensurepip fails, the venv is made --without-pip and pip comes from the local wheels", %{tmp_dir: tmp} do
    # A base interpreter whose ensurepip fails the way an offline one without
    # bundled wheels does.
    fake = Path.join(tmp, "fake-python3")

    File.write!(fake, """
    #!/bin/sh
    case " $* " in
      *" --without-pip "*) exec /usr/bin/python3 "$@" ;;
    esac
    echo "Error: Command '['$5/bin/python3', '-m', 'ensurepip', '--upgrade', '--default-pip']' returned non-zero exit status 1." >&2
    exit 1
    """)

    File.chmod!(fake, 0o755)
    setup_task(tmp, ["--venv", "venv", "--python", fake])
    out = mix_output()
    assert out =~ "* creating venv at venv with #{fake} (--python)"
    assert out =~ "could not install pip (ensurepip failed)"
    assert out =~ "* retrying without pip; pip will be installed from a local wheel"
    assert out =~ "the venv has no pip; installing it from"
    assert out =~ "* ok"
    assert {pip, 0} = py(Path.join(tmp, "venv"), "import pip; print(pip.__file__)")
    assert String.starts_with?(pip, Path.join(tmp, "venv"))

    # Any other failure of `python -m venv` is shown as is.
    File.write!(fake, "#!/bin/sh\necho 'venv: no space left' >&2\nexit 3\n")
    message = setup_error(tmp, ["--venv", "venv2", "--python", fake])
    assert message =~ "creating the virtual environment failed (exit status 3): #{fake} -m venv"
    assert message =~ "venv: no space left"
  end

  @tag :tmp_dir
  test "clear errors for a missing configuration, a non-venv directory, bad options", %{tmp_dir: tmp} do
    assert setup_error(tmp, []) =~ "No virtual environment configured: set `config :snakebridge, venv: \".venv\"`"

    File.mkdir_p!(Path.join(tmp, "notvenv"))
    File.write!(Path.join(tmp, "notvenv/data.txt"), "mine")
    assert setup_error(tmp, ["--venv", "notvenv"]) =~ "notvenv exists but is not a virtual environment"
    assert File.read!(Path.join(tmp, "notvenv/data.txt")) == "mine"

    assert setup_error(tmp, ["--venv", "v", "--bogus"]) =~ "Unknown option(s): --bogus"
    assert setup_error(tmp, ["--venv", "v", "numpy"]) =~ "pip arguments go after --"
    assert setup_error(tmp, ["--venv", "v", "-r", "missing.txt"]) =~ "cannot read requirements file missing.txt"
    config(python_requirements: [:numpy])
    assert setup_error(tmp, ["--venv", "v"]) =~ "must be strings, got: :numpy"
    assert File.ls!(tmp) == ["notvenv"]
  end

  test "the task is documented for mix help" do
    doc = Mix.Task.moduledoc(Mix.Tasks.Snakebridge.Setup)
    assert doc =~ "mix snakebridge.setup --check"
    assert doc =~ "config :snakebridge,"
    assert doc =~ "`--find-links DIR`"
    assert Mix.Task.shortdoc(Mix.Tasks.Snakebridge.Setup) =~ "venv"
    assert Mix.Task.moduledoc(SnakeBridge.Config) =~ "config :snakebridge, venv: \".venv\""
  end

  describe "SnakeBridge.Config.python/0" do
    test "SNAKEBRIDGE_PYTHON > config :python > <venv>/bin/python > /usr/bin/python3" do
      assert SnakeBridge.Config.python_source() == {"/usr/bin/python3", :default}

      config(venv: "some/venv")
      assert SnakeBridge.Config.python_source() == {Path.expand("some/venv/bin/python"), :venv}
      assert SnakeBridge.Config.python() == Path.expand("some/venv/bin/python")
      # The venv is created from the base interpreter, never from itself.
      assert SnakeBridge.Config.base_python() == "/usr/bin/python3"

      config(python: "/opt/py/bin/python3")
      assert SnakeBridge.Config.python_source() == {"/opt/py/bin/python3", :config}
      assert SnakeBridge.Config.base_python() == "/opt/py/bin/python3"

      System.put_env("SNAKEBRIDGE_PYTHON", "/env/python3")
      assert SnakeBridge.Config.python_source() == {"/env/python3", :env}
      assert SnakeBridge.Config.base_python() == "/env/python3"
    end

    test "a base interpreter pointing into the venv falls back to /usr/bin/python3" do
      System.put_env("SNAKEBRIDGE_PYTHON", Path.expand("v/bin/python"))
      assert {:ok, "/usr/bin/python3", source} = Venv.base_python(Path.expand("v"))
      assert source =~ "SNAKEBRIDGE_PYTHON points into the venv"
      assert {:error, message} = Venv.base_python(Path.expand("v"), "v/bin/python")
      assert message =~ "is inside the venv"
    end
  end

  describe "requirements files" do
    @tag :tmp_dir
    test "comments, pip options and constraints are dropped; -r files are read relative to their file, once",
         %{tmp_dir: tmp} do
      File.mkdir_p!(Path.join(tmp, "sub"))

      File.write!(
        Path.join(tmp, "main.txt"),
        "numpy==1.24.2 # pinned\n-r sub/more.txt\n--find-links x\n-c c.txt\n-e ./py/a\n\nreq \\\n  >=1\n"
      )

      File.write!(Path.join(tmp, "sub/more.txt"), "# nested\njson5\n-r ../main.txt\n")

      assert {:ok, ["numpy==1.24.2", "json5", "./py/a", "req   >=1"]} =
               Venv.read_requirements_file(Path.join(tmp, "main.txt"))
    end
  end
end
