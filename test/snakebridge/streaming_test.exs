defmodule SnakeBridge.StreamingTest do
  # Python iterators as lazy Elixir streams, and results delivered as messages
  # (docs/streaming.md), on both backends: in-process and a pool of port workers
  # (test/support/backends.ex).
  use ExUnit.Case, async: true

  import SnakeBridge.Test.Helpers

  alias SnakeBridge.TestBackends

  # Generators and a sleeper with observable side effects. On the pool the
  # namespace lives in one worker, and every call on the functions (and on the
  # generators they return) goes to that worker, where the lists are watched.
  @fixtures """
  closed = []
  produced = []

  def gen(label):
      i = 0
      try:
          while True:
              produced.append(i)
              yield i
              i += 1
      finally:
          closed.append(label)

  def bad(n):
      for i in range(n):
          yield i
      raise ValueError("boom after %d" % n)

  def slow(n, delay):
      import time
      for i in range(n):
          time.sleep(delay)
          yield i

  def sleeper(label, seconds):
      import time
      try:
          time.sleep(seconds)
      finally:
          closed.append(label)
  """

  # A fresh namespace per test: exec returns the lists' values; the tests watch
  # the live lists through the functions' module namespace.
  defp fixtures(backend) do
    %{"gen" => gen, "bad" => bad, "slow" => slow, "sleeper" => sleeper, "closed" => [], "produced" => []} =
      SnakeBridge.exec!(@fixtures, %{}, backend: backend)

    namespace = SnakeBridge.getattr!(gen, "__globals__", return: :ref)
    live = fn name -> SnakeBridge.method!(namespace, "__getitem__", [name], [], return: :ref) end
    %{gen: gen, bad: bad, slow: slow, sleeper: sleeper, closed: live.("closed"), produced: live.("produced")}
  end

  defp closed(ctx), do: SnakeBridge.to_elixir!(ctx.closed)
  defp produced(ctx), do: SnakeBridge.to_elixir!(ctx.produced)

  defp label(prefix), do: "#{prefix}-#{System.unique_integer([:positive])}"

  defp collect(handle, acc \\ []) do
    ref = handle.ref

    receive do
      {:snakebridge_stream, ^ref, {:items, items}} ->
        SnakeBridge.ack(handle)
        collect(handle, acc ++ items)

      {:snakebridge_stream, ^ref, :done} ->
        {:done, acc}

      {:snakebridge_stream, ^ref, {:error, e}} ->
        {:error, acc, e}
    after
      10_000 -> flunk("no stream message")
    end
  end

  # Batches that arrive without acknowledging any (the producer waits after :window).
  defp count_batches(ref, n) do
    receive do
      {:snakebridge_stream, ^ref, {:items, _}} -> count_batches(ref, n + 1)
    after
      300 -> n
    end
  end

  for backend <- TestBackends.all() do
    describe "streams (#{TestBackends.name(backend)})" do
      @backend backend
      setup do: fixtures(@backend)

      test "itertools.count with Enum.take" do
        assert SnakeBridge.stream("itertools", "count", [10], [], backend: @backend) |> Enum.take(3) == [10, 11, 12]

        assert SnakeBridge.stream("itertools", "count", [0, 5], [], backend: @backend)
               |> Stream.map(&(&1 * 2))
               |> Enum.take(4) == [0, 10, 20, 30]
      end

      test "nothing runs until the stream is enumerated", ctx do
        label = label("lazy")
        stream = SnakeBridge.stream(ctx.gen, nil, [label])
        assert produced(ctx) == []
        refute label in closed(ctx)
        assert Enum.take(stream, 1) == [0]
      end

      test "halting early closes the generator: its finally runs, and it ran at most one batch ahead", ctx do
        label = label("early")
        assert SnakeBridge.stream(ctx.gen, nil, [label]) |> Enum.take(5) == [0, 1, 2, 3, 4]
        assert closed(ctx) == [label]
        # the first batch is 8 items: the generator advanced 8 times, not unboundedly
        assert length(produced(ctx)) in 5..8
      end

      test "Stream.take_while halts and closes too", ctx do
        label = label("take-while")

        assert SnakeBridge.stream(ctx.gen, nil, [label]) |> Stream.take_while(&(&1 < 20)) |> Enum.to_list() ==
                 Enum.to_list(0..19)

        assert closed(ctx) == [label]
      end

      test "a Python exception mid-stream raises in the consumer after the items before it", ctx do
        parent = self()

        assert_raise SnakeBridge.PythonError, ~r/ValueError: boom after 3/, fn ->
          SnakeBridge.stream(ctx.bad, nil, [3]) |> Enum.each(&send(parent, {:item, &1}))
        end

        for i <- 0..2, do: assert_received({:item, ^i})
        refute_received {:item, _}
      end

      test "an error before the first item (not iterable) raises when enumerated" do
        stream = SnakeBridge.stream("builtins", "len", [[1, 2]], [], backend: @backend)
        assert_raise SnakeBridge.PythonError, ~r/TypeError/, fn -> Enum.to_list(stream) end
      end

      test "a 100,000-item stream consumed by Stream.chunk_every" do
        chunks =
          SnakeBridge.stream("builtins", "range", [100_000], [], backend: @backend)
          |> Stream.chunk_every(1000)
          |> Enum.to_list()

        assert length(chunks) == 100
        assert Enum.all?(chunks, &(length(&1) == 1000))
        assert List.flatten(chunks) == Enum.to_list(0..99_999)
      end

      test "a sqlite3 cursor iterated as a stream" do
        # sqlite3's default thread check: this process's calls, the stream's
        # batches included, run on one Python thread.
        conn = SnakeBridge.call!("sqlite3", "connect", [":memory:"], [], backend: @backend)
        SnakeBridge.method!(conn, "execute", ["create table t (x integer, name text)"])
        rows = for i <- 1..500, do: [i, "row #{i}"]
        SnakeBridge.method!(conn, "executemany", ["insert into t values (?, ?)", rows])
        cursor = SnakeBridge.method!(conn, "execute", ["select x, name from t order by x"])

        assert SnakeBridge.iter(cursor) |> Enum.map(fn {x, name} -> {x, name} end) ==
                 Enum.map(rows, &List.to_tuple/1)
      end

      test "iter/2 over any iterable object: a dict's items, a set, a Python list held as a ref" do
        d = SnakeBridge.eval!("{'a': 1, 'b': 2}", %{}, return: :ref, backend: @backend)

        assert SnakeBridge.method!(d, "items", [], [], return: :ref) |> SnakeBridge.iter() |> Enum.sort() == [
                 {"a", 1},
                 {"b", 2}
               ]

        s = SnakeBridge.eval!("{3, 1, 2}", %{}, return: :ref, backend: @backend)
        assert SnakeBridge.iter(s) |> Enum.sort() == [1, 2, 3]

        big = SnakeBridge.eval!("list(range(3000))", %{}, return: :ref, backend: @backend)
        assert SnakeBridge.iter(big) |> Enum.sum() == Enum.sum(0..2999)
        assert SnakeBridge.iter(big, batch_size: 7) |> Enum.take(10) == Enum.to_list(0..9)
      end

      test "items convert like results; return: :ref keeps them as objects" do
        [a, b] = SnakeBridge.stream("builtins", "iter", [[1, 2]], [], return: :ref, backend: @backend) |> Enum.to_list()

        assert %SnakeBridge.Object{type: "int"} = a
        assert SnakeBridge.to_elixir!(b) == 2
      end

      test "a stream whose batch takes too long raises TimeoutError in the consumer", ctx do
        assert_raise SnakeBridge.TimeoutError, fn ->
          SnakeBridge.stream(ctx.slow, nil, [100, 0.5], [], timeout: 200) |> Enum.to_list()
        end

        # the backend keeps answering
        assert SnakeBridge.stream(ctx.gen, nil, [label("after-timeout")]) |> Enum.take(3) == [0, 1, 2]
      end
    end

    describe "async_call (#{TestBackends.name(backend)})" do
      @backend backend
      setup do: fixtures(@backend)

      test "delivers the result as a message with the handle's ref" do
        handle = SnakeBridge.async_call("math", "factorial", [20], [], backend: @backend)
        ref = handle.ref
        assert_receive {:snakebridge, ^ref, {:ok, 2_432_902_008_176_640_000}}, 5_000
      end

      test "to: another process, and errors as exception structs" do
        parent = self()

        receiver =
          spawn(fn ->
            receive do
              msg -> send(parent, {:got, msg})
            end
          end)

        handle = SnakeBridge.async_call("json", "loads", ["{bad"], [], to: receiver, backend: @backend)
        ref = handle.ref
        assert_receive {:got, {:snakebridge, ^ref, {:error, %SnakeBridge.PythonError{type: "JSONDecodeError"}}}}, 5_000
      end

      test "returns at once while Python works, and await/2 collects the result" do
        {micros, handle} = :timer.tc(fn -> SnakeBridge.async_call("time", "sleep", [0.3], [], backend: @backend) end)
        assert micros < 100_000
        assert SnakeBridge.await(handle, 5_000) == {:ok, nil}
      end

      test "cancel interrupts the work and no message arrives afterwards", ctx do
        label = label("cancelled")
        handle = SnakeBridge.async_call(ctx.sleeper, nil, [label, 10])
        Process.sleep(50)
        {micros, :ok} = :timer.tc(fn -> SnakeBridge.cancel(handle) end)
        assert micros < 1_000_000
        ref = handle.ref
        # the sleep was interrupted: its finally ran long before the 10 s were up
        assert wait_until(1_000, fn -> closed(ctx) == [label] end), "the cancelled call kept running"
        refute_receive {:snakebridge, ^ref, _}, 300
        # the backend is free again
        assert SnakeBridge.call!("math", "sqrt", [4.0], [], backend: @backend) == 2.0
      end

      test "cancel after delivery removes the delivered message" do
        handle = SnakeBridge.async_call("math", "sqrt", [4.0], [], backend: @backend)
        ref = handle.ref
        Process.sleep(200)
        assert :ok = SnakeBridge.cancel(handle)
        refute_received {:snakebridge, ^ref, _}
      end
    end

    describe "async_stream (#{TestBackends.name(backend)})" do
      @backend backend
      setup do: fixtures(@backend)

      test "delivers batches then :done" do
        handle = SnakeBridge.async_stream("builtins", "range", [100], [], batch_size: 10, backend: @backend)
        assert collect(handle) == {:done, Enum.to_list(0..99)}
      end

      test "an exception arrives after the items before it", ctx do
        handle = SnakeBridge.async_stream(ctx.bad, nil, [5], [], backend: @backend)
        assert {:error, [0, 1, 2, 3, 4], %SnakeBridge.PythonError{type: "ValueError"}} = collect(handle)
      end

      test "backpressure: without acks at most :window batches are delivered", ctx do
        label = label("window")
        handle = SnakeBridge.async_stream(ctx.gen, nil, [label], [], window: 2, batch_size: 8, backend: @backend)
        ref = handle.ref
        batches = count_batches(ref, 0)
        assert batches == 2
        # the producer waited: the generator advanced for the two batches only
        assert length(produced(ctx)) == 8 + 8
        assert :ok = SnakeBridge.cancel(handle)
        refute_received {:snakebridge_stream, ^ref, _}
        # cancelling closed the generator
        assert wait_until(1_000, fn -> closed(ctx) == [label] end)
      end
    end
  end
end
