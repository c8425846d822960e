defmodule SnakeBridge.PoolTest do
  # The port backend: separate OS processes running priv/snakebridge_port,
  # supervised by SnakeBridge.Pool. Real processes, real crashes.
  use ExUnit.Case, async: false

  alias SnakeBridge.{Object, PythonError, TimeoutError, WorkerCrashError}

  @pool SnakeBridge.PoolTest.Pool

  setup_all do
    start_supervised!({SnakeBridge.Pool, name: @pool, size: 2})
    :ok
  end

  defp opts(extra \\ []), do: [backend: {:pool, @pool}] ++ extra

  defp worker_os_pid(obj_or_nil \\ nil) do
    # Each worker is its own OS process, not the BEAM.
    {:ok, pid} = SnakeBridge.call("os", "getpid", [], [], opts())
    _ = obj_or_nil
    pid
  end

  test "calls run in another OS process, with the same results as in-process" do
    assert worker_os_pid() != String.to_integer(System.pid())
    assert SnakeBridge.call("math", "sqrt", [16.0], [], opts()) == {:ok, 4.0}
    assert SnakeBridge.call!("json", "dumps", [%{"test" => "data"}], [], opts()) == ~s({"test": "data"})
    assert SnakeBridge.eval!("x * y", %{"x" => 6, "y" => 7}, opts()) == 42
    assert SnakeBridge.call!("builtins", "pow", [2, 200], [], opts()) == Integer.pow(2, 200)
    value = %{"t" => {1, 2.5, nil}, "s" => MapSet.new([1, 2]), "d" => ~D[2024-01-02], "b" => <<255, 0>>}
    assert SnakeBridge.eval!("x", %{"x" => value}, opts()) == value
  end

  test "objects live in their worker, and calls on them go there" do
    counter = SnakeBridge.new!("collections", "Counter", ["abracadabra"], [], opts())
    assert %Object{type: "collections.Counter", owner: {:port, worker}} = counter
    assert is_pid(worker)
    assert inspect(counter) =~ "#Python<collections.Counter Counter({'a': 5"
    # no backend option needed: the object says where it lives
    for _ <- 1..10, do: assert(SnakeBridge.method!(counter, "most_common", [1]) == [{"a", 5}])
    assert SnakeBridge.to_elixir!(counter) == %{"a" => 5, "b" => 2, "c" => 1, "d" => 1, "r" => 2}
    assert SnakeBridge.getattr!(SnakeBridge.new!("fractions", "Fraction", [3, 4], [], opts()), "denominator") == 4
  end

  test "Python errors and unconvertible terms are reported as in-process" do
    assert {:error, %PythonError{type: "JSONDecodeError"}} = SnakeBridge.call("json", "loads", ["{bad"], [], opts())
    assert {:error, %PythonError{type: "ModuleNotFoundError"}} = SnakeBridge.call("nope_nope", "f", [], [], opts())
    assert {:error, %ArgumentError{message: message}} = SnakeBridge.call("json", "dumps", [[<<1::3>>]], [], opts())
    assert message =~ inspect(<<1::3>>)
  end

  test "print output reaches the caller's group leader" do
    assert ExUnit.CaptureIO.capture_io(fn -> SnakeBridge.call!("builtins", "print", ["from a worker"], [], opts()) end) ==
             "from a worker\n"
  end

  test "streams over a worker" do
    assert SnakeBridge.stream("itertools", "count", [5], [], opts()) |> Enum.take(3) == [5, 6, 7]
    assert SnakeBridge.stream("builtins", "range", [10_000], [], opts()) |> Enum.sum() == Enum.sum(0..9_999)
  end

  test "a timeout interrupts the Python work and the worker stays usable" do
    {us, result} = :timer.tc(fn -> SnakeBridge.exec("while True: pass", %{}, opts(timeout: 200)) end)
    assert {:error, %TimeoutError{}} = result
    assert us < 1_000_000
    assert {:error, %TimeoutError{}} = SnakeBridge.call("time", "sleep", [10], [], opts(timeout: 100))
    Process.sleep(300)
    for _ <- 1..4, do: assert(SnakeBridge.call!("math", "sqrt", [4.0], [], opts()) == 2.0)
  end

  test "a worker that exits or segfaults: its callers get WorkerCrashError, the pool restarts it" do
    assert {:error, %WorkerCrashError{}} = SnakeBridge.call("os", "_exit", [3], [], opts())
    assert {:error, %WorkerCrashError{}} = SnakeBridge.call("ctypes", "string_at", [0], [], opts())
    # the BEAM and the pool carry on
    Process.sleep(200)
    for _ <- 1..4, do: assert(SnakeBridge.call!("math", "sqrt", [9.0], [], opts()) == 3.0)
  end

  test "a worker killed from outside (as the OOM killer does) mid-call: the caller learns at once" do
    # Pin a worker: the caller's object makes the call go to it.
    obj = SnakeBridge.eval!("__import__('time')", %{}, opts(return: :ref))
    {:port, worker} = obj.owner
    {port, _ids, _channel} = SnakeBridge.Workers.lookup(worker)
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    caller = Task.async(fn -> :timer.tc(fn -> SnakeBridge.method(obj, "sleep", [5]) end) end)
    Process.sleep(200)
    {_, 0} = System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
    {us, result} = Task.await(caller, 5_000)
    assert {:error, %WorkerCrashError{reason: {:exit_status, 137}}} = result
    assert us < 1_500_000
    # A fresh worker takes its place; the others never noticed.
    Process.sleep(200)
    for _ <- 1..4, do: assert(SnakeBridge.call!("math", "sqrt", [4.0], [], opts()) == 2.0)
  end

  # Callers do not monitor a worker on their node (SnakeBridge.Workers sends
  # the crash notices of one killed outright, whose terminate/2 never runs).
  test "a worker process killed outright mid-call: the caller learns at once" do
    obj = SnakeBridge.eval!("__import__('time')", %{}, opts(return: :ref))
    {:port, worker} = obj.owner
    caller = Task.async(fn -> :timer.tc(fn -> SnakeBridge.method(obj, "sleep", [5]) end) end)
    Process.sleep(200)
    Process.exit(worker, :kill)
    {us, result} = Task.await(caller, 5_000)
    assert {:error, %WorkerCrashError{reason: :killed, worker: ^worker}} = result
    assert us < 1_500_000
    Process.sleep(200)
    for _ <- 1..4, do: assert(SnakeBridge.call!("math", "sqrt", [4.0], [], opts()) == 2.0)
  end

  test "objects of a dead worker fail clearly" do
    obj = SnakeBridge.new!("collections", "OrderedDict", [], [], opts())
    {:port, worker} = obj.owner
    ref = Process.monitor(worker)
    Process.exit(worker, :kill)
    assert_receive {:DOWN, ^ref, :process, ^worker, _}, 2_000
    assert {:error, %WorkerCrashError{reason: :object_owner_gone}} = SnakeBridge.method(obj, "keys")
    # the pool has a new worker in its place
    Process.sleep(200)
    assert SnakeBridge.call!("math", "sqrt", [4.0], [], opts()) == 2.0
  end

  # Objects of a class of this test's own, counted in Python: other tests use
  # the same pool concurrently, so the worker's total handle count would not do.
  @tracked """
  import sys, types
  if 'sb_tracked' not in sys.modules:
      m = types.ModuleType('sb_tracked')
      class Tracked:
          live = 0
          def __init__(self, i):
              Tracked.live += 1
          def __del__(self):
              Tracked.live -= 1
      m.Tracked = Tracked
      sys.modules['sb_tracked'] = m
  """

  defp live_tracked(worker) do
    send(worker, :flush_releases)

    {:ok, n} =
      SnakeBridge.Runtime.run({:eval, "__import__('sb_tracked').Tracked.live", %{}}, backend: {:worker, worker})

    n
  end

  defp eventually(fun, tries \\ 100) do
    cond do
      fun.() ->
        true

      tries == 0 ->
        false

      true ->
        for pid <- Process.list(), do: :erlang.garbage_collect(pid)
        Process.sleep(50)
        eventually(fun, tries - 1)
    end
  end

  test "handles are released when Elixir garbage-collects the objects" do
    task =
      Task.async(fn ->
        SnakeBridge.exec!(@tracked, %{}, opts())
        objects = for i <- 1..200, do: SnakeBridge.new!("sb_tracked", "Tracked", [i], [], opts())
        # (A process keeps its worker: every object is in the first one's.)
        %SnakeBridge.Object{owner: {:port, worker}} = hd(objects)
        {worker, live_tracked(worker)}
      end)

    {worker, live} = Task.await(task)
    assert live == 200
    # the task's heap, and with it the objects, is gone: the worker drops them
    assert eventually(fn -> live_tracked(worker) == 0 end)
  end

  test "handles collected together reach their worker in a few notices, not a message each" do
    # (A worker of this test's own: other tests' objects would add notices.)
    start_supervised!({SnakeBridge.Pool, name: SnakeBridge.PoolTest.Releases, size: 1})
    o = [backend: {:pool, SnakeBridge.PoolTest.Releases}]
    SnakeBridge.exec!(@tracked, %{}, o)
    [{worker, _}] = SnakeBridge.Pool.workers(SnakeBridge.PoolTest.Releases)

    counter =
      spawn_link(fn ->
        receive_loop = fn loop, notices, singles ->
          receive do
            {:trace, ^worker, :receive, {:snakebridge_releases, _}} -> loop.(loop, notices + 1, singles)
            {:trace, ^worker, :receive, {:snakebridge_release, _}} -> loop.(loop, notices, singles + 1)
            {:trace, ^worker, :receive, _} -> loop.(loop, notices, singles)
            {:count, from} -> send(from, {:counted, notices, singles})
          end
        end

        receive_loop.(receive_loop, 0, 0)
      end)

    1 = :erlang.trace(worker, true, [:receive, {:tracer, counter}])

    # 2,500 objects, all collected at once when the task's heap goes.
    task = Task.async(fn -> length(for i <- 1..2_500, do: SnakeBridge.new!("sb_tracked", "Tracked", [i], [], o)) end)
    assert Task.await(task, 30_000) == 2_500
    assert eventually(fn -> live_tracked(worker) == 0 end)

    :erlang.trace(worker, false, [:receive])
    send(counter, {:count, self()})
    assert_receive {:counted, notices, singles}, 5_000
    # one for the first id of a batch, one per 1,000 more (and the flushes
    # live_tracked/1 asks for meanwhile let a few batches start again)
    assert notices >= 1 and notices < 50, "#{notices} release notices for 2,500 handles"
    assert singles == 0
  end

  test "a worker is recycled after :max_calls, transparently" do
    start_supervised!({SnakeBridge.Pool, name: SnakeBridge.PoolTest.Recycled, size: 1, max_calls: 5})

    pids =
      for _ <- 1..12, do: SnakeBridge.call!("os", "getpid", [], [], backend: {:pool, SnakeBridge.PoolTest.Recycled})

    assert length(Enum.uniq(pids)) >= 2
  end

  test "stopping the pool leaves no worker OS process or subprocess behind" do
    start_supervised!({SnakeBridge.Pool, name: SnakeBridge.PoolTest.Stopped, size: 1})
    o = [backend: {:pool, SnakeBridge.PoolTest.Stopped}]
    worker_pid = SnakeBridge.call!("os", "getpid", [], [], o)
    child = SnakeBridge.eval!("__import__('subprocess').Popen(['sleep', '60']).pid", %{}, o)
    stop_supervised!({SnakeBridge.Pool, SnakeBridge.PoolTest.Stopped})
    Process.sleep(500)
    refute File.exists?("/proc/#{worker_pid}")
    refute File.exists?("/proc/#{child}") and not (File.read!("/proc/#{child}/stat") =~ ") Z ")
  end
end
