defmodule SnakeBridge.WorkerPlacementTest do
  # A worker gathers its threads on one core while many short requests come,
  # and gives every thread every core back once they stop (docs/backends.md,
  # "Latency"); SNAKEBRIDGE_GATHER=0 leaves placement to the kernel. Whether a
  # burst gathers depends on the request rate the machine reaches, so these
  # tests check what must hold either way: no thread of the worker, those
  # Python starts included, is left confined after a burst.
  use ExUnit.Case, async: false
  import SnakeBridge.Test.Helpers, only: [wait_until: 2]

  @moduletag timeout: 60_000

  @cores "len(__import__('os').sched_getaffinity(0))"
  # The cores a thread Python starts now may use.
  @new_thread_cores """
  import os, threading
  seen = []
  t = threading.Thread(target=lambda: seen.append(len(os.sched_getaffinity(0))))
  t.start(); t.join()
  result = seen[0]
  """

  test "after a burst of short requests from 50 processes, every thread has every core again" do
    o = start_pool(SnakeBridge.WorkerPlacementTest.Pool, [])
    cores = SnakeBridge.eval!(@cores, %{}, o)
    burst(o)

    assert wait_until(2_000, fn ->
             SnakeBridge.eval!(@cores, %{}, o) == cores and
               SnakeBridge.exec!(@new_thread_cores, %{}, o)["result"] == cores
           end)

    # The worker's own threads too: every thread of the program.
    all =
      SnakeBridge.eval!(
        "[len(__import__('os').sched_getaffinity(int(t))) for t in __import__('os').listdir('/proc/self/task')]",
        %{},
        o
      )

    assert Enum.all?(all, &(&1 == cores))
  end

  test "SNAKEBRIDGE_GATHER=0: no thread is ever moved, even during a burst" do
    o = start_pool(SnakeBridge.WorkerPlacementTest.Ungathered, env: [{"SNAKEBRIDGE_GATHER", "0"}])
    cores = SnakeBridge.eval!(@cores, %{}, o)
    during = Task.async(fn -> for _ <- 1..20, do: SnakeBridge.eval!(@cores, %{}, o) end)
    burst(o)
    assert Enum.uniq(Task.await(during, 30_000)) == [cores]
  end

  defp start_pool(name, opts) do
    start_supervised!({SnakeBridge.Pool, [name: name, size: 1] ++ opts})
    [backend: {:pool, name}]
  end

  defp burst(o) do
    1..50
    |> Enum.map(fn _ ->
      Task.async(fn -> for _ <- 1..400, do: {:ok, _} = SnakeBridge.call("math", "sqrt", [2.0], [], o) end)
    end)
    |> Task.await_many(30_000)
  end
end
