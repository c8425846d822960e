defmodule SnakeBridge.VenvCheckTest do
  # Venv.check/2 runs priv/python/snakebridge_requirements.py with the venv's
  # own python. One real venv (pip from ensurepip, so `packaging` is pip's copy,
  # as on a machine without python3-packaging) holds hand-made dist-info
  # directories standing for installed distributions. Some tests change the
  # current directory, hence async: false.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers, only: [write_files: 2]

  alias SnakeBridge.Venv

  @moduletag timeout: 120_000

  setup_all do
    venv = Path.join(System.tmp_dir!(), "snakebridge_check_#{System.unique_integer([:positive])}")
    {_, 0} = System.cmd("/usr/bin/python3", ["-m", "venv", venv], env: [{"PYTHONHOME", nil}])
    [site] = Path.wildcard(Path.join(venv, "lib/python3*/site-packages"))

    for {name, version} <- [
          {"sb-ver-a", "1.24.2"},
          {"sb-ver-b", "1.4.5"},
          {"sb-ver-rc", "2.0rc1"},
          {"sb-ver-dev", "2.0.dev1"},
          {"sb-ver-post", "2.0.post1"},
          {"sb-ver-odd", "whatever"}
        ] do
      dist = Path.join(site, "#{String.replace(name, "-", "_")}-#{version}.dist-info")
      File.mkdir_p!(dist)
      File.write!(Path.join(dist, "METADATA"), "Metadata-Version: 2.1\nName: #{name}\nVersion: #{version}\n")
    end

    on_exit(fn -> File.rm_rf!(venv) end)
    %{venv: venv}
  end

  defp statuses(venv, requirements) do
    assert {:ok, results} = Venv.check(venv, requirements)
    assert Enum.map(results, &elem(&1, 0)) == requirements
    Enum.map(results, fn {req, status, _} -> {req, status} end)
  end

  test "versions are compared by PEP 440: pre-, post- and dev-releases, ~=, ==X.*, ===", %{venv: venv} do
    expected = [
      {"sb-ver-a==1.24.2", :ok},
      {"sb-ver-a==1.24.2.0", :ok},
      {"sb-ver-a>=1.25", :mismatch},
      {"sb-ver-a>1.9", :ok},
      {"sb-ver-a>=1.0,<1.24.2", :mismatch},
      # An installed pre-release satisfies a lower bound (as for `pip check`),
      # but `<2.0` excludes the pre-releases of 2.0 itself.
      {"sb-ver-rc>=1.0", :ok},
      {"sb-ver-rc>=2.0b1", :ok},
      {"sb-ver-rc>=2.0", :mismatch},
      {"sb-ver-rc<2.0", :mismatch},
      {"sb-ver-dev<2.0a1", :ok},
      {"sb-ver-post>=2.0", :ok},
      # `>2.0` excludes the post-releases of 2.0 itself.
      {"sb-ver-post>2.0", :mismatch},
      {"sb-ver-b~=1.4.2", :ok},
      {"sb-ver-b~=1.0", :ok},
      {"sb-ver-b~=1.3.0", :mismatch},
      {"sb-ver-b==1.4.*", :ok},
      {"sb-ver-b!=1.4.*", :mismatch},
      {"sb-ver-odd===whatever", :ok},
      {"sb-ver-odd>=1", :unverifiable}
    ]

    assert statuses(venv, Enum.map(expected, &elem(&1, 0))) == expected

    assert {:ok, [{_, :mismatch, "2.0rc1 installed"}, {_, :unverifiable, detail}]} =
             Venv.check(venv, ["sb-ver-rc<2.0", "sb-ver-odd>=1"])

    assert detail == "cannot verify: whatever installed, version not comparable"
  end

  test "environment markers are evaluated by the venv's interpreter; a requirement they exclude is not needed",
       %{venv: venv} do
    assert {:ok, results} =
             Venv.check(venv, [
               ~s(sb-not-installed; python_version < "3"),
               ~s(sb-not-installed; python_version >= "3"),
               ~s(sb-ver-a>=2 ; python_version < "3"),
               ~s(sb-ver-a==1.24.2; sys_platform == "#{:os.type() |> elem(1)}")
             ])

    assert [
             {_, :ok, ~s(not needed: the marker python_version < "3" is false for this interpreter)},
             {_, :missing, "not installed"},
             {_, :ok, "not needed: " <> _},
             {_, :ok, "1.24.2 installed"}
           ] = results
  end

  @tag :tmp_dir
  test "names are normalized; extras, direct references, local projects, wheels and sdists; URLs cannot be verified",
       %{venv: venv, tmp_dir: tmp} do
    write_files(Path.join(tmp, "cfg"), [{"setup.cfg", "[metadata]\nname = SB_Ver.B\nversion = 1\n"}])
    # [project] wins over setup.cfg; other tables' names do not count.
    write_files(Path.join(tmp, "x y"), [
      {"pyproject.toml", "[tool.black]\nname = 'no'\n[project]\nname = \"sb-ver-a\" # yes\n"},
      {"setup.cfg", "[metadata]\nname = sb-ver-b\n"}
    ])

    write_files(Path.join(tmp, "py"), [{"setup.py", ~s{setup(name="sb-ver-post", version="2")\n}}])
    write_files(Path.join(tmp, "nameless"), [{"README", ""}])
    write_files(Path.join(tmp, "dist"), [{"sb_ver_rc-2.0rc1-py3-none-any.whl", ""}, {"sb-ver-dev-2.0.tar.gz", ""}])

    requirements = [
      "SB_Ver..A",
      "Sb-Ver-A[socks] >= 1.0, <3",
      "sb-ver-a @ https://example.invalid/sb_ver_a.whl",
      "./cfg",
      "-e #{tmp}/x y",
      "file://#{tmp}/x%20y",
      "./py",
      "dist/sb_ver_rc-2.0rc1-py3-none-any.whl",
      "dist/sb-ver-dev-2.0.tar.gz",
      "./missing/dir",
      "./nameless",
      "git+https://example.invalid/x.git",
      "sb-ver-a ^1.0"
    ]

    results = File.cd!(tmp, fn -> Venv.check(venv, requirements) end)

    assert {:ok,
            [
              {"SB_Ver..A", :ok, "1.24.2 installed"},
              {_, :ok, "1.24.2 installed"},
              {_, :ok, "sb-ver-a 1.24.2 installed (direct reference)"},
              {_, :ok, "SB_Ver.B 1.4.5 installed (from local path)"},
              {_, :ok, "sb-ver-a 1.24.2 installed (from local path)"},
              {_, :ok, "sb-ver-a 1.24.2 installed (from local path)"},
              {_, :ok, "sb-ver-post 2.0.post1 installed (from local path)"},
              {_, :ok, "sb_ver_rc 2.0rc1 installed (from local path)"},
              {_, :ok, "sb-ver-dev 2.0.dev1 installed (from local path)"},
              {_, :missing, missing},
              {_, :unverifiable, "cannot verify: cannot read the project name at ./nameless"},
              {_, :unverifiable, "cannot verify: URL requirement"},
              {_, :unverifiable, "cannot verify: not a requirement" <> _}
            ]} = results

    assert missing == "local path #{tmp}/missing/dir does not exist"
  end

  @tag :tmp_dir
  test "a venv whose python can import neither packaging nor pip is an error, not a list", %{tmp_dir: tmp} do
    venv = Path.join(tmp, "bare")
    {_, 0} = System.cmd("/usr/bin/python3", ["-m", "venv", "--without-pip", venv])
    assert {:error, message} = Venv.check(venv, ["sb-ver-a"])
    assert message =~ "the venv's python cannot check the requirements (exit status 2)"
    assert message =~ "can import neither `packaging` nor pip"
  end
end
