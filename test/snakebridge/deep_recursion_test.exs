defmodule SnakeBridge.DeepRecursionTest do
  # A call site promoted to the fast path runs on a BEAM scheduler thread, whose
  # C stack (~1 MiB) is far smaller than a pool thread's (8 MiB). Deep C-level
  # recursion there used to overflow it and kill the VM, so these run in a fresh
  # BEAM (`elixir -pa <our ebin>`): a regression kills the child, not the suite.
  use ExUnit.Case, async: true

  @moduletag timeout: 120_000

  # Defines sb_deep, promotes a call site with shallow inputs (same call-site
  # key: the argument is an object), then makes the same call deep.
  @prelude """
  {:ok, _} = Application.ensure_all_started(:snakebridge)
  src = ~S'''
  def nest(n):
      x = []
      for _ in range(n):
          x = [x]
      return x
  def via_map(n):
      return 0 if n == 0 else list(map(via_map, [n - 1]))[0] + 1
  def depth_of(box):
      return via_map(box.n)
  def forever(box):
      return forever(box)
  '''
  SnakeBridge.exec!(
    "import sys, types\\nsys.setrecursionlimit(100000)\\nm = types.ModuleType('sb_deep')\\n" <>
      "exec(src, m.__dict__)\\nsys.modules['sb_deep'] = m\\n",
    %{"src" => src}
  )
  """

  defp run_child(code) do
    ebin = :code.lib_dir(:snakebridge, :ebin) |> to_string()
    System.cmd("elixir", ["-pa", ebin, "-e", @prelude <> code], stderr_to_stdout: true)
  end

  test "json.dumps of a 20,000-deep list on a promoted call site returns the right result" do
    code = """
    small = SnakeBridge.call!("sb_deep", "nest", [2], [], return: :ref)
    deep = SnakeBridge.call!("sb_deep", "nest", [20_000], [], return: :ref)
    for _ <- 1..50, do: "[[[]]]" = SnakeBridge.call!("json", "dumps", [small])
    s = SnakeBridge.call!("json", "dumps", [deep])
    IO.puts("json: \#{s == String.duplicate("[", 20_001) <> String.duplicate("]", 20_001)}")
    """

    {out, status} = run_child(code)
    assert status == 0, "child VM exited with #{status}:\n#{out}"
    assert out =~ "json: true"
  end

  test "recursion through map 2,000 deep on a promoted call site returns the right result" do
    code = """
    box = SnakeBridge.call!("types", "SimpleNamespace", [], [n: 1], return: :ref)
    for _ <- 1..50, do: 1 = SnakeBridge.call!("sb_deep", "depth_of", [box])
    SnakeBridge.setattr!(box, "n", 2_000)
    IO.puts("map: \#{SnakeBridge.call!("sb_deep", "depth_of", [box])}")
    # Python's own limit still holds: unbounded recursion is a RecursionError.
    {:error, e} = SnakeBridge.call("sb_deep", "forever", [box])
    IO.puts("forever: \#{e.type}")
    # and the site, demoted, still answers.
    IO.puts("again: \#{SnakeBridge.call!("sb_deep", "depth_of", [box])}")
    """

    {out, status} = run_child(code)
    assert status == 0, "child VM exited with #{status}:\n#{out}"
    assert out =~ "map: 2000"
    assert out =~ "forever: RecursionError"
    assert out =~ "again: 2000"
  end
end
