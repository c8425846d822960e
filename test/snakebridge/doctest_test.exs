defmodule SnakeBridge.DoctestTest do
  # The `iex>` examples of the public API run as written: they are the first
  # code a new user copies. iter/2's example (a sqlite3 cursor made in one call
  # and read in the next) needs one Elixir process to be one Python thread,
  # which in-process calls do not guarantee yet; it runs once they do.
  use ExUnit.Case, async: false

  doctest SnakeBridge, except: [iter: 2]
end
