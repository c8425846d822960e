defmodule SnakeBridge.FrozenWorkerTest do
  # A frozen port program (SIGSTOP) stops reading its pipe: once the pipe is
  # full, no caller and no pool process may block writing to it. Callers end
  # by their timeout, the worker's cancels do not block it (they wait for the
  # pipe), and the liveness check replaces the program.
  use ExUnit.Case, async: false
  import SnakeBridge.Test.Helpers, only: [wait_until: 2]

  @moduletag timeout: 60_000

  test "callers with large arguments to a frozen worker all return by their timeout; the worker is replaced" do
    {opts, worker, os_pid} = frozen(SnakeBridge.FrozenWorkerTest.Pool)

    try do
      big = :binary.copy("x", 512 * 1024)
      started = System.monotonic_time(:millisecond)

      tasks =
        for _ <- 1..10 do
          Task.async(fn -> SnakeBridge.call("builtins", "len", [big], [], opts ++ [timeout: 200]) end)
        end

      results = Task.yield_many(tasks, 10_000)
      elapsed = System.monotonic_time(:millisecond) - started
      returned = for {_task, {:ok, result}} <- results, do: result
      for {task, nil} <- results, do: Task.shutdown(task, :brutal_kill)

      assert length(returned) == 10, "#{10 - length(returned)} of 10 callers were still blocked after 10 s"
      assert Enum.all?(returned, &match?({:error, %SnakeBridge.TimeoutError{timeout: 200}}, &1)), inspect(returned)
      # timeout + the cancel's acknowledgement; nobody waited for the program
      assert elapsed < 2_000, "callers returned after #{elapsed} ms"

      # The worker process itself never blocked on its port.
      assert Process.info(worker, :status) != {:status, :suspended}

      # Nothing was left in the callers' mailboxes: each task's process is gone
      # with its result, so check this process's own call, made the same way.
      assert {:error, %SnakeBridge.TimeoutError{}} =
               SnakeBridge.call("builtins", "len", [big], [], opts ++ [timeout: 100])

      {:messages, left} = Process.info(self(), :messages)
      refute Enum.any?(left, &match?({ref, _} when is_reference(ref), &1)), "left in the mailbox: #{inspect(left)}"
    after
      System.cmd("kill", ["-CONT", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end

    # The liveness check replaced the frozen program (or it came back): the pool serves again.
    assert wait_until(10_000, fn -> match?({:ok, 3.0}, SnakeBridge.call("math", "sqrt", [9.0], [], opts)) end)
  end

  # A frozen program with only callers that never time out: the worker's pings
  # go unanswered, and it is killed and replaced all the same; the callers get
  # WorkerCrashError (docs/backends.md, "Pools").
  test "a frozen worker with :infinity callers is killed and replaced after its liveness bound" do
    {opts, _worker, os_pid} = frozen(SnakeBridge.FrozenWorkerTest.Infinity)

    try do
      started = System.monotonic_time(:millisecond)

      callers =
        for _ <- 1..3,
            do: Task.async(fn -> SnakeBridge.call("math", "sqrt", [2.0], [], opts ++ [timeout: :infinity]) end)

      results = Task.yield_many(callers, 20_000)
      elapsed = System.monotonic_time(:millisecond) - started
      for {task, nil} <- results, do: Task.shutdown(task, :brutal_kill)
      returned = for {_task, {:ok, result}} <- results, do: result
      assert length(returned) == 3, "callers still waiting after 20 s"
      assert Enum.all?(returned, &match?({:error, %SnakeBridge.WorkerCrashError{}}, &1)), inspect(returned)
      # The liveness bound (5 s) plus its tick (1 s) and the kill.
      assert elapsed < 9_000, "replaced after #{elapsed} ms"
      refute File.exists?("/proc/#{os_pid}") and not (File.read!("/proc/#{os_pid}/stat") =~ ") Z ")
    after
      System.cmd("kill", ["-CONT", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end

    assert wait_until(10_000, fn -> match?({:ok, 3.0}, SnakeBridge.call("math", "sqrt", [9.0], [], opts)) end)
  end

  # A worker process too busy to read its mailbox (suspended here) never sends
  # the cancel's acknowledgement: the caller still returns by its timeout plus
  # the acknowledgement's grace (500 ms), and nothing for its request arrives
  # afterwards.
  test "a caller whose worker process does not acknowledge the cancel returns by timeout + grace" do
    pool = SnakeBridge.FrozenWorkerTest.Congested
    start_supervised!({SnakeBridge.Pool, name: pool, size: 1})
    opts = [backend: {:pool, pool}]
    assert SnakeBridge.call!("math", "sqrt", [4.0], [], opts) == 2.0
    [{worker, _node}] = SnakeBridge.Pool.workers(pool)
    # Started before the suspension: the worker knows of the request.
    caller = Task.async(fn -> SnakeBridge.call("time", "sleep", [3], [], opts ++ [timeout: 300]) end)
    Process.sleep(100)
    :ok = :sys.suspend(worker)

    try do
      started = System.monotonic_time(:millisecond)
      assert {:error, %SnakeBridge.TimeoutError{timeout: 300}} = Task.await(caller, 5_000)
      assert System.monotonic_time(:millisecond) - started < 300 + 500 + 400
      # This process's own call, made the same way, leaves nothing behind once
      # the worker wakes and answers.
      assert {:error, %SnakeBridge.TimeoutError{}} = SnakeBridge.call("time", "sleep", [1], [], opts ++ [timeout: 100])
    after
      :sys.resume(worker)
    end

    Process.sleep(1_500)
    {:messages, left} = Process.info(self(), :messages)
    refute Enum.any?(left, &match?({ref, _} when is_reference(ref), &1)), "left in the mailbox: #{inspect(left)}"
  end

  # A pool of one worker whose program is then stopped (SIGSTOP).
  defp frozen(pool) do
    start_supervised!({SnakeBridge.Pool, name: pool, size: 1})
    opts = [backend: {:pool, pool}]
    assert SnakeBridge.call!("math", "sqrt", [4.0], [], opts) == 2.0
    [{worker, _node}] = SnakeBridge.Pool.workers(pool)
    {port, _ids, _channel} = SnakeBridge.Workers.lookup(worker)
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    {_, 0} = System.cmd("kill", ["-STOP", Integer.to_string(os_pid)])
    {opts, worker, os_pid}
  end
end
