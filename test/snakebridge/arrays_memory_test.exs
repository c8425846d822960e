defmodule SnakeBridge.ArraysMemoryTest do
  # Arrays hold large memory on both sides (docs/arrays.md): a binary that
  # points into a Python array in-process, a frame's worth of bytes through a
  # worker. Converting and dropping 1,000 arrays of 8 MiB must give all of it
  # back: the Python process's resident memory (the BEAM's in-process, the
  # worker's through a pool), Python's allocated blocks and the BEAM's live
  # binaries end where they started. Not async: other tests' memory would blur the figures.
  use ExUnit.Case, async: false

  import SnakeBridge.Test.Helpers, only: [wait_until: 2]

  alias SnakeBridge.TestBackends

  @moduletag timeout: 300_000

  @mib 1024 * 1024
  @count 1_000
  @tolerance_kb 10 * 1024

  # The resident memory (KiB) and allocated blocks of the Python process of
  # `backend`: the BEAM itself in-process, the worker through a pool.
  defp python_memory(backend) do
    SnakeBridge.eval!(
      "(int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]), sys.getallocatedblocks())",
      %{"sys" => SnakeBridge.call!("importlib", "import_module", ["sys"], [], backend: backend)},
      backend: backend
    )
  end

  # Binaries alive in the BEAM (KiB): the frames' and the shared arrays'. (Not
  # the BEAM's RSS through a worker: its allocators keep freed carriers of the
  # frames cached for reuse.)
  defp beam_binaries_kb, do: div(:erlang.memory(:binary), 1024)

  # Each array is made in Python, converted, read (its last element is its
  # index, as Python wrote it) and dropped.
  defp convert_and_drop(backend, range) do
    full = SnakeBridge.call!("importlib", "import_module", ["numpy"], [], backend: backend)

    for i <- range do
      x = SnakeBridge.method!(full, "full", [div(8 * @mib, 8), i * 1.0], [], backend: backend)
      a = SnakeBridge.to_array!(x, backend: backend)
      assert byte_size(a.data) == 8 * @mib
      assert binary_part(a.data, 8 * @mib - 8, 8) == <<i * 1.0::float-64-native>>
      if rem(i, 50) == 0, do: :erlang.garbage_collect()
    end

    :ok
  end

  for backend <- TestBackends.all() do
    @backend backend
    test "1,000 arrays of 8 MiB converted and dropped leave memory where it started (#{TestBackends.name(backend)})" do
      # Warm-up: numpy imported, allocator arenas grown, the worker chosen.
      convert_and_drop(@backend, 1..20)
      settle(@backend)
      {rss0, blocks0} = python_memory(@backend)
      beam0 = beam_binaries_kb()

      convert_and_drop(@backend, 1..@count)
      settle(@backend)

      assert wait_until(10_000, fn ->
               settle(@backend)
               {rss, _} = python_memory(@backend)
               rss - rss0 < @tolerance_kb
             end),
             "Python process RSS #{inspect(python_memory(@backend))} KiB, was #{rss0} KiB"

      {_, blocks} = python_memory(@backend)
      assert blocks - blocks0 < 2_000, "allocated blocks #{blocks}, were #{blocks0}"
      assert beam_binaries_kb() - beam0 < @tolerance_kb, "BEAM binaries #{beam_binaries_kb()} KiB, were #{beam0} KiB"
      assert SnakeBridge.Native.stats().pending_releases < 256
    end
  end

  # Garbage-collects every process and lets the Python threads release what
  # the BEAM dropped (a request drains 256 releases, an idle thread the rest).
  defp settle(backend) do
    for _ <- 1..3 do
      for p <- Process.list(), do: :erlang.garbage_collect(p)
      SnakeBridge.eval!("0", %{}, backend: backend)
      Process.sleep(100)
    end
  end
end
