defmodule SnakeBridge.HardKillTest do
  # A port worker whose Python holds the GIL in C past a cancel is killed (its
  # whole process group) a grace period later. Real workers, real Python, real
  # kills. Where a test needs one interleaving of the worker's mailbox (a
  # cancel arriving after the port closed, or after the exit), it suspends the
  # worker process (:sys.suspend/1) while the OS process dies, then resumes it.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers, only: [wait_until: 2]

  alias SnakeBridge.{TimeoutError, WorkerCrashError}

  @moduletag timeout: 60_000

  # SnakeBridge.Worker's grace between a cancel and the kill.
  @grace_ms 1_000

  # Holds the GIL in C and never returns: the regex engine backtracking over
  # 2^40 ways (the cancel exception is only seen at a bytecode boundary).
  @stuck {"re", "match", ["(a+)+$", String.duplicate("a", 40) <> "b"]}

  setup context do
    name = Module.concat(__MODULE__, "Pool#{System.unique_integer([:positive])}")
    start_supervised!({SnakeBridge.Pool, name: name, size: 1}, id: name)
    opts = [backend: {:pool, name}]
    # One worker: every call of this test goes to it.
    os_pid = SnakeBridge.call!("os", "getpid", [], [], opts)
    %{table: table} = :persistent_term.get({SnakeBridge.Pool, name})
    [{_, worker}] = :ets.tab2list(table)
    {port, _ids, _channel} = SnakeBridge.Workers.lookup(worker)
    _ = context
    %{opts: opts, worker: worker, port: port, os_pid: os_pid}
  end

  defp stuck_call(opts, timeout) do
    {module, function, args} = @stuck
    timed(fn -> SnakeBridge.call(module, function, args, [], Keyword.put(opts, :timeout, timeout)) end)
  end

  defp timed(fun) do
    t0 = System.monotonic_time(:millisecond)
    result = fun.()
    {System.monotonic_time(:millisecond) - t0, result}
  end

  # Gone, or a zombie (it has exited and only waits for its parent to reap it).
  defp gone?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} -> Regex.match?(~r/\) Z /, stat)
      {:error, _} -> true
    end
  end

  defp cancels_queued(worker) do
    {:messages, messages} = Process.info(worker, :messages)
    # (A caller on the worker's node forgets the request in the reply
    # channel and tells the worker {:cancelled, id}; one on another node
    # sends {:cancel, ref, from}.)
    Enum.count(messages, &(match?({:cancel, _, _}, &1) or match?({:cancelled, _}, &1)))
  end

  test "the hard kill takes the processes Python started with it", %{opts: opts, worker: worker, os_pid: os_pid} do
    sleeper = SnakeBridge.eval!("__import__('subprocess').Popen(['sleep', '300']).pid", %{}, opts)
    refute gone?(sleeper)
    mon = Process.monitor(worker)

    {ms, result} = stuck_call(opts, 200)
    assert {:error, %TimeoutError{timeout: 200}} = result
    assert ms < 200 + @grace_ms

    # The worker kills its program a grace period after the cancel, and stops.
    assert_receive {:DOWN, ^mon, :process, ^worker, {:shutdown, {:worker_exited, 137}}}, @grace_ms + 2_000
    assert wait_until(2_000, fn -> gone?(os_pid) end)
    assert wait_until(2_000, fn -> gone?(sleeper) end), "the subprocess Python started survived the hard kill"
  end

  test "the caller that timed out gets TimeoutError, the others of the killed worker WorkerCrashError",
       %{opts: opts, worker: worker} do
    mon = Process.monitor(worker)
    # Work that dies with the worker before its own deadline.
    other =
      Task.async(fn -> timed(fn -> SnakeBridge.call("time", "sleep", [30], [], opts ++ [timeout: 20_000]) end) end)

    # Callers whose deadlines fall around the kill (300 ms + the grace): each
    # either overran its timeout first (TimeoutError) or saw the worker die
    # first (WorkerCrashError), never a crash error after its deadline.
    around =
      for t <- Enum.take_every(1_200..1_400, 20) do
        {t, Task.async(fn -> timed(fn -> SnakeBridge.call("time", "sleep", [30], [], opts ++ [timeout: t]) end) end)}
      end

    Process.sleep(50)
    {ms, result} = stuck_call(opts, 300)
    assert {:error, %TimeoutError{timeout: 300}} = result
    assert ms < 300 + @grace_ms

    assert {ms, {:error, %WorkerCrashError{reason: {:exit_status, 137}}}} = Task.await(other, 10_000)
    assert ms < 300 + @grace_ms + 2_000

    for {t, task} <- around do
      case Task.await(task, 10_000) do
        {ms, {:error, %TimeoutError{timeout: ^t}}} -> assert ms < t + @grace_ms
        {ms, {:error, %WorkerCrashError{reason: {:exit_status, 137}}}} -> assert ms < t + 20
      end
    end

    assert_receive {:DOWN, ^mon, :process, ^worker, {:shutdown, {:worker_exited, 137}}}, 2_000
  end

  test "a cancel that reaches the worker after its port closed: no crash of the worker, TimeoutError",
       %{opts: opts, worker: worker, port: port, os_pid: os_pid} do
    mon = Process.monitor(worker)
    other = Task.async(fn -> SnakeBridge.call("time", "sleep", [30], [], opts ++ [timeout: 20_000]) end)
    caller = Task.async(fn -> stuck_call(opts, 300) end)
    Process.sleep(100)
    :ok = :sys.suspend(worker)
    # The caller overruns its timeout and its cancel waits in the worker's mailbox...
    assert wait_until(3_000, fn -> cancels_queued(worker) == 1 end)
    # More work for the port: a handle to release, a request from another node
    # (replies go to the caller's alias).
    ref = :erlang.alias()
    send(worker, {:snakebridge_release, 1})
    send(worker, {:request, self(), ref, 1, [SnakeBridge.Msgpack.encode!("stats")], 0})
    # Then the program dies (as when a kill was already under way).
    {_, 0} = System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
    assert wait_until(3_000, fn -> Port.info(port) == nil end)
    :ok = :sys.resume(worker)

    assert {ms, {:error, %TimeoutError{timeout: 300}}} = Task.await(caller, 5_000)
    assert ms < 300 + @grace_ms
    assert {:error, %WorkerCrashError{reason: {:exit_status, 137}}} = Task.await(other, 5_000)
    # The request never ran: the caller may retry it elsewhere.
    assert_receive {^ref, {:error, %WorkerCrashError{reason: {:shutdown, :recycled}}}}, 2_000
    assert_receive {:DOWN, ^mon, :process, ^worker, {:shutdown, {:worker_exited, 137}}}, 2_000
  end

  test "a cancel that reaches the worker after it saw the exit: still TimeoutError",
       %{opts: opts, worker: worker, port: port, os_pid: os_pid} do
    mon = Process.monitor(worker)
    other = Task.async(fn -> SnakeBridge.call("time", "sleep", [30], [], opts ++ [timeout: 20_000]) end)
    caller = Task.async(fn -> stuck_call(opts, 500) end)
    Process.sleep(100)
    :ok = :sys.suspend(worker)
    # The program dies first: its exit is queued before the caller's cancel.
    {_, 0} = System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
    assert wait_until(3_000, fn -> Port.info(port) == nil end)
    assert wait_until(3_000, fn -> cancels_queued(worker) == 1 end)
    :ok = :sys.resume(worker)

    assert {ms, {:error, %TimeoutError{timeout: 500}}} = Task.await(caller, 5_000)
    assert ms < 500 + @grace_ms
    assert {:error, %WorkerCrashError{reason: {:exit_status, 137}}} = Task.await(other, 5_000)
    assert_receive {:DOWN, ^mon, :process, ^worker, {:shutdown, {:worker_exited, 137}}}, 2_000
  end

  test "a crash that reaches a caller only after its deadline: TimeoutError", %{
    opts: opts,
    worker: worker,
    os_pid: os_pid
  } do
    mon = Process.monitor(worker)
    # A group leader that does not answer (a busy console) until told to.
    {:ok, console} = StringIO.open("")
    true = :erlang.suspend_process(console)

    caller =
      Task.async(fn ->
        Process.group_leader(self(), console)
        code = "print('working', flush=True)\nimport time\ntime.sleep(30)"
        timed(fn -> SnakeBridge.exec(code, %{}, opts ++ [timeout: 300]) end)
      end)

    # The caller writes the output to its console and is held there past its
    # deadline, while the worker dies and its crash notice reaches the caller.
    Process.sleep(400)
    {_, 0} = System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
    assert_receive {:DOWN, ^mon, :process, ^worker, {:shutdown, {:worker_exited, 137}}}, 2_000
    true = :erlang.resume_process(console)

    assert {_ms, {:error, %TimeoutError{timeout: 300}}} = Task.await(caller, 5_000)
    assert StringIO.flush(console) == "working\n"
  end
end
