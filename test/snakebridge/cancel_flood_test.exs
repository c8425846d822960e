defmodule SnakeBridge.CancelFloodTest do
  # async_call + cancel in a tight loop: the cancels of requests that have not
  # started are answered at once by the worker program (no interrupt, no grace,
  # never a kill), so unrelated work in flight on the same worker finishes, and
  # what the flood left behind (helper processes, the worker's mailbox) drains.
  use ExUnit.Case, async: false
  import SnakeBridge.Test.Helpers, only: [wait_until: 2]

  @moduletag timeout: 60_000

  test "3,000 async_call + cancel: the worker is not killed, a bystander's call completes, everything drains" do
    pool = SnakeBridge.CancelFloodTest.Pool
    start_supervised!({SnakeBridge.Pool, name: pool, size: 1})
    o = [backend: {:pool, pool}]
    os_pid = SnakeBridge.call!("os", "getpid", [], [], o)
    [{worker, _}] = SnakeBridge.Pool.workers(pool)
    baseline = length(Process.list())

    bystander = Task.async(fn -> SnakeBridge.call("time", "sleep", [1], [], o ++ [timeout: 20_000]) end)

    for _ <- 1..3_000 do
      SnakeBridge.async_call("time", "sleep", [0.01], [], o) |> SnakeBridge.cancel()
    end

    assert {:ok, nil} = Task.await(bystander, 20_000)
    assert SnakeBridge.call!("os", "getpid", [], [], o) == os_pid

    assert wait_until(10_000, fn ->
             length(Process.list()) <= baseline + 10 and
               Process.info(worker, :message_queue_len) == {:message_queue_len, 0}
           end)
  end
end
