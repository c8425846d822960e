defmodule SnakeBridge.ReplySizeTest do
  # A worker's reply states its length in 4 bytes: one that would be larger
  # (or larger than SNAKEBRIDGE_MAX_REPLY_BYTES) is refused with an
  # OverflowError instead of being written with a wrapped length, which would
  # leave the client reading the rest of the stream as garbage. Checked with a
  # 1 MiB cap: the 4 GiB limit itself takes that much memory to reach.
  # The other way, the program reads at most 1 GiB at once: a larger request
  # or callback answer is refused before it is written (the program would skip
  # it, and its caller would wait for ever).
  use ExUnit.Case, async: false
  import Bitwise, only: [<<<: 2]

  @cap 1_048_576

  setup_all do
    pool = SnakeBridge.ReplySizeTest.Pool
    start_supervised!({SnakeBridge.Pool, name: pool, size: 1, env: [{"SNAKEBRIDGE_MAX_REPLY_BYTES", "#{@cap}"}]})
    %{o: [backend: {:pool, pool}]}
  end

  test "a reply over the cap is an OverflowError; the worker goes on", %{o: o} do
    os_pid = SnakeBridge.call!("os", "getpid", [], [], o)

    assert {:error, %SnakeBridge.PythonError{type: "OverflowError", message: message}} =
             SnakeBridge.eval("b'x' * (2 * #{@cap})", %{}, o)

    assert message =~ "more than a port worker can send (#{@cap})"
    assert message =~ "return: :ref"
    assert SnakeBridge.call!("os", "getpid", [], [], o) == os_pid
    # Just under the cap, with room for the reply's header: sent.
    assert byte_size(SnakeBridge.eval!("b'x' * (#{@cap} - 64)", %{}, o)) == @cap - 64
  end

  test "the value kept in the worker can be taken in parts", %{o: o} do
    big = SnakeBridge.eval!("b'ab' * #{@cap}", %{}, Keyword.put(o, :return, :ref))
    assert {:error, %SnakeBridge.PythonError{type: "OverflowError"}} = SnakeBridge.to_elixir(big)

    parts =
      for i <- 0..3, do: SnakeBridge.eval!("x[#{i} * #{div(@cap, 2)}:#{i + 1} * #{div(@cap, 2)}]", %{"x" => big}, o)

    assert IO.iodata_to_binary(parts) == :binary.copy("ab", @cap)
  end

  test "an array over the cap (written from its own memory) is refused too", %{o: o} do
    arr = SnakeBridge.eval!("__import__('numpy').zeros(#{div(2 * @cap, 8)})", %{}, Keyword.put(o, :return, :ref))
    assert {:error, %SnakeBridge.PythonError{type: "OverflowError"}} = SnakeBridge.to_array(arr)
    small = SnakeBridge.eval!("__import__('numpy').zeros(16)", %{}, Keyword.put(o, :return, :ref))
    assert {:ok, %SnakeBridge.Array{shape: {16}}} = SnakeBridge.to_array(small)
  end

  test "a request over 1 GiB is an ArgumentError at once; nothing is written", %{o: o} do
    # (With no timeout: were it written, the call would never return.)
    big = SnakeBridge.bytes(over_1_gib())

    assert {:error, %ArgumentError{message: message}} =
             SnakeBridge.call("builtins", "len", [big], [], o ++ [timeout: :infinity])

    assert message =~ "more than a port worker reads in one request (1 GiB)"
    assert SnakeBridge.eval!("1 + 1", %{}, o) == 2
  end

  test "a callback's answer over 1 GiB is a TypeError in Python, not a wait", %{o: o} do
    huge = fn -> over_1_gib() end

    assert {:error, %SnakeBridge.PythonError{type: "TypeError", message: message}} =
             SnakeBridge.eval("len(f())", %{"f" => huge}, o ++ [timeout: :infinity])

    assert message =~ "more than a port worker reads at once (1 GiB)"
    assert SnakeBridge.eval!("1 + 1", %{}, o) == 2
  end

  # 1 GiB and 1 MiB, not valid UTF-8 (so a binary, not a string, in Python).
  defp over_1_gib, do: :binary.copy(:binary.copy(<<0xFF>>, 1 <<< 20), (1 <<< 10) + 1)
end
