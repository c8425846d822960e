defmodule SnakeBridge.SharedBytesTest do
  # Large %SnakeBridge.Array{} arguments reach a port worker on this node
  # through POSIX shared memory (docs/protocol.md, "Shared bytes"): the values
  # Python sees are the caller's, wherever the array sits in the request, and
  # no shared-memory object outlives the request, or the worker.
  use ExUnit.Case, async: false
  import Bitwise, only: [<<<: 2]
  import SnakeBridge.Test.Helpers, only: [wait_until: 2]

  alias SnakeBridge.Array

  setup do
    pool = :"shared_bytes_#{System.unique_integer([:positive])}"
    start_supervised!({SnakeBridge.Pool, name: pool, size: 1})
    o = [backend: {:pool, pool}]
    os_pid = SnakeBridge.call!("os", "getpid", [], [], o)
    %{o: o, os_pid: os_pid}
  end

  # The objects named for a worker's program still in /dev/shm.
  defp leftovers(os_pid),
    do: "/dev/shm" |> File.ls!() |> Enum.filter(&String.starts_with?(&1, "snakebridge-#{os_pid}-"))

  defp float_array(n, seed) do
    data = for i <- 1..n, into: <<>>, do: <<i * 0.5 + seed::float-64-native>>
    %Array{data: data, type: {:f, 64}, shape: {n}}
  end

  test "a 4 MiB array argument: numpy sees the caller's values; nothing is left in /dev/shm", %{o: o, os_pid: os_pid} do
    n = 4 <<< 17
    a = float_array(n, 1.0)
    expected = Enum.sum(for i <- 1..n, do: i * 0.5 + 1.0)
    assert SnakeBridge.call!("numpy", "sum", [a], [], o) == expected
    # Read-only, and the bytes are exactly the caller's.
    assert SnakeBridge.eval!("(x.flags.writeable, x.tobytes() == b)", %{"x" => a, "b" => SnakeBridge.bytes(a.data)}, o) ==
             {false, true}

    assert leftovers(os_pid) == []
  end

  test "arrays inside lists, maps, tuples and keyword arguments, next to small ones", %{o: o, os_pid: os_pid} do
    big = float_array(1 <<< 17, 2.0)
    other = float_array(1 <<< 17, 3.0)
    small = float_array(4, 0.0)
    code = "[float(a.sum()) for a in (xs[0], xs[1][0], d['k'], t[1], kw)]"

    assert SnakeBridge.call!(
             "builtins",
             "eval",
             [code, %{"xs" => [big, [other]], "d" => %{"k" => small}, "t" => {1, big}, "kw" => other}],
             [],
             o
           ) ==
             SnakeBridge.eval!(code, %{"xs" => [big, [other]], "d" => %{"k" => small}, "t" => {1, big}, "kw" => other})

    assert {:ok, _} = SnakeBridge.call("numpy", "concatenate", [[big, other]], [dtype: "float64"], o)
    assert leftovers(os_pid) == []
  end

  test "a failed request leaves nothing behind, whether or not the program read the array", %{o: o, os_pid: os_pid} do
    big = float_array(1 <<< 17, 0.0)
    # An argument Python cannot take, after the array (read, then refused).
    assert {:error, _} = SnakeBridge.call("numpy", "sum", [big, [1 | 2]], [], o)
    # A module that does not exist: the arguments are never built.
    assert {:error, %SnakeBridge.PythonError{type: "ModuleNotFoundError"}} =
             SnakeBridge.call("no_such_module_sb", "f", [big], [], o)

    # A call that times out.
    assert {:error, %SnakeBridge.TimeoutError{}} =
             SnakeBridge.eval("__import__('time').sleep(0.5) or len(x)", %{"x" => big}, o ++ [timeout: 100])

    assert leftovers(os_pid) == []
  end

  test "what the program never read is removed when its worker stops", %{o: o, os_pid: os_pid} do
    # As if a caller had written an array and died before sending its request.
    name = "/snakebridge-#{os_pid}-#{System.unique_integer([:positive])}"
    assert :ok = SnakeBridge.Native.shm_write(name, :binary.copy(<<1>>, 4096))
    assert leftovers(os_pid) != []
    {:pool, pool} = o[:backend]
    [{worker, _}] = SnakeBridge.Pool.workers(pool)
    ref = Process.monitor(worker)
    GenServer.stop(worker, :shutdown)
    assert_receive {:DOWN, ^ref, _, _, _}, 5_000
    wait_until(2_000, fn -> leftovers(os_pid) == [] end)
    assert leftovers(os_pid) == []
  end

  test "an array over the 1 GiB a worker reads in one request crosses", %{o: o, os_pid: os_pid} do
    mib = :binary.copy(<<7>>, (1 <<< 20) - 1) <> <<9>>
    data = :binary.copy(mib, 1025)
    n = byte_size(data)
    a = %Array{data: data, type: {:u, 8}, shape: {n}}

    assert SnakeBridge.eval!("(x.nbytes, int(x[0]), int(x[-1]), int(x.sum()))", %{"x" => a}, o ++ [timeout: 60_000]) ==
             {n, :binary.first(data), :binary.last(data), 1025 * ((1 <<< 20) - 1) * 7 + 1025 * 9}

    assert leftovers(os_pid) == []
  end

  describe "replies (to_array, to_columns)" do
    test "a 4 MiB array comes back as Python has it, and stays readable once the object is gone",
         %{o: o, os_pid: os_pid} do
      x = SnakeBridge.eval!("__import__('numpy').arange(1 << 19, dtype='float64') * 1.5", %{}, o ++ [return: :ref])
      expected = SnakeBridge.eval!("x.tobytes()", %{"x" => x}, o)
      assert {:ok, %Array{type: {:f, 64}, shape: {524_288}} = a} = SnakeBridge.to_array(x)
      assert leftovers(os_pid) == []
      # Dropped in the worker; the binary maps its own copy of the bytes.
      SnakeBridge.exec!("del x", %{"x" => x}, o)
      :erlang.garbage_collect()
      assert a.data == expected
    end

    test "a DataFrame's large numeric column", %{o: o, os_pid: os_pid} do
      df =
        SnakeBridge.eval!(
          "__import__('pandas').DataFrame({'a': range(1 << 18), 'b': ['x'] * (1 << 18)})",
          %{},
          o ++ [return: :ref]
        )

      assert {:ok, %{"a" => %Array{shape: {262_144}} = a, "b" => b}} = SnakeBridge.to_columns(df)
      assert Enum.take(Array.to_flat_list(a), 3) == [0, 1, 2] and List.last(Array.to_flat_list(a)) == 262_143
      assert length(b) == 262_144
      assert leftovers(os_pid) == []
    end

    test "the array of a caller that gave up is taken by the worker", %{o: o, os_pid: os_pid} do
      # Transposed: made contiguous by numpy in C (tens of milliseconds for
      # 64 MiB, no bytecode to interrupt), so the reply comes after the cancel.
      x = SnakeBridge.eval!("__import__('numpy').ones((4096, 2048)).T", %{}, o ++ [return: :ref])

      for _ <- 1..3 do
        assert {:error, %SnakeBridge.TimeoutError{}} = SnakeBridge.to_array(x, timeout: 2)
      end

      assert wait_until(3_000, fn -> leftovers(os_pid) == [] end)
      # The worker goes on.
      assert {:ok, %Array{shape: {2048, 4096}}} = SnakeBridge.to_array(x)
      assert leftovers(os_pid) == []
    end
  end

  test "names other than /snakebridge-<pid>-<n> are refused by the NIF" do
    for name <- ["/etc-passwd", "/snakebridge-../x", "snakebridge-1-2", "/snakebridge-1-2/3"] do
      assert_raise ArgumentError, fn -> SnakeBridge.Native.shm_write(name, "x") end
    end
  end
end
