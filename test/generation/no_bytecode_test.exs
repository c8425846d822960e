defmodule SnakeBridge.NoBytecodeTest do
  # priv/python ships inside releases: describing a library must not leave a
  # __pycache__ there (priv may even be read-only in a release).
  use ExUnit.Case, async: false

  test "describe_library in a fresh interpreter writes no bytecode beside the helper" do
    dir = Path.join(to_string(:code.priv_dir(:snakebridge)), "python")
    File.rm_rf!(Path.join(dir, "__pycache__"))
    # A fresh interpreter (a port worker of its own), so the helper is imported anew.
    pool = start_supervised!({SnakeBridge.Pool, name: SnakeBridge.NoBytecodeTest.Pool, size: 1})
    assert is_pid(pool)

    assert {:ok, %{name: "json"}} =
             SnakeBridge.describe_library("json", backend: {:pool, SnakeBridge.NoBytecodeTest.Pool})

    refute File.exists?(Path.join(dir, "__pycache__"))
  end
end
