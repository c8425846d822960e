defmodule SnakeBridge.TestBackends do
  @moduledoc """
  The backends the behavioural tests run against: in-process (`:nif`) and a
  pool of two port workers declared in `config/config.exs` (started by the
  application). Use in a test module:

      for backend <- SnakeBridge.TestBackends.all() do
        describe "(\#{SnakeBridge.TestBackends.name(backend)})" do
          @backend backend
          test "...", do: SnakeBridge.call!("math", "sqrt", [4.0], [], backend: @backend)
        end
      end
  """

  @pool SnakeBridge.TestPool

  def pool, do: @pool
  def all, do: [:nif, {:pool, @pool}]

  def name(:nif), do: "nif"
  def name({:pool, _}), do: "pool"

  @doc "SnakeBridge options selecting `backend`, plus `extra`."
  def opts(backend, extra \\ []), do: [backend: backend] ++ extra
end
