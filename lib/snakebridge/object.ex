defmodule SnakeBridge.Object do
  @moduledoc """
  A Python object held from Elixir.

  Returned wherever a Python value has no Elixir equivalent (class instances,
  modules, numpy arrays, iterators, dict subclasses such as `Counter`...), and by
  `return: :ref`. Pass it back as an argument, call its methods with
  `SnakeBridge.method/5`, read it with `SnakeBridge.getattr/3`, convert it with
  `SnakeBridge.to_elixir/2`.

  The Python object lives as long as the Elixir term is reachable: when the BEAM
  garbage-collects the last copy, the Python reference is dropped.

  Fields: `type` is the Python type name (`"collections.Counter"`); `ref` and
  `owner` are opaque.
  """
  defstruct [:ref, :type, owner: nil]

  @type t :: %__MODULE__{ref: reference(), type: String.t(), owner: term()}

  defimpl Inspect do
    # Asking Python for a repr can fail with an error whose message inspects
    # this object again: never ask twice on the way down.
    def inspect(%SnakeBridge.Object{type: type} = object, _opts) do
      if Process.get(:snakebridge_inspecting) do
        "#Python<#{type}>"
      else
        Process.put(:snakebridge_inspecting, true)

        try do
          case SnakeBridge.Runtime.run({:repr, object, 60}, timeout: 1_000) do
            {:ok, repr} -> "#Python<#{type} #{repr}>"
            {:error, _} -> "#Python<#{type}>"
          end
        after
          Process.delete(:snakebridge_inspecting)
        end
      end
    end
  end
end
