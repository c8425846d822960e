defmodule SnakeBridge.Generation.TasksTest do
  # mix snakebridge.discover and mix snakebridge.gen. Generated files always go
  # into a tmp directory (--output); the entries mix snakebridge.gen adds to
  # _build/snakebridge/generated.manifest are removed again afterwards.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  @moduletag timeout: 120_000

  setup do
    dir = Path.join(System.tmp_dir!(), "sbtest_tasks_#{System.os_time()}_#{:rand.uniform(1_000_000)}")

    File.mkdir_p!(dir)
    manifest = SnakeBridge.Cache.manifest_path()
    manifest_before = File.read(manifest)

    on_exit(fn ->
      File.rm_rf!(dir)
      forget_generated(manifest, manifest_before, dir)
    end)

    %{dir: dir}
  end

  # Drop the manifest entries under `dir`; remove the manifest if this test
  # created it and nothing else was recorded since.
  defp forget_generated(manifest, before, dir) do
    case File.read(manifest) do
      {:ok, text} ->
        kept =
          text
          |> String.split("\n", trim: true)
          |> Enum.reject(&String.starts_with?(Path.expand(&1), dir <> "/"))

        cond do
          kept == [] and match?({:error, _}, before) -> File.rm(manifest)
          true -> File.write!(manifest, Enum.map(kept, &[&1, ?\n]))
        end

      {:error, _} ->
        :ok
    end
  end

  defp run_task(task, args), do: capture_io(fn -> Mix.Task.rerun(task, args) end)

  describe "mix snakebridge.discover" do
    test "prints functions with their signatures, classes, submodules" do
      out = run_task("snakebridge.discover", ["json", "--depth", "1"])
      assert out =~ "* describing Python module json (depth 1)..."
      assert out =~ "json 2.0.9 — JSON (JavaScript Object Notation)"
      assert out =~ "functions (4):"

      assert out =~
               "dumps(obj, *, skipkeys=False, ensure_ascii=True, check_circular=True, allow_nan=True, cls=None, indent=None, separators=None, default=None, sort_keys=False, **kw)"

      assert out =~ "loads(s, *, cls=None"
      assert out =~ ~r/JSONDecoder\(.*\) — \d+ methods, \d+ properties/
      assert out =~ "not imported (describe them by name): json.tool"
      # the submodule json.decoder is summarized, indented
      assert out =~ ~r/\n  json\.decoder 2\.0\.9 — /
      assert out =~ ~r/\(described in \d+ ms\)/
    end

    test "the default depth is gen's and use SnakeBridge's: 0" do
      out = run_task("snakebridge.discover", ["json"])
      assert out =~ "* describing Python module json (depth 0)..."
      refute out =~ ~r/\n  json\.decoder 2\.0\.9 — /
    end

    test "marks callables without a signature; --depth 0 leaves submodules out" do
      out = run_task("snakebridge.discover", ["builtins", "--depth", "0"])
      assert out =~ "print(*args, sep=' ', end='\\n', file=None, flush=False)"
      # documented on its docstring only
      assert out =~ "anext(aiterator [, default])"
      # every documented form
      assert out =~ "max(iterable, * [, default=obj, key=func]) | max(arg1, arg2, *args, * [, key=func])"
      assert out =~ "range(stop) | range(start, stop [, step]) — "
      refute out =~ "not imported"
      assert run_task("snakebridge.discover", ["functools"]) =~ "cmp_to_key(...)  [no signature]"
      # parameters known to take bytes (docs/generated_modules.md, "Typed argument mapping")
      assert run_task("snakebridge.discover", ["zlib"]) =~ "compress(data, /, level=-1, wbits=15)  [bytes: data]\n"
    end

    test "--output FILE.json writes the schema as JSON", %{dir: dir} do
      file = Path.join(dir, "out/json.json")
      out = run_task("snakebridge.discover", ["json", "--depth", "1", "--output", file])
      assert out =~ "* wrote #{file}"

      schema = SnakeBridge.call!("json", "loads", [File.read!(file)])
      assert schema["name"] == "json"
      assert schema["version"] == "2.0.9"
      dumps = Enum.find(schema["functions"], &(&1["name"] == "dumps"))
      assert dumps["signature"] =~ "(obj, *, skipkeys=False"

      assert %{"name" => "skipkeys", "kind" => "keyword_only", "default" => ["value", false]} =
               Enum.at(dumps["parameters"], 1)

      assert "json.decoder" in Enum.map(schema["submodules"], & &1["name"])
      assert "json.tool" in schema["unimported_submodules"]
    end

    test "--output FILE (not .json) writes an Elixir term", %{dir: dir} do
      file = Path.join(dir, "statistics.exs")
      run_task("snakebridge.discover", ["statistics", "--depth", "0", "--output", file])
      {schema, _} = Code.eval_file(file)
      assert schema == SnakeBridge.describe_library!("statistics", depth: 0)
    end

    test "an unknown module or bad arguments are Mix errors" do
      assert_raise Mix.Error,
                   ~r/Cannot describe sbtest_tasks_no_such_module: ModuleNotFoundError: No module named 'sbtest_tasks_no_such_module'/,
                   fn ->
                     run_task("snakebridge.discover", ["sbtest_tasks_no_such_module"])
                   end

      assert_raise Mix.Error, ~r/Usage: mix snakebridge.discover/, fn ->
        run_task("snakebridge.discover", [])
      end

      assert_raise Mix.Error, ~r/Unknown option\(s\): --bogus/, fn ->
        run_task("snakebridge.discover", ["json", "--bogus"])
      end
    end
  end

  describe "mix snakebridge.gen" do
    test "writes OUTPUT/<module path>.ex with the header; it compiles without warnings", %{
      dir: dir
    } do
      out = run_task("snakebridge.gen", ["json", "--module", "SbTasksGen.Json", "--output", dir])
      path = Path.join(dir, "sb_tasks_gen/json.ex")
      assert out =~ "* describing Python module json..."
      assert out =~ "* wrote #{path}"
      assert File.ls!(dir) == ["sb_tasks_gen"]

      source = File.read!(path)

      assert String.starts_with?(
               source,
               "# Generated by mix snakebridge.gen from Python module json 2.0.9.\n"
             )

      assert SnakeBridge.Cache.generated?(path)
      assert Path.expand(path) in Enum.map(SnakeBridge.Cache.generated_files(), &Path.expand/1)

      ebin = Path.join(dir, "ebin")
      File.mkdir_p!(ebin)

      assert {:ok, modules, []} = Kernel.ParallelCompiler.compile_to_path([path], ebin, return_diagnostics: true)

      assert SbTasksGen.Json in modules
      assert SbTasksGen.Json.JSONDecoder in modules
      assert apply(SbTasksGen.Json, :dumps!, [%{"a" => 1}, [indent: 2]]) == "{\n  \"a\": 1\n}"
    end

    test "--depth 1 writes submodules into files of their own; --only", %{dir: dir} do
      run_task("snakebridge.gen", [
        "json",
        "--module",
        "SbTasksGen.JsonDeep",
        "--output",
        dir,
        "--depth",
        "1",
        "--only",
        "dumps,loads"
      ])

      files =
        Path.wildcard(Path.join(dir, "**/*.ex"))
        |> Enum.map(&Path.relative_to(&1, dir))
        |> Enum.sort()

      assert "sb_tasks_gen/json_deep.ex" in files
      assert "sb_tasks_gen/json_deep/decoder.ex" in files
      assert "sb_tasks_gen/json_deep/encoder.ex" in files

      top = File.read!(Path.join(dir, "sb_tasks_gen/json_deep.ex"))
      assert top =~ "def dumps("
      refute top =~ "def dump("
      refute top =~ "defmodule SbTasksGen.JsonDeep.JSONDecoder"

      assert File.read!(Path.join(dir, "sb_tasks_gen/json_deep/decoder.ex")) =~
               "defmodule SbTasksGen.JsonDeep.Decoder do"
    end

    test "the default module name is the camelized Python name", %{dir: dir} do
      run_task("snakebridge.gen", ["os.path", "--output", dir, "--only", "join"])
      source = File.read!(Path.join(dir, "os/path.ex"))
      assert source =~ "defmodule Os.Path do"
    end

    test "an unknown module, a bad --module or --backend are Mix errors", %{dir: dir} do
      assert_raise Mix.Error,
                   ~r/Cannot describe sbtest_tasks_no_such_module: ModuleNotFoundError/,
                   fn ->
                     run_task("snakebridge.gen", ["sbtest_tasks_no_such_module", "--output", dir])
                   end

      assert_raise Mix.Error, ~r/--module must be an Elixir module name, got: not_a_module/, fn ->
        run_task("snakebridge.gen", ["json", "--module", "not_a_module", "--output", dir])
      end

      assert_raise Mix.Error, ~r/--backend must be nif or pool:NAME, got: bogus/, fn ->
        run_task("snakebridge.gen", [
          "json",
          "--module",
          "SbTasksGen.Bogus",
          "--backend",
          "bogus",
          "--output",
          dir
        ])
      end

      assert_raise Mix.Error, ~r/Usage: mix snakebridge.gen/, fn ->
        run_task("snakebridge.gen", [])
      end

      assert File.ls!(dir) == []
    end
  end
end
