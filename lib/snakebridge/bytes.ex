defmodule SnakeBridge.Bytes do
  @moduledoc """
  A binary that crosses to Python as `bytes`, even when it is valid UTF-8.

  Build it with `SnakeBridge.bytes/1`. Results never come back wrapped: Python
  `bytes` arrive as plain binaries.
  """
  defstruct data: ""
  @type t :: %__MODULE__{data: binary()}
end
