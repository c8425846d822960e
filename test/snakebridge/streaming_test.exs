defmodule SnakeBridge.StreamingTest do
  # Python iterators as lazy Elixir streams, and results delivered as messages
  # (docs/streaming.md), against the in-process backend.
  use ExUnit.Case, async: true

  setup_all do
    # A module of generators with observable side effects, one namespace per test run.
    %{"gen" => gen, "bad" => bad, "closed" => closed, "produced" => produced, "slow" => slow} =
      SnakeBridge.exec!("""
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
      """)

    # exec returns the lists' values; the tests watch the live lists through the
    # functions' module namespace.
    namespace = SnakeBridge.getattr!(gen, "__globals__", return: :ref)
    live = fn name -> SnakeBridge.method!(namespace, "__getitem__", [name], [], return: :ref) end
    _ = {closed, produced}
    %{gen: gen, bad: bad, closed: live.("closed"), produced: live.("produced"), slow: slow}
  end

  defp closed(ctx), do: SnakeBridge.to_elixir!(ctx.closed)

  test "itertools.count with Enum.take" do
    assert SnakeBridge.stream("itertools", "count", [10]) |> Enum.take(3) == [10, 11, 12]
    assert SnakeBridge.stream("itertools", "count", [0, 5]) |> Stream.map(&(&1 * 2)) |> Enum.take(4) == [0, 10, 20, 30]
  end

  test "nothing runs until the stream is enumerated", ctx do
    label = "lazy-#{System.unique_integer([:positive])}"
    stream = SnakeBridge.stream(ctx.gen, nil, [label])
    refute label in closed(ctx)
    assert Enum.take(stream, 1) == [0]
  end

  test "halting early closes the generator: its finally runs, and it ran at most one batch ahead", ctx do
    label = "early-#{System.unique_integer([:positive])}"
    before = length(SnakeBridge.to_elixir!(ctx.produced))
    assert SnakeBridge.stream(ctx.gen, nil, [label]) |> Enum.take(5) == [0, 1, 2, 3, 4]
    assert label in closed(ctx)
    # the first batch is 8 items: the generator advanced 8 times, not unboundedly
    assert length(SnakeBridge.to_elixir!(ctx.produced)) - before <= 8
  end

  test "Stream.take_while halts and closes too", ctx do
    label = "take-while-#{System.unique_integer([:positive])}"

    assert SnakeBridge.stream(ctx.gen, nil, [label]) |> Stream.take_while(&(&1 < 20)) |> Enum.to_list() ==
             Enum.to_list(0..19)

    assert label in closed(ctx)
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
    stream = SnakeBridge.stream("builtins", "len", [[1, 2]])
    assert_raise SnakeBridge.PythonError, ~r/TypeError/, fn -> Enum.to_list(stream) end
  end

  test "a 100,000-item stream consumed by Stream.chunk_every" do
    chunks = SnakeBridge.stream("builtins", "range", [100_000]) |> Stream.chunk_every(1000) |> Enum.to_list()
    assert length(chunks) == 100
    assert Enum.all?(chunks, &(length(&1) == 1000))
    assert List.flatten(chunks) == Enum.to_list(0..99_999)
  end

  test "a sqlite3 cursor iterated as a stream" do
    conn = SnakeBridge.call!("sqlite3", "connect", [":memory:"], check_same_thread: false)
    SnakeBridge.method!(conn, "execute", ["create table t (x integer, name text)"])
    rows = for i <- 1..500, do: [i, "row #{i}"]
    SnakeBridge.method!(conn, "executemany", ["insert into t values (?, ?)", rows])
    cursor = SnakeBridge.method!(conn, "execute", ["select x, name from t order by x"])

    assert SnakeBridge.iter(cursor) |> Enum.map(fn {x, name} -> {x, name} end) ==
             Enum.map(rows, &List.to_tuple/1)
  end

  test "iter/2 over any iterable object: a dict's items, a set, a Python list held as a ref" do
    d = SnakeBridge.eval!("{'a': 1, 'b': 2}", %{}, return: :ref)

    assert SnakeBridge.method!(d, "items", [], [], return: :ref) |> SnakeBridge.iter() |> Enum.sort() == [
             {"a", 1},
             {"b", 2}
           ]

    big = SnakeBridge.eval!("list(range(3000))", %{}, return: :ref)
    assert SnakeBridge.iter(big) |> Enum.sum() == Enum.sum(0..2999)
    assert SnakeBridge.iter(big, batch_size: 7) |> Enum.take(10) == Enum.to_list(0..9)
  end

  test "items convert like results; return: :ref keeps them as objects" do
    [a, b] = SnakeBridge.stream("builtins", "iter", [[1, 2]], [], return: :ref) |> Enum.to_list()
    assert %SnakeBridge.Object{type: "int"} = a
    assert SnakeBridge.to_elixir!(b) == 2
  end

  describe "async_call" do
    test "delivers the result as a message with the handle's ref" do
      handle = SnakeBridge.async_call("math", "factorial", [20])
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

      handle = SnakeBridge.async_call("json", "loads", ["{bad"], [], to: receiver)
      ref = handle.ref
      assert_receive {:got, {:snakebridge, ^ref, {:error, %SnakeBridge.PythonError{type: "JSONDecodeError"}}}}, 5_000
    end

    test "returns at once while Python works, and await/2 collects the result" do
      {micros, handle} = :timer.tc(fn -> SnakeBridge.async_call("time", "sleep", [0.3]) end)
      assert micros < 100_000
      assert SnakeBridge.await(handle, 5_000) == {:ok, nil}
    end

    test "cancel interrupts the work and no message arrives afterwards" do
      handle = SnakeBridge.async_call("time", "sleep", [10])
      Process.sleep(50)
      {micros, :ok} = :timer.tc(fn -> SnakeBridge.cancel(handle) end)
      assert micros < 1_000_000
      ref = handle.ref
      refute_receive {:snakebridge, ^ref, _}, 300
      # the thread is free again
      assert SnakeBridge.call!("math", "sqrt", [4.0]) == 2.0
    end

    test "cancel after delivery removes the delivered message" do
      handle = SnakeBridge.async_call("math", "sqrt", [4.0])
      ref = handle.ref
      Process.sleep(200)
      assert :ok = SnakeBridge.cancel(handle)
      refute_received {:snakebridge, ^ref, _}
    end
  end

  describe "async_stream" do
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

    test "delivers batches then :done" do
      handle = SnakeBridge.async_stream("builtins", "range", [100], [], batch_size: 10)
      assert collect(handle) == {:done, Enum.to_list(0..99)}
    end

    test "an exception arrives after the items before it", ctx do
      handle = SnakeBridge.async_stream(ctx.bad, nil, [5])
      assert {:error, [0, 1, 2, 3, 4], %SnakeBridge.PythonError{type: "ValueError"}} = collect(handle)
    end

    test "backpressure: without acks at most :window batches are delivered", ctx do
      label = "window-#{System.unique_integer([:positive])}"
      handle = SnakeBridge.async_stream(ctx.gen, nil, [label], [], window: 2, batch_size: 8)
      ref = handle.ref
      batches = count_batches(ref, 0)
      assert batches == 2
      assert :ok = SnakeBridge.cancel(handle)
      refute_received {:snakebridge_stream, ^ref, _}
      # cancelling closed the generator
      Process.sleep(100)
      assert label in closed(ctx)
    end
  end

  describe "timeouts" do
    test "a stream whose batch takes too long raises TimeoutError in the consumer", ctx do
      assert_raise SnakeBridge.TimeoutError, fn ->
        SnakeBridge.stream(ctx.slow, nil, [100, 0.5], [], timeout: 200) |> Enum.to_list()
      end
    end
  end
end
