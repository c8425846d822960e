defmodule SnakeBridge.Msgpack.Shared do
  @moduledoc false
  # Bytes a port worker on this node reads from a POSIX shared-memory object
  # instead of the frame (ext 16; SnakeBridge.Backend.PortWorker writes them).
  defstruct [:name, :size]
end
