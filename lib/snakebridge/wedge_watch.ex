defmodule SnakeBridge.WedgeWatch do
  @moduledoc false
  # Reports in-process calls that their timeout or cancel cannot stop: still
  # running a second after their interrupt began, which means C code holding
  # the GIL (or never returning to Python). Nothing can interrupt that inside
  # the BEAM; calls queue behind it until it returns. Logged once when it
  # starts and once when it ends; the count is in SnakeBridge.Native.stats()
  # (wedged_calls). The way out is a pool (docs/backends.md, "Timeouts").
  use GenServer
  require Logger

  @every_ms 1_000

  def start_link(_opts), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @impl true
  def init(nil) do
    Process.send_after(self(), :check, @every_ms)
    {:ok, 0}
  end

  @impl true
  def handle_info(:check, reported) do
    Process.send_after(self(), :check, @every_ms)
    {:noreply, report(reported, SnakeBridge.Native.stats().wedged_calls)}
  end

  defp report(0, 0), do: 0

  defp report(0, n) do
    Logger.warning(
      "SnakeBridge: #{n} in-process Python call(s) still running more than a second after their timeout " <>
        "or cancel: C code holding the GIL cannot be interrupted inside the BEAM, and other calls wait " <>
        "for it. Run such calls in a pool (SnakeBridge.Pool), whose workers are killed and restarted."
    )

    n
  end

  defp report(_was, 0) do
    Logger.info("SnakeBridge: the in-process Python calls that could not be interrupted have returned")
    0
  end

  defp report(_was, n), do: n
end
