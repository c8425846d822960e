defmodule SnakeBridge.InterpreterTest do
  # Which interpreter is embedded is decided once per VM, so these tests start
  # fresh BEAMs (`elixir -pa <our ebin>`) with their own environment.
  use ExUnit.Case, async: true

  @moduletag timeout: 120_000

  setup_all do
    ebin = :code.lib_dir(:snakebridge, :ebin) |> to_string()
    {:ok, ebin: ebin}
  end

  defp run_elixir(ebin, code, env) do
    System.cmd("elixir", ["-pa", ebin, "-e", code], env: env, stderr_to_stdout: true)
  end

  @tag :tmp_dir
  test "a venv's python makes its site-packages importable and reports itself", %{ebin: ebin, tmp_dir: tmp} do
    venv = Path.join(tmp, "venv")
    {_, 0} = System.cmd("/usr/bin/python3", ["-m", "venv", "--without-pip", venv])
    [site] = Path.wildcard(Path.join(venv, "lib/python3*/site-packages"))
    File.write!(Path.join(site, "sb_venv_probe.py"), "def where():\n    import sys\n    return sys.prefix\n")

    code = """
    {:ok, _} = Application.ensure_all_started(:snakebridge)
    IO.write(:erlang.term_to_binary({
      SnakeBridge.getattr!("sys", "executable"),
      SnakeBridge.call!("sb_venv_probe", "where"),
      SnakeBridge.call("numpy", "sqrt", [4.0])
    }) |> Base.encode64())
    """

    # A stray PYTHONHOME would break a naive embedding; it must be ignored.
    env = [{"SNAKEBRIDGE_PYTHON", Path.join(venv, "bin/python")}, {"PYTHONHOME", "/nonexistent"}]
    {out, 0} = run_elixir(ebin, code, env)
    {exe, prefix, numpy} = out |> String.trim() |> Base.decode64!() |> :erlang.binary_to_term()

    assert exe == Path.join(venv, "bin/python")
    assert prefix == venv
    # Without --system-site-packages, Debian's numpy is not visible from the venv.
    assert {:error, %SnakeBridge.PythonError{type: "ModuleNotFoundError"}} = numpy
  end

  test "a missing interpreter stops the application with a clear error", %{ebin: ebin} do
    code = "IO.inspect(Application.ensure_all_started(:snakebridge))"
    {out, _} = run_elixir(ebin, code, [{"SNAKEBRIDGE_PYTHON", "/nonexistent/python3"}])
    assert out =~ "/nonexistent/python3 does not exist"
  end

  # A pyenv Python is on these machines (docs/getting_started.md): another build
  # of the same minor version than the libpython SnakeBridge links.
  @other_build "/root/.pyenv/versions/3.11.7/bin/python3"

  if File.exists?(@other_build) do
    test "another Python build than the linked libpython is refused at start, saying what to do", %{ebin: ebin} do
      code = "IO.inspect(Application.ensure_all_started(:snakebridge))"
      {out, _} = run_elixir(ebin, code, [{"SNAKEBRIDGE_PYTHON", @other_build}])
      assert out =~ "is Python 3.11.7"
      assert out =~ "SnakeBridge was built against libpython #{SnakeBridge.Native.python_version()}"
      assert out =~ "a venv made from it"

      assert_raise ArgumentError, ~r/SnakeBridge.Pool :other_build: .*is Python 3.11.7/, fn ->
        SnakeBridge.Pool.init(name: :other_build, size: 1, python: @other_build)
      end
    end
  end

  test "the configured interpreter (the linked build) passes the interpreter check" do
    assert SnakeBridge.Config.check_interpreter(SnakeBridge.Config.python()) == :ok
  end

  test "the VM stops promptly, gracefully or not, after SnakeBridge's threads have gone idle", %{ebin: ebin} do
    # Regression: once the fast-path watchdog slept on a condition variable
    # (after a second without calls), destroying that static at exit blocked
    # forever, so the BEAM never exited. Port workers are running too.
    code = """
    {:ok, _} = Application.ensure_all_started(:snakebridge)
    {:ok, _} = SnakeBridge.Pool.start_link(name: ExitPool, size: 1)
    for _ <- 1..50, do: SnakeBridge.call!("math", "sqrt", [2.0])
    2.0 = SnakeBridge.call!("math", "sqrt", [4.0], [], backend: {:pool, ExitPool})
    Process.sleep(1_500)
    IO.puts("idle")
    """

    for stop <- ["System.halt(0)", "System.stop(0)"] do
      task = Task.async(fn -> run_elixir(ebin, code <> stop, []) end)

      case Task.yield(task, 30_000) || Task.shutdown(task, :brutal_kill) do
        {:ok, {out, status}} ->
          assert out =~ "idle"
          assert status == 0

        nil ->
          flunk("the VM did not exit within 30 s after #{stop}")
      end
    end
  end

  test "Python sees the real interpreter and the BEAM's process" do
    assert SnakeBridge.getattr!("sys", "executable") == SnakeBridge.Config.python()
    assert SnakeBridge.call!("os", "getpid") == String.to_integer(System.pid())
  end
end
