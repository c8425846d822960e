defmodule SnakeBridge.Test.EncoderFixtures do
  @moduledoc false
  # Structs used by the integration tests for SnakeBridge.Encoder. They live in
  # test/support (compiled before protocol consolidation) because an implementation
  # defined in a .exs test file would be invisible to the consolidated protocol.

  defmodule Point do
    @moduledoc false
    defstruct [:x, :y]
  end

  defmodule Segment do
    @moduledoc false
    # Encodes to a list holding two further encodable structs.
    defstruct [:from, :to]
  end

  defmodule Temperature do
    @moduledoc false
    # Encodes to a tuple (a Python tuple).
    defstruct [:celsius]
  end

  defmodule Wrapper do
    @moduledoc false
    # Encodes to a map containing whatever `inner` is, encodable or not.
    defstruct [:inner]
  end

  defmodule Opaque do
    @moduledoc false
    # Deliberately has no SnakeBridge.Encoder implementation.
    defstruct [:secret]
  end
end

defimpl SnakeBridge.Encoder, for: SnakeBridge.Test.EncoderFixtures.Point do
  def encode(%{x: x, y: y}), do: %{"x" => x, "y" => y}
end

defimpl SnakeBridge.Encoder, for: SnakeBridge.Test.EncoderFixtures.Segment do
  def encode(%{from: from, to: to}), do: [from, to]
end

defimpl SnakeBridge.Encoder, for: SnakeBridge.Test.EncoderFixtures.Temperature do
  def encode(%{celsius: c}), do: {"celsius", c}
end

defimpl SnakeBridge.Encoder, for: SnakeBridge.Test.EncoderFixtures.Wrapper do
  def encode(%{inner: inner}), do: %{"inner" => inner}
end
