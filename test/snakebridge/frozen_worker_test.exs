defmodule SnakeBridge.FrozenWorkerTest do
  # A frozen port program (SIGSTOP) stops reading its pipe: once the pipe is
  # full, no caller and no pool process may block writing to it. Callers end
  # by their timeout, the worker's cancels do not block it, and the grace kill
  # replaces the program.
  use ExUnit.Case, async: false

  @moduletag timeout: 60_000

  test "callers with large arguments to a frozen worker all return by their timeout; the worker is replaced" do
    pool = SnakeBridge.FrozenWorkerTest.Pool
    start_supervised!({SnakeBridge.Pool, name: pool, size: 1})
    opts = [backend: {:pool, pool}]
    assert SnakeBridge.call!("math", "sqrt", [4.0], [], opts) == 2.0

    [{worker, _node}] = SnakeBridge.Pool.workers(pool)
    {port, _ids} = SnakeBridge.Workers.lookup(worker)
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    {_, 0} = System.cmd("kill", ["-STOP", Integer.to_string(os_pid)])

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
      System.cmd("kill", ["-CONT", Integer.to_string(os_pid)])
    end

    # The grace kill replaced the frozen program (or it came back): the pool serves again.
    assert wait_until(10_000, fn -> match?({:ok, 3.0}, SnakeBridge.call("math", "sqrt", [9.0], [], opts)) end)
  end

  defp wait_until(ms, fun) do
    deadline = System.monotonic_time(:millisecond) + ms

    Stream.repeatedly(fn ->
      fun.() or (Process.sleep(50) && false)
    end)
    |> Enum.find(fn ok -> ok or System.monotonic_time(:millisecond) > deadline end)
  end
end
