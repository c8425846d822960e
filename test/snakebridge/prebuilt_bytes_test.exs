defmodule SnakeBridge.PrebuiltBytesTest do
  # In process, a large SnakeBridge.Bytes argument (256 KiB to 2 MiB in all
  # per call) becomes its Python bytes object on the calling scheduler, before
  # the hand-over to the process's thread (c_src/core/prebuilt_bytes.hpp).
  # What Python sees must be what any conversion gives; nothing may leak.
  use ExUnit.Case, async: false

  alias SnakeBridge.Test.Helpers

  @moduletag timeout: 60_000

  setup_all do
    fns =
      SnakeBridge.exec!("""
      import hashlib
      def ident(*xs):
          return xs[0] if len(xs) == 1 else list(xs)
      def digest(*xs):
          return [hashlib.sha256(x).hexdigest() + ':' + str(len(x)) + ':' + type(x).__name__ for x in xs]
      import tracemalloc
      kept = []
      def keep(x):
          kept.append(x)
          return len(kept)
      def kept_equals(n, x):
          return kept[n - 1] == x
      def kept_traced(n):
          return tracemalloc.get_object_traceback(kept[n - 1]) is not None
      """)

    %{fns: fns}
  end

  defp expected(bins),
    do: for(b <- bins, do: Base.encode16(:crypto.hash(:sha256, b), case: :lower) <> ":#{byte_size(b)}:bytes")

  test "large bytes arguments reach Python whole, whatever their number, size and origin", %{fns: fns} do
    mib = :crypto.strong_rand_bytes(1_048_576)
    big = :crypto.strong_rand_bytes(5 * 1_048_576)
    part = binary_part(big, 17, 300_000)

    cases = [
      [mib],
      # the same binary twice: two objects, both taken
      [mib, mib],
      # past 2 MiB in all: the later ones are made on the thread
      [mib, big, mib, part],
      # below the threshold, and a sub-binary of a larger one
      [binary_part(mib, 0, 1000), part]
    ]

    for bins <- cases do
      assert {:ok, expected(bins)} ==
               SnakeBridge.call(fns["digest"], nil, Enum.map(bins, &SnakeBridge.bytes/1))
    end

    assert {:ok, ^mib} = SnakeBridge.call(fns["ident"], nil, [SnakeBridge.bytes(mib)])
    assert {:ok, [^mib, ^part]} = SnakeBridge.call(fns["ident"], nil, [SnakeBridge.bytes(mib), SnakeBridge.bytes(part)])
  end

  test "Python keeps the object after the call as any bytes object", %{fns: fns} do
    mib = :crypto.strong_rand_bytes(1_048_576)
    {:ok, n} = SnakeBridge.call(fns["keep"], nil, [SnakeBridge.bytes(mib)])
    :erlang.garbage_collect()
    assert {:ok, true} == SnakeBridge.call(fns["kept_equals"], nil, [n, SnakeBridge.bytes(mib)])
  end

  test "while tracemalloc traces allocations, the thread makes them (and tracemalloc sees them)", %{fns: fns} do
    mib = :crypto.strong_rand_bytes(1_048_576)
    SnakeBridge.exec!("import tracemalloc\ntracemalloc.start()", %{})

    try do
      assert {:ok, expected([mib])} == SnakeBridge.call(fns["digest"], nil, [SnakeBridge.bytes(mib)])
      {:ok, n} = SnakeBridge.call(fns["keep"], nil, [SnakeBridge.bytes(mib)])

      assert {:ok, true} == SnakeBridge.call(fns["kept_traced"], nil, [n])
    after
      SnakeBridge.exec!("import tracemalloc\ntracemalloc.stop()", %{})
    end
  end

  test "objects made for a call that fails before converting its arguments are released" do
    mib = :crypto.strong_rand_bytes(1_048_576)

    for _ <- 1..20 do
      assert {:error, %SnakeBridge.PythonError{type: "AttributeError"}} =
               SnakeBridge.call("builtins", "no_such_function", [SnakeBridge.bytes(mib)])
    end

    assert Helpers.wait_until(10_000, fn -> SnakeBridge.Native.stats().pending_releases == 0 end)
  end
end
