defmodule SnakeBridge.DoctestTest do
  # The `iex>` examples of the public API run as written: they are the first
  # code a new user copies (iter/2's: a sqlite3 cursor made in one call and
  # read in the next, one Elixir process being one Python thread).
  use ExUnit.Case, async: false

  doctest SnakeBridge
end
