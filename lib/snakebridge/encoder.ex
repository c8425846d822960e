defprotocol SnakeBridge.Encoder do
  @moduledoc """
  Converts a struct of yours into something that can cross to Python.

      defmodule Point do
        defstruct [:x, :y]
      end

      defimpl SnakeBridge.Encoder, for: Point do
        def encode(%Point{x: x, y: y}), do: %{"x" => x, "y" => y}
      end

      SnakeBridge.call!("json", "dumps", [%Point{x: 1, y: 2}])
      #=> ~s({"x": 1, "y": 2})

  The result is converted like any other argument (it may contain further
  encodable structs, or `SnakeBridge.Object`s, for example one built with
  `SnakeBridge.new/5`). Structs without an implementation are an `ArgumentError`.
  """

  @doc "Returns a term made of types that map to Python."
  @spec encode(struct()) :: term()
  def encode(struct)
end
