defmodule SnakeBridge.PyStream do
  @moduledoc false
  # Python iterators as lazy Enumerables (SnakeBridge.iter/2, stream/5).
  #
  # Items are pulled in batches by the consumer, so the producer is never more
  # than one batch ahead and nothing waits in a mailbox. Batches start small (an
  # Enum.take(stream, 5) advances the generator 8 times, not 1000) and double up
  # to :batch_size. Halting closes the iterator (a generator's `finally` runs);
  # a Python exception raises in the consumer after the items before it.

  alias SnakeBridge.Runtime

  @first_batch 8
  @max_batch 1024

  def iter(source, opts) do
    {max_batch, opts} = Keyword.pop(opts, :batch_size, @max_batch)
    {return, opts} = Keyword.pop(opts, :return, :auto)
    unless is_integer(max_batch) and max_batch > 0, do: raise(ArgumentError, ":batch_size must be a positive integer")

    Stream.resource(
      fn -> start(source, opts) end,
      fn state -> next(state, [{:return, return} | opts], max_batch) end,
      fn state -> close(state, opts) end
    )
  end

  # source: {:object, obj} (any iterable) or {:call, request} (a callable's result)
  defp start({:object, object}, opts) do
    {:cont, iterator!(object, opts), @first_batch}
  end

  defp start({:call, request}, opts) do
    case Runtime.run(request, [{:return, :ref} | opts]) do
      {:ok, result} -> {:cont, iterator!(result, opts), @first_batch}
      {:error, e} -> raise e
    end
  end

  defp iterator!(object, opts) do
    # (A port worker's object takes the request to the worker that holds it.)
    case Runtime.run({:call, "builtins", "iter", [object], []}, [{:return, :ref} | opts]) do
      {:ok, it} -> it
      {:error, e} -> raise e
    end
  end

  defp next({:cont, it, n}, opts, max) do
    case Runtime.run({:next, it, n}, opts) do
      {:ok, {items, :cont}} -> {items, {:cont, it, min(n * 2, max)}}
      {:ok, {items, :done}} -> {items, {:done, it}}
      {:ok, {items, {:error, _} = error}} -> {items, {:raise, it, Runtime.exception(error)}}
      {:error, e} -> raise e
    end
  end

  defp next({:done, _} = state, _opts, _max), do: {:halt, state}
  # Stream.resource closes the iterator (close/2 below) when this raises.
  defp next({:raise, _it, e}, _opts, _max), do: raise(e)

  defp close({:cont, it, _}, opts), do: Runtime.run({:close, it}, opts)
  defp close({_, it}, opts), do: Runtime.run({:close, it}, opts)
  defp close({:raise, it, _}, opts), do: Runtime.run({:close, it}, opts)
end
