defmodule SnakeBridge.DistributedTest do
  # A pool spanning BEAM nodes: `distributed: true` pools of the same name on
  # connected nodes share their workers through a :pg group. The other node is
  # a real `:peer` node on this machine, with its own port workers.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers, only: [wait_until: 2]

  alias SnakeBridge.{Object, WorkerCrashError}

  @pool SnakeBridge.DistributedTest.Pool

  setup_all do
    {_, 0} = System.cmd("epmd", ["-daemon"])

    unless Node.alive?() do
      {:ok, _} = Node.start(:"snakebridge_test_#{System.unique_integer([:positive])}@127.0.0.1", :longnames)
      on_exit(fn -> Node.stop() end)
    end

    :ok
  end

  # A peer node running SnakeBridge with a distributed pool of `size` workers.
  defp start_peer(size) do
    paths = Enum.flat_map(:code.get_path(), fn path -> [~c"-pa", path] end)
    name = :"peer_#{System.unique_integer([:positive])}"
    {:ok, peer, node} = :peer.start(%{name: name, host: ~c"127.0.0.1", longnames: true, args: paths})
    :ok = :erpc.call(node, Application, :load, [:snakebridge])
    pools = [[name: @pool, size: size, distributed: true]]
    :ok = :erpc.call(node, Application, :put_env, [:snakebridge, :pools, pools])
    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:snakebridge])
    {peer, node}
  end

  defp stop_peer(peer) do
    try do
      :peer.stop(peer)
    catch
      :exit, _ -> :ok
    end
  end

  defp remote_workers, do: for({pid, node} <- SnakeBridge.Pool.workers(@pool), node != node(), do: pid)

  defp opts(extra \\ []), do: [backend: {:pool, @pool}] ++ extra

  test "calls route to workers on another node; results and objects come back" do
    {peer, node} = start_peer(1)
    on_exit(fn -> stop_peer(peer) end)
    # No local workers: everything runs on the peer.
    start_supervised!({SnakeBridge.Pool, name: @pool, size: 0, distributed: true})
    assert wait_until(5_000, fn -> length(remote_workers()) == 1 end)
    [remote] = remote_workers()
    assert node(remote) == node

    assert SnakeBridge.call("math", "sqrt", [2.0], [], opts()) == {:ok, :math.sqrt(2.0)}
    value = %{"t" => {1, 2.5, nil}, "s" => MapSet.new([1, 2]), "b" => <<255, 0>>, "big" => Integer.pow(3, 90)}
    assert SnakeBridge.eval!("x", %{"x" => value}, opts()) == value

    # The worker is a process of the peer node's VM (spawned through its
    # erl_child_setup), not of ours.
    remote_os_pid = :erpc.call(node, :os, :getpid, [])
    {:ok, child_setup} = SnakeBridge.call("os", "getppid", [], [], opts())
    stat = File.read!("/proc/#{child_setup}/stat")
    [_, after_name] = String.split(stat, ") ", parts: 2)
    [_state, grandparent | _] = String.split(after_name)
    assert grandparent == to_string(remote_os_pid)
    refute grandparent == System.pid()

    counter = SnakeBridge.new!("collections", "Counter", ["abracadabra"], [], opts())
    assert %Object{owner: {:port, ^remote}} = counter
    assert SnakeBridge.method!(counter, "most_common", [2]) == [{"a", 5}, {"b", 2}]
    assert SnakeBridge.to_elixir!(counter)["r"] == 2
    assert inspect(counter) =~ "Counter({'a': 5"

    # Callbacks: the worker on the peer relays them to this node, where the
    # function runs (nested calls go back to the peer); pids cross both ways.
    me = self()
    key = fn x -> SnakeBridge.eval!("-x", %{"x" => x}, opts()) end
    assert SnakeBridge.call("builtins", "sorted", [[1, 3, 2]], [key: key], opts()) == {:ok, [3, 2, 1]}
    assert SnakeBridge.eval("__import__('snakebridge').send(p, 'from the peer')", %{"p" => me}, opts()) == {:ok, nil}
    assert_receive "from the peer", 5_000

    assert {:error, %SnakeBridge.PythonError{elixir: {:error, %RuntimeError{message: "remote boom"}, _}}} =
             SnakeBridge.eval("f()", %{"f" => fn -> raise "remote boom" end}, opts())

    # Streams and output work across nodes too.
    assert SnakeBridge.stream("builtins", "range", [1_000], [], opts()) |> Enum.sum() == Enum.sum(0..999)

    assert ExUnit.CaptureIO.capture_io(fn -> SnakeBridge.call!("builtins", "print", ["from the peer"], [], opts()) end) ==
             "from the peer\n"
  end

  test "objects of a remote worker are released when garbage-collected here" do
    {peer, _node} = start_peer(1)
    on_exit(fn -> stop_peer(peer) end)
    start_supervised!({SnakeBridge.Pool, name: @pool, size: 0, distributed: true})
    assert wait_until(5_000, fn -> length(remote_workers()) == 1 end)
    [remote] = remote_workers()

    handles = fn ->
      SnakeBridge.Runtime.run({:stats}, backend: {:worker, remote}, timeout: 5_000) |> elem(1) |> Map.get("handles")
    end

    before = handles.()

    task =
      Task.async(fn ->
        objs = for i <- 1..50, do: SnakeBridge.new!("fractions", "Fraction", [i, 101], [], opts())
        Enum.map(objs, &SnakeBridge.getattr!(&1, "numerator"))
      end)

    assert Task.await(task) == Enum.to_list(1..50)
    # The task's heap is gone; its resources' release messages travel through
    # this node's relay to the remote worker.
    :erlang.garbage_collect()
    assert wait_until(5_000, fn -> handles.() == before end)
  end

  test "a pool with local and remote workers spreads concurrent calls over both nodes" do
    {peer, node} = start_peer(1)
    on_exit(fn -> stop_peer(peer) end)
    start_supervised!({SnakeBridge.Pool, name: @pool, size: 1, distributed: true})
    assert wait_until(5_000, fn -> length(SnakeBridge.Pool.workers(@pool)) == 2 end)

    owners =
      1..8
      |> Task.async_stream(
        fn _ ->
          obj = SnakeBridge.eval!("__import__('time').sleep(0.2) or object()", %{}, opts(return: :ref))
          %Object{owner: {:port, pid}} = obj
          node(pid)
        end,
        max_concurrency: 8,
        timeout: 10_000
      )
      |> Enum.map(fn {:ok, n} -> n end)

    assert Enum.sort(Enum.uniq(owners)) == Enum.sort([node(), node])
  end

  test "losing the node is handled like a crashed worker" do
    {peer, _node} = start_peer(1)
    start_supervised!({SnakeBridge.Pool, name: @pool, size: 0, distributed: true})
    assert wait_until(5_000, fn -> length(remote_workers()) == 1 end)
    obj = SnakeBridge.new!("collections", "OrderedDict", [], [], opts())

    caller = Task.async(fn -> SnakeBridge.call("time", "sleep", [30], [], opts()) end)
    # Let the request reach the remote worker, then lose the node.
    Process.sleep(300)
    {us, _} = :timer.tc(fn -> stop_peer(peer) end)
    assert {:error, %WorkerCrashError{reason: :noconnection}} = Task.await(caller, 5_000)
    assert us < 5_000_000

    # Its objects fail clearly, and with no worker left the pool says so.
    assert {:error, %WorkerCrashError{reason: :object_owner_gone}} = SnakeBridge.method(obj, "keys", [])
    assert wait_until(5_000, fn -> remote_workers() == [] end)
    assert {:error, %WorkerCrashError{reason: :no_live_worker}} = SnakeBridge.call("math", "sqrt", [1.0], [], opts())
  end
end
