defmodule SnakeBridge.OverloadTest do
  # A pool's bound on calls in flight per worker (`:max_in_flight`): past it a
  # new call fails at once with OverloadError, unsent, and the calls in flight
  # finish.
  use ExUnit.Case, async: false

  test "past max_in_flight a new call gets OverloadError at once; those in flight complete" do
    pool = SnakeBridge.OverloadTest.Pool
    start_supervised!({SnakeBridge.Pool, name: pool, size: 1, max_in_flight: 3, affinity: :none})
    o = [backend: {:pool, pool}]
    mark = "__import__('builtins').__dict__.setdefault('sb_marks', []).append(m)"

    busy = for _ <- 1..3, do: Task.async(fn -> SnakeBridge.call("time", "sleep", [0.5], [], o) end)
    Process.sleep(100)

    {us, refused} = :timer.tc(fn -> SnakeBridge.eval(mark, %{"m" => "refused"}, o) end)
    assert {:error, %SnakeBridge.OverloadError{pool: ^pool, max_in_flight: 3} = e} = refused
    assert Exception.message(e) =~ "overloaded"
    assert us < 200_000

    assert Enum.map(busy, &Task.await/1) == [{:ok, nil}, {:ok, nil}, {:ok, nil}]
    # The refused call never ran; the pool takes calls again.
    assert SnakeBridge.eval(mark, %{"m" => "later"}, o) == {:ok, nil}
    assert SnakeBridge.eval("__import__('builtins').sb_marks", %{}, o) == {:ok, ["later"]}
  end

  test "the bound is checked with the options" do
    assert_raise ArgumentError, ~r/max_in_flight/, fn ->
      SnakeBridge.Pool.start_link(name: SnakeBridge.OverloadTest.Bad, max_in_flight: 0)
    end
  end
end
