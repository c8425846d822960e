defmodule SnakeBridge.BusyLoops do
  @moduledoc false
  # A loaded machine for benchmarks and tests: `count` shell busy loops
  # (`while :; do :; done`), one per core usually, that run while `fun` does
  # and are killed after it, whatever it does. Used by bench/vs_erlport.exs
  # and the test suite.

  @doc "Runs `fun` while `count` busy loops run (after `settle_ms`); returns what `fun` returns."
  def run(count, fun, settle_ms \\ 0) do
    loops = for _ <- 1..count, do: start()

    try do
      if settle_ms > 0, do: Process.sleep(settle_ms)
      fun.()
    after
      Enum.each(loops, &stop/1)
    end
  end

  defp start do
    port = Port.open({:spawn_executable, "/bin/sh"}, [:binary, args: ["-c", "while :; do :; done"]])
    {:os_pid, pid} = Port.info(port, :os_pid)
    {port, pid}
  end

  defp stop({port, pid}) do
    System.cmd("kill", ["-KILL", Integer.to_string(pid)])

    try do
      Port.close(port)
    rescue
      ArgumentError -> :ok
    end
  end
end
