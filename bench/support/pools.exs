# A pool for the length of a benchmark, shared by the bench scripts (Code.require_file it).
defmodule BenchPools do
  @moduledoc false

  # Starts a pool of `size` workers named `name`, waits until it answers, runs
  # `fun.({:pool, name})` and stops the pool.
  def with_pool(name, size, fun) do
    {:ok, sup} = SnakeBridge.Pool.start_link(name: name, size: size)
    ready(name)

    try do
      fun.({:pool, name})
    after
      Process.unlink(sup)
      ref = Process.monitor(sup)
      Process.exit(sup, :shutdown)
      receive do: ({:DOWN, ^ref, _, _, _} -> :ok)
    end
  end

  defp ready(name) do
    case SnakeBridge.call("math", "sqrt", [2.0], [], backend: {:pool, name}) do
      {:ok, _} -> :ok
      _ -> Process.sleep(10) && ready(name)
    end
  end

  # The pool's workers on this node.
  def workers({:pool, name}), do: for({w, _} <- SnakeBridge.Pool.workers(name), do: w)

  # A local worker's program, as an OS pid.
  def os_pid(worker), do: :sys.get_state(worker).os_pid

  # The CPU time (user + system) an OS process has used so far, in
  # microseconds, from /proc/<pid>/stat (Linux only; clock ticks of 10 ms).
  def cpu_us(os_pid) do
    [_, rest] = "/proc/#{os_pid}/stat" |> File.read!() |> String.split(") ", parts: 2)
    fields = String.split(rest)
    ticks = String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
    ticks * 1_000_000 / 100
  end
end
