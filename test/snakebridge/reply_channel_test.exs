defmodule SnakeBridge.ReplyChannelTest do
  # A port worker's reply channel (c_src/nif/reply_channel.hpp,
  # docs/protocol.md "The reply channel"): the program's frames go through a
  # FIFO read by the NIF, a lone caller reads its own reply, many callers get
  # theirs in batches read by the worker, and nothing a request produces is
  # lost, reordered or left behind. Real workers, real processes.
  use ExUnit.Case, async: false

  alias SnakeBridge.{Native, TimeoutError, Workers}
  alias SnakeBridge.Test.Helpers

  @pool SnakeBridge.ReplyChannelTest.Pool

  setup_all do
    start_supervised!({SnakeBridge.Pool, name: @pool, size: 1})
    :ok
  end

  defp opts(extra \\ []), do: [backend: {:pool, @pool}] ++ extra

  # The pool's worker: the one whose OS process answers os.getpid().
  defp worker(o \\ opts()) do
    os_pid = SnakeBridge.call!("os", "getpid", [], [], o)

    Enum.find_value(:ets.tab2list(Workers), fn {pid, port, _ids, _channel} ->
      if Port.info(port, :os_pid) == {:os_pid, os_pid}, do: pid
    end)
  end

  defp channel(worker) do
    {_port, _ids, channel} = Workers.lookup(worker)
    channel
  end

  defp info(worker), do: Native.channel_info(channel(worker))

  test "a lone caller reads its own reply; 100 callers at once get theirs from the worker's batches" do
    w = worker()
    # (A reply slower than the caller's poll comes as a message; and callers
    # do not poll while the machine is found busy.)
    {before, lone} =
      Helpers.without_busy_finding(fn ->
        before = info(w)
        results = for i <- 1..200, do: SnakeBridge.call!("math", "sqrt", [i * 1.0], [], opts())
        assert results == for(i <- 1..200, do: :math.sqrt(i))
        {before, info(w)}
      end)

    assert lone.polled > before.polled

    answers =
      1..100
      |> Enum.map(fn i ->
        Task.async(fn -> for j <- 1..50, do: SnakeBridge.call!("operator", "mul", [i, j], [], opts()) end)
      end)
      |> Enum.map(&Task.await(&1, 30_000))

    assert answers == for(i <- 1..100, do: for(j <- 1..50, do: i * j))
    crowd = info(w)
    # (Callers poll only while at most two requests are about.)
    assert crowd.routed - lone.routed > 2_500
    assert crowd.batches > lone.batches
    # Fewer reads than replies sent: the worker takes several per wake-up.
    assert crowd.routed - lone.routed > crowd.batches - lone.batches
    assert crowd.pending == 0
  end

  test "output comes before the call returns, in order, whichever way the reply comes" do
    code = "import sys\nfor i in range(5):\n    print('line', i)\n    sys.stdout.flush()\n"

    # (Repeated: the output frames and the reply are read together or apart,
    # by the caller or by the worker, as it happens.)
    for _ <- 1..50 do
      quick = ExUnit.CaptureIO.capture_io(fn -> SnakeBridge.exec!(code, %{}, opts()) end)
      assert quick == Enum.map_join(0..4, &"line #{&1}\n")
    end

    assert {:messages, []} = Process.info(self(), :messages)

    # A reply after the caller's poll (50 µs): it comes as a message.
    slow = code <> "import time\ntime.sleep(0.02)\nprint('done')\n"
    out = ExUnit.CaptureIO.capture_io(fn -> SnakeBridge.exec!(slow, %{}, opts()) end)
    assert out == Enum.map_join(0..4, &"line #{&1}\n") <> "done\n"
  end

  test "messages waiting in the caller's mailbox are left there, in order, and do not slow its calls" do
    for i <- 1..5_000, do: send(self(), {:unrelated, i})
    code = "print('out', flush=True)"

    for _ <- 1..200 do
      assert SnakeBridge.call!("math", "sqrt", [4.0], [], opts()) == 2.0
    end

    for _ <- 1..20 do
      assert ExUnit.CaptureIO.capture_io(fn -> SnakeBridge.exec!(code, %{}, opts()) end) == "out\n"
    end

    {:messages, messages} = Process.info(self(), :messages)
    assert messages == for(i <- 1..5_000, do: {:unrelated, i})

    # A polled reply with nothing else for it does not search the mailbox:
    # 5,000 messages there cost next to nothing, against an empty mailbox in
    # another process (a control in the same run; generous: a search of 5,000
    # messages took ~50 µs a call, a call ~10–20 µs).
    # (Alternating chunks of 50 calls, so that the machine's phases hit both.)
    {crowded, empty} =
      Enum.reduce(1..10, {[], []}, fn _, {crowded, empty} ->
        here = call_times(50)
        there = Task.async(fn -> call_times(50) end) |> Task.await(30_000)
        {here ++ crowded, there ++ empty}
      end)

    assert median(crowded) < median(empty) * 2 + 20

    for _ <- 1..5_000, do: assert_received({:unrelated, _})
  end

  defp call_times(n) do
    for _ <- 1..n do
      t0 = System.monotonic_time(:microsecond)
      SnakeBridge.call!("math", "sqrt", [4.0], [], opts())
      System.monotonic_time(:microsecond) - t0
    end
  end

  defp median(times), do: times |> Enum.sort() |> Enum.at(div(length(times), 2))

  test "a request given up leaves nothing in the caller's mailbox, and the worker goes on" do
    {:messages, []} = Process.info(self(), :messages)
    code = "print('before', flush=True)\nimport time\ntime.sleep(5)"

    ExUnit.CaptureIO.capture_io(fn ->
      assert {:error, %TimeoutError{}} = SnakeBridge.exec(code, %{}, opts(timeout: 200))
    end)

    Process.sleep(100)
    assert {:messages, []} = Process.info(self(), :messages)
    assert SnakeBridge.call!("math", "sqrt", [9.0], [], opts()) == 3.0
    assert info(worker()).pending == 0
  end

  test "a reply larger than one read (64 MiB) arrives whole" do
    data = :crypto.strong_rand_bytes(64 * 1024 * 1024)
    assert SnakeBridge.call!("builtins", "bytes", [SnakeBridge.bytes(data)], [], opts()) == data
    small = for _ <- 1..20, do: SnakeBridge.call!("operator", "add", [1, 2], [], opts())
    assert small == List.duplicate(3, 20)
  end

  test "the FIFO's name is gone once the program opened it" do
    w = worker()
    {:os_pid, os_pid} = w |> Workers.lookup() |> elem(0) |> Port.info(:os_pid)
    # The program writes its replies into the FIFO: an open descriptor of a
    # FIFO, whose path no longer exists.
    links = for fd <- File.ls!("/proc/#{os_pid}/fd"), do: File.read_link!("/proc/#{os_pid}/fd/#{fd}")
    assert Enum.any?(links, &(&1 =~ ~r/snakebridge-.*\.reply \(deleted\)$/))
    prefix = "snakebridge-#{System.pid()}-"
    assert Enum.filter(File.ls!(System.tmp_dir!()), &String.starts_with?(&1, prefix)) == []
  end

  test "a worker killed outright: its channel is closed and its row dropped; callers get a crash, not a hang" do
    {:ok, sup} = SnakeBridge.Pool.start_link(name: SnakeBridge.ReplyChannelTest.Killed, size: 1)
    o = [backend: {:pool, SnakeBridge.ReplyChannelTest.Killed}]
    assert SnakeBridge.call!("math", "sqrt", [4.0], [], o) == 2.0
    victim = worker(o)
    channel = channel(victim)
    caller = Task.async(fn -> SnakeBridge.call("time", "sleep", [10], [], o ++ [timeout: 20_000]) end)
    Process.sleep(200)
    mon = Process.monitor(victim)
    Process.exit(victim, :kill)
    assert_receive {:DOWN, ^mon, :process, ^victim, :killed}, 2_000
    assert {:error, %SnakeBridge.WorkerCrashError{}} = Task.await(caller, 5_000)
    Process.sleep(100)
    assert Workers.lookup(victim) == nil
    # Closed: no longer watched (a read finds nothing, and says so).
    assert Native.channel_read(channel) == [:eof]
    Supervisor.stop(sup)
  end
end
