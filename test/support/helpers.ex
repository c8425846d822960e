defmodule SnakeBridge.Test.Helpers do
  @moduledoc false
  import ExUnit.Assertions, only: [flunk: 1]

  @doc """
  Waits until no thread of the in-process pool is inside Python. The fast path
  is only taken then, so tests that promote a call site to run on the scheduler
  wait for work left over from earlier tests first.
  """
  def await_idle_pool(ms \\ 8_000) do
    cond do
      SnakeBridge.Native.stats().busy_threads == 0 -> :ok
      ms <= 0 -> flunk("the Python thread pool stayed busy")
      true -> Process.sleep(20) && await_idle_pool(ms - 20)
    end
  end

  @doc """
  Runs `fun` on a machine not found busy, and returns its result. While a
  poller in the BEAM finds the machine busy (core/spin.hpp: for 100 ms each
  time, and the suite itself can make it), polls stop early: a test that
  counts polled replies or handed callbacks runs with this. A run during
  which the machine was found busy does not count; up to 10 runs.
  """
  def without_busy_finding(fun, tries \\ 10) do
    if tries == 0, do: flunk("the machine was found busy in every run")

    if not wait_until(5_000, fn -> not SnakeBridge.Native.stats().machine_busy end),
      do: flunk("the machine stayed marked busy")

    found = SnakeBridge.Native.stats().busy_found
    result = fun.()
    if SnakeBridge.Native.stats().busy_found == found, do: result, else: without_busy_finding(fun, tries - 1)
  end

  @doc "Polls `fun` every 10 ms until it returns true (then true) or `ms` pass (then false)."
  def wait_until(ms, fun) do
    deadline = System.monotonic_time(:millisecond) + ms
    poll(deadline, fun)
  end

  defp poll(deadline, fun) do
    cond do
      fun.() -> true
      System.monotonic_time(:millisecond) > deadline -> false
      true -> Process.sleep(10) && poll(deadline, fun)
    end
  end

  @doc """
  Puts `dir` first on the in-process interpreter's `sys.path` (for modules a
  test writes there) and takes it off when the test, or the module for a
  `setup_all`, is done.
  """
  def on_python_path(dir) do
    SnakeBridge.exec!(
      "import sys, importlib\nif d not in sys.path:\n    sys.path.insert(0, d)\nimportlib.invalidate_caches()",
      %{"d" => dir}
    )

    ExUnit.Callbacks.on_exit(fn ->
      SnakeBridge.exec("import sys\nif d in sys.path:\n    sys.path.remove(d)", %{"d" => dir})
    end)
  end

  @doc "Everything a Mix task printed so far through `Mix.Shell.Process`."
  def mix_output do
    receive do
      {:mix_shell, _, [message]} -> message <> "\n" <> mix_output()
    after
      0 -> ""
    end
  end

  @doc """
  Runs `mix args` in the project at `dir` as a user does (a separate OS
  process), stdout and stderr together: `{output, exit_status}`. The
  environment has `MIX_ENV=dev` and `SNAKEBRIDGE_PYTHON` set to this test run's
  interpreter; `env` adds to it or overrides it (`{"NAME", nil}` unsets).
  """
  def mix(dir, args, env \\ []) do
    base = %{"MIX_ENV" => "dev", "SNAKEBRIDGE_PYTHON" => SnakeBridge.Config.python()}
    System.cmd("mix", args, cd: dir, env: Map.to_list(Map.merge(base, Map.new(env))), stderr_to_stdout: true)
  end

  @doc "Writes `{relative_path, text}` files under `dir`, creating directories."
  def write_files(dir, files) do
    for {path, text} <- files do
      File.mkdir_p!(Path.dirname(Path.join(dir, path)))
      File.write!(Path.join(dir, path), text)
    end
  end

  @doc """
  Runs a PropEr property `numtests` times; on failure the message shows the
  shrunk counterexample, rendered by `describe`.
  """
  def proper_check(prop, numtests, describe) do
    result = :proper.quickcheck(prop, [{:numtests, numtests}, {:to_file, :user}])

    unless result == true do
      case :proper.counterexample() do
        :undefined -> flunk("PropEr: #{inspect(result)}")
        counterexample -> flunk("shrunk counterexample: " <> describe.(counterexample))
      end
    end
  end
end
