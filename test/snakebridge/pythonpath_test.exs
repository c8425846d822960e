defmodule SnakeBridge.PythonpathTest do
  # PYTHONPATH's directories are on sys.path, on both backends. In process, the
  # interpreter reads PYTHONPATH once, when the VM starts it, so that case runs
  # in a fresh BEAM (`elixir -pa <our ebin>`) started with PYTHONPATH set; a
  # port worker reads it from its environment (the pool's `env:`).
  use ExUnit.Case, async: true

  alias SnakeBridge.Pool

  @moduletag timeout: 120_000

  setup %{tmp_dir: tmp} do
    dirs = for name <- ["a", "b"], do: Path.join(tmp, name)
    Enum.each(dirs, &File.mkdir_p!/1)
    File.write!(Path.join(Enum.at(dirs, 1), "sb_pythonpath_probe.py"), "def where():\n    return __file__\n")
    {:ok, dirs: dirs, pythonpath: Enum.join(dirs, ":")}
  end

  @tag :tmp_dir
  test "(nif) a module in a PYTHONPATH directory imports", %{dirs: dirs, pythonpath: pythonpath} do
    ebin = :code.lib_dir(:snakebridge, :ebin) |> to_string()

    code = """
    {:ok, _} = Application.ensure_all_started(:snakebridge)
    IO.write(:erlang.term_to_binary({
      SnakeBridge.call!("sb_pythonpath_probe", "where"),
      SnakeBridge.getattr!("sys", "path")
    }) |> Base.encode64())
    """

    {out, 0} =
      System.cmd("elixir", ["-pa", ebin, "-e", code], env: [{"PYTHONPATH", pythonpath}], stderr_to_stdout: true)

    {file, path} = out |> String.trim() |> Base.decode64!() |> :erlang.binary_to_term()
    assert file == Path.join(Enum.at(dirs, 1), "sb_pythonpath_probe.py")
    assert_in_order(path, dirs)
  end

  @tag :tmp_dir
  test "(pool) a module in a PYTHONPATH directory imports", %{dirs: dirs, pythonpath: pythonpath} do
    name = SnakeBridge.PythonpathTest.Pool
    start_supervised!({Pool, name: name, size: 1, env: [{"PYTHONPATH", pythonpath}]})
    opts = [backend: {:pool, name}]

    assert SnakeBridge.call!("sb_pythonpath_probe", "where", [], [], opts) ==
             Path.join(Enum.at(dirs, 1), "sb_pythonpath_probe.py")

    assert_in_order(SnakeBridge.getattr!("sys", "path", opts), dirs)
  end

  # Both directories, in PYTHONPATH's order, ahead of the standard library.
  defp assert_in_order(path, [a, b]) do
    [ia, ib] = Enum.map([a, b], fn dir -> Enum.find_index(path, &(&1 == dir)) end)
    stdlib = Enum.find_index(path, &String.match?(&1, ~r{/python3\.\d+$}))
    assert ia && ib && stdlib, "sys.path: #{inspect(path)}"
    assert ia < ib and ib < stdlib, "sys.path: #{inspect(path)}"
  end
end
