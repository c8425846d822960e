# Elixir functions through generated wrappers (docs/callbacks.md): they cross
# as Python callables like any argument, positional or keyword.
defmodule SnakeBridge.CallbacksGeneratedTest.Functools do
  use SnakeBridge, python: "functools", only: ["reduce"]
end

defmodule SnakeBridge.CallbacksGeneratedTest.Builtins do
  use SnakeBridge, python: "builtins", only: ["sorted"]
end

defmodule SnakeBridge.CallbacksGeneratedTest.Re do
  use SnakeBridge, python: "re", only: ["sub"]
end

defmodule SnakeBridge.Generation.CallbacksGeneratedTest do
  use ExUnit.Case, async: true

  alias SnakeBridge.CallbacksGeneratedTest.{Builtins, Functools, Re}

  test "funs through generated wrappers, positional and keyword" do
    assert Functools.reduce!(fn a, b -> a + b end, [1, 2, 3, 4]) == 10
    assert Builtins.sorted!([3, -4, 1], key: &abs/1) == [1, 3, -4]
    assert {:ok, [-4, 3, 1]} = Builtins.sorted([3, -4, 1], key: &abs/1, reverse: true)

    upcase = fn m -> m |> SnakeBridge.method!("group", [0]) |> String.upcase() end
    assert Re.sub!("[a-z]+", upcase, "ab 12 cd") == "AB 12 CD"

    # An iterator Python builds from a fun, consumed by a stream.
    squares = SnakeBridge.new!("builtins", "map", [fn x -> x * x end, [1, 2, 3]])
    assert SnakeBridge.iter(squares) |> Enum.to_list() == [1, 4, 9]
  end
end
