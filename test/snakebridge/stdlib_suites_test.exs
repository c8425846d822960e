defmodule SnakeBridge.StdlibSuitesTest do
  # CPython's own test modules (Debian's libpython3.11-testsuite), run one
  # after another in the embedded interpreter, give the counts plain python
  # gives (issue 10, item 4). The reference counts are computed in the same
  # run, by the same interpreter outside the BEAM; nothing is copied from an
  # earlier run.
  #
  # The sequence is the one that hung: test_threading leaves
  # threading.settrace(noop_trace) behind (its test_frame_tstate_tracing sets
  # it and never restores it, in plain python too), so every thread started
  # afterwards is traced; test_threading_local then starts threads, and
  # test_sys_settrace traces its own thread. In CPython 3.11 a traced function
  # call spins at its first instruction for as long as the interpreter's
  # "asynchronous exception pending" flag is up, and SnakeBridge used to leave
  # that flag up for good (c_src/core/interrupts.cpp, "withdrawing").
  #
  # In process, the suites run on a thread Python did not start (a
  # SnakeBridge thread), where some tests cannot pass: signals need Python's
  # main thread (_thread.interrupt_main, signal.signal), and to Python such a
  # thread is a daemonic _DummyThread. So a test may fail in process only if
  # it also fails in plain python when the suites run on a thread started with
  # _thread.start_new_thread, which the test computes as well, or if it failed
  # with the documented refusal of what Python may not do in the BEAM (forking
  # it, installing signal handlers).
  #
  # Not async: the suites are timing-sensitive and change interpreter-wide
  # state (threading's hooks, which the test resets afterwards).
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers

  alias SnakeBridge.TestBackends

  @moduletag :stdlib_suites
  @moduletag timeout: 180_000

  @suites ["test_threading", "test_threading_local", "test_sys_settrace"]

  @runner """
  # threading is imported here, on plain python's main thread: imported first
  # on another thread, it would take that thread for the main one.
  import contextlib, io, json, sys, threading, time, traceback, unittest


  def run(name):
      started = time.monotonic()
      suite = unittest.defaultTestLoader.loadTestsFromName("test." + name)
      out = io.StringIO()
      with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
          result = unittest.TextTestRunner(stream=out, verbosity=0).run(suite)
      failed = result.failures + result.errors
      return {"name": name, "run": result.testsRun, "skipped": len(result.skipped),
              "failed": sorted(t.id() for t, _ in failed),
              # Refused by what Python may not do inside the BEAM (os.fork,
              # signal handlers: docs/backends.md, "What in-process cannot do").
              "refused": sorted(t.id() for t, trace in failed if "in-process" in trace and "port worker" in trace),
              "ms": int((time.monotonic() - started) * 1000)}


  def run_all(names):
      try:
          return [run(n) for n in names]
      except BaseException:
          return {"error": traceback.format_exc()}


  def main(where, names):
      if where == "main":
          results = run_all(names)
      else:
          # On a thread Python did not start, as a SnakeBridge thread is to Python
          # (threading.current_thread() is a _DummyThread there).
          import _thread
          box = []
          _thread.start_new_thread(lambda: box.append(run_all(names)), ())
          while not box:
              try:
                  time.sleep(0.05)
              except KeyboardInterrupt:  # test_threading's interrupt_main() lands here
                  pass
          results = box[0]
      sys.__stdout__.write("SB-SUITES " + json.dumps(results) + "\\n")


  if __name__ == "__main__":
      main(sys.argv[1], sys.argv[2:])
  """

  setup_all do
    dir = Path.join(System.tmp_dir!(), "sb_suites_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    File.write!(Path.join(dir, "sb_stdlib_suites.py"), @runner)
    on_exit(fn -> File.rm_rf!(dir) end)
    on_python_path(dir)

    missing = missing_suites()

    if missing != [] do
      raise "CPython's test package lacks #{inspect(missing)}: install Debian's libpython3.11-testsuite (`make deps` does)"
    end

    %{dir: dir, python: SnakeBridge.eval!("__import__('sys').executable")}
  end

  defp missing_suites do
    SnakeBridge.exec!(
      "import importlib.util\nmissing = [n for n in names if importlib.util.find_spec('test.' + n) is None]",
      %{"names" => @suites}
    )["missing"]
  end

  # The suites in a plain python process, on its main thread or on a thread it
  # did not start; suite name => result.
  defp plain_python(python, dir, where) do
    {out, status} = System.cmd(python, [Path.join(dir, "sb_stdlib_suites.py"), where | @suites], cd: dir)
    assert status == 0, "plain python (#{where}) exited #{status}:\n#{out}"
    [_, json] = Regex.run(~r/^SB-SUITES (.*)$/m, out)
    by_name(SnakeBridge.call!("json", "loads", [json]), where)
  end

  defp by_name(%{"error" => trace}, where), do: flunk("the suites could not run (#{where}):\n#{trace}")
  defp by_name(results, _), do: Map.new(results, &{&1["name"], &1})

  test "one suite after another in process counts what plain python counts", %{dir: dir, python: python} do
    plain = Task.async(fn -> plain_python(python, dir, "main") end)
    foreign = Task.async(fn -> plain_python(python, dir, "foreign") end)
    plain = Task.await(plain, 150_000)
    foreign = Task.await(foreign, 150_000)

    on_exit(fn ->
      # test_threading's leftover trace hook would trace every thread later tests start.
      SnakeBridge.exec("import threading\nthreading.settrace(None)\nthreading.setprofile(None)")
    end)

    for name <- @suites do
      # Several times what plain python needed: a hang, not a slow machine.
      timeout = max(20_000, 5 * plain[name]["ms"])

      embedded =
        case SnakeBridge.call("sb_stdlib_suites", "run", [name], [], timeout: timeout) do
          {:ok, result} ->
            result

          {:error, error} ->
            flunk(
              "#{name} did not finish in process (plain python: #{plain[name]["ms"]} ms): #{Exception.message(error)}"
            )
        end

      assert {embedded["run"], embedded["skipped"]} == {plain[name]["run"], plain[name]["skipped"]},
             "#{name}: tests run and skipped, in process vs plain python"

      assert {foreign[name]["run"], foreign[name]["skipped"]} == {plain[name]["run"], plain[name]["skipped"]}

      assert plain[name]["failed"] -- embedded["failed"] == [],
             "#{name}: failing in plain python but passing in process: " <>
               inspect(plain[name]["failed"] -- embedded["failed"])

      # (Tests that fork or install signal handlers fail in process with the
      # documented refusal.)
      allowed = plain[name]["failed"] ++ foreign[name]["failed"] ++ embedded["refused"]

      assert embedded["failed"] -- allowed == [],
             "#{name}: failing in process only (not even on a thread plain python did not start): " <>
               inspect(embedded["failed"] -- allowed)
    end
  end

  # The mechanism itself, on both backends (the port program clears interrupts
  # the same way): a call made under a trace function, and a thread started
  # while threading.settrace is set, after an ordinary request.
  for backend <- TestBackends.all() do
    @backend backend
    test "traced code runs after a request (#{TestBackends.name(backend)})" do
      assert SnakeBridge.call!("math", "sqrt", [4.0], [], backend: @backend) == 2.0

      code = """
      import sys, threading
      def f():
          return 1
      sys.settrace(lambda *a: None)
      try:
          called = f()
      finally:
          sys.settrace(None)
      threading.settrace(lambda *a: None)
      try:
          t = threading.Thread(target=f)
          t.start()
          t.join(5)
          finished = not t.is_alive()
      finally:
          threading.settrace(None)
      """

      assert {:ok, %{"called" => 1, "finished" => true}} =
               SnakeBridge.exec(code, %{}, backend: @backend, timeout: 10_000)
    end
  end
end
