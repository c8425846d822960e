# `use SnakeBridge` at compile time of this file: the application is already
# running (mix test starts it before loading test files).
defmodule SnakeBridge.UseTest.Json do
  use SnakeBridge, python: "json"
end

defmodule SnakeBridge.UseTest.JsonOnly do
  use SnakeBridge, python: "json", only: ["dumps", "loads", "JSONDecoder"]
end

defmodule SnakeBridge.UseTest.JsonExcept do
  use SnakeBridge, python: "json", except: ["dump", "load", "JSONEncoder"], backend: :nif
end

defmodule SnakeBridge.UseTest.JsonDeep do
  use SnakeBridge, python: "json", depth: 1, only: ["dumps"]
end

defmodule SnakeBridge.UseTest.Fractions do
  use SnakeBridge, python: "fractions", only: ["Fraction"]
end

defmodule SnakeBridge.UseTest.Heapq do
  use SnakeBridge, python: "heapq", only: ["merge", "nlargest"]
end

defmodule SnakeBridge.UseTest.Zlib do
  use SnakeBridge, python: "zlib", only: ["compress", "decompress"], binaries: :bytes
end

# Negative integer constants (MIN_EMIN = -999999999999999999) used to be
# written as `-_999_...`, which did not compile.
defmodule SnakeBridge.UseTest.Decimal do
  use SnakeBridge, python: "decimal"
end

# No __all__; its functions are defined in the C accelerator _bisect.
defmodule SnakeBridge.UseTest.Bisect do
  use SnakeBridge, python: "bisect"
end

defmodule SnakeBridge.Generation.UseTest do
  # `use SnakeBridge` (lib/snakebridge.ex, docs/generated_modules.md "Options" and
  # "Caching and recompilation").
  use ExUnit.Case, async: true

  import SnakeBridge.Test.Helpers, only: [on_python_path: 1]

  alias SnakeBridge.SchemaCache
  alias SnakeBridge.UseTest.{Json, JsonOnly, JsonExcept, JsonDeep, Fractions, Heapq, Bisect, Zlib, Decimal}

  @moduletag timeout: 120_000

  @compile {:no_warn_undefined, [JsonDeep.Decoder, SnakeBridge.UseTest.Probe]}

  setup_all do
    dir = Path.join(System.tmp_dir!(), "sbtest_use_#{System.os_time()}_#{:rand.uniform(1_000_000)}")

    File.mkdir_p!(dir)

    on_python_path(dir)

    on_exit(fn ->
      File.rm_rf!(dir)
      # the cache entries of the tmp Python module
      for file <- Path.wildcard(Path.join(SchemaCache.dir(), "sbtest_use_{probe,nothing}-*")),
          do: File.rm(file)
    end)

    %{dir: dir}
  end

  test "the using module gets the Python module's functions, classes and docs" do
    assert Json.dumps!(%{"a" => 1}, indent: 2) == "{\n  \"a\": 1\n}"
    assert Json.dumps(%{"a" => 1}) == {:ok, ~s({"a": 1})}
    assert Json.loads!("[1, 2]") == [1, 2]
    assert {:error, %SnakeBridge.PythonError{type: "JSONDecodeError"}} = Json.loads("[")
    decoder = Json.JSONDecoder.new!()
    assert Json.JSONDecoder.decode!(decoder, "[3]") == [3]
    assert Code.ensure_loaded?(Json.JSONDecodeError)

    assert Json.__mix_recompile__?() == false

    f = Fractions.Fraction.new!(6, 4)
    assert Fractions.Fraction.as_integer_ratio!(f) == {3, 2}
    assert Fractions.Fraction.numerator!(f) == 3
  end

  test "only: and except:" do
    assert function_exported?(JsonOnly, :dumps, 3)
    assert function_exported?(JsonOnly, :loads!, 1)
    refute function_exported?(JsonOnly, :dump, 2)
    refute function_exported?(JsonOnly, :load, 1)
    assert Code.ensure_loaded?(JsonOnly.JSONDecoder)
    refute Code.ensure_loaded?(JsonOnly.JSONEncoder)

    assert function_exported?(JsonExcept, :dumps, 3)
    refute function_exported?(JsonExcept, :dump, 2)
    refute function_exported?(JsonExcept, :load, 1)
    assert Code.ensure_loaded?(JsonExcept.JSONDecoder)
    refute Code.ensure_loaded?(JsonExcept.JSONEncoder)
    # backend: becomes the default option of every call
    assert JsonExcept.dumps!([1]) == "[1]"
  end

  test "depth: 1 generates the imported submodules too" do
    assert function_exported?(JsonDeep, :dumps, 3)
    assert Code.ensure_loaded?(JsonDeep.Decoder)
  end

  test "the schema is cached under SchemaCache.dir()" do
    dir = SchemaCache.dir()
    assert String.ends_with?(dir, "_build/snakebridge/schemas")
    assert dir == Path.join(Mix.Project.build_path() |> Path.dirname(), "snakebridge/schemas")
    file = SchemaCache.path("json", depth: 0, private: false)
    assert Path.dirname(file) == dir
    assert File.regular?(file)
    assert SchemaCache.fresh?(file)
    # options are part of the key
    refute SchemaCache.path("json", depth: 1, private: false) == file
    assert File.regular?(SchemaCache.path("json", depth: 1, private: false))

    assert {:ok, schema, ^file} = SchemaCache.fetch("json", depth: 0, private: false)
    assert schema.name == "json"
    assert schema.version == "2.0.9"
  end

  test "__mix_recompile__?/0 turns true when the Python module's file changes", %{dir: dir} do
    py = Path.join(dir, "sbtest_use_probe.py")
    File.write!(py, "def twice(x: int) -> int:\n    return 2 * x\n")
    SnakeBridge.exec!("import importlib\nimportlib.invalidate_caches()")

    cache = SchemaCache.path("sbtest_use_probe", depth: 0, private: false)
    File.rm(cache)

    {:module, mod, _, _} =
      Code.eval_string("""
      defmodule SnakeBridge.UseTest.Probe do
        use SnakeBridge, python: "sbtest_use_probe"
      end
      """)
      |> elem(0)

    assert mod == SnakeBridge.UseTest.Probe
    assert SnakeBridge.UseTest.Probe.twice!(21) == 42
    assert File.regular?(cache)
    assert SnakeBridge.UseTest.Probe.__mix_recompile__?() == false
    assert SchemaCache.fresh?(cache)

    # another version of the library on disk
    File.write!(py, "def twice(x: int) -> int:\n    return x + x  # v2\n")
    assert SnakeBridge.UseTest.Probe.__mix_recompile__?() == true
    refute SchemaCache.fresh?(cache)

    # describing again refreshes the entry
    assert {:ok, _, ^cache} = SchemaCache.fetch("sbtest_use_probe", depth: 0, private: false)
    assert SnakeBridge.UseTest.Probe.__mix_recompile__?() == false

    # a removed cache entry means recompiling, too
    File.rm!(cache)
    assert SnakeBridge.UseTest.Probe.__mix_recompile__?() == true
  end

  test "a module that cannot be described is a CompileError with a clear message" do
    error =
      assert_raise CompileError, fn ->
        Code.compile_string("""
        defmodule SnakeBridge.UseTest.Missing do
          use SnakeBridge, python: "sbtest_use_no_such_module"
        end
        """)
      end

    message = Exception.message(error)
    assert message =~ ~s(use SnakeBridge, python: "sbtest_use_no_such_module")
    assert message =~ "ModuleNotFoundError: No module named 'sbtest_use_no_such_module'"
    refute Code.ensure_loaded?(SnakeBridge.UseTest.Missing)
  end

  test "python: is required" do
    assert_raise KeyError, ~r/:python/, fn ->
      Code.compile_string("""
      defmodule SnakeBridge.UseTest.NoPython do
        use SnakeBridge, only: ["dumps"]
      end
      """)
    end
  end

  describe "user mistakes in non-bang wrappers" do
    test "a list where keyword arguments go returns an ArgumentError naming the Python signature" do
      # heapq.merge(*iterables, key=None, reverse=False): *iterables goes by name.
      assert {:error, %ArgumentError{message: message}} = Heapq.merge([[1, 4], [2, 3]])
      assert message =~ "merge(*iterables, key=None, reverse=False)"
      assert message =~ "iterables: [...]"

      assert Heapq.merge!(iterables: [[1, 4], [2, 3]]) |> SnakeBridge.iter() |> Enum.to_list() == [1, 2, 3, 4]
      assert_raise ArgumentError, ~r/merge\(\*iterables/, fn -> Heapq.merge!([[1, 4], [2, 3]]) end
    end

    test "one positional argument too many returns an error, not an exception" do
      # nlargest(n, iterable, key=None): a third positional lands where keywords go.
      assert {:error, %ArgumentError{message: message}} = Heapq.nlargest(2, [5, 1, 3], 7, 8)
      assert message =~ "nlargest(n, iterable, key=None)"
      assert Heapq.nlargest(2, [5, 1, 3]) == {:ok, [5, 3]}
    end
  end

  describe "what a module exposes" do
    test "functions defined in the module's C accelerator are generated (bisect from _bisect)" do
      assert Bisect.bisect_left!([1, 3, 5], 4) == 2
      assert {:ok, 1} = Bisect.bisect_right([1, 3, 5], 1)
    end

    test "a module with nothing public generates a compile-time warning that says why", %{dir: dir} do
      # (dir is on sys.path for the whole module: setup_all)
      File.write!(Path.join(dir, "sbtest_use_nothing.py"), "_hidden = 1\ndef _helper():\n    return 2\n")
      SnakeBridge.call!("importlib", "invalidate_caches", [])

      warnings =
        ExUnit.CaptureIO.capture_io(:stderr, fn ->
          Code.compile_string("""
          defmodule SnakeBridge.UseTest.Nothing do
            use SnakeBridge, python: "sbtest_use_nothing"
          end
          """)
        end)

      assert warnings =~ ~s(use SnakeBridge, python: "sbtest_use_nothing": the Python module exposes no public)
      assert warnings =~ "private: true"
    end
  end

  test "decimal generates; its negative constants have Python's values" do
    for {name, fun} <- [{"MIN_EMIN", :min_emin}, {"MIN_ETINY", :min_etiny}, {"MAX_EMAX", :max_emax}] do
      python = SnakeBridge.getattr!("decimal", name)
      assert apply(Decimal, fun, []) == python
    end

    assert Decimal.min_emin() < -1_000_000
    q = Decimal.Decimal.new!("1.25") |> Decimal.Decimal.quantize!(Decimal.Decimal.new!("0.1"))
    assert SnakeBridge.call!("builtins", "str", [q]) == "1.2"
  end

  test "use SnakeBridge, binaries: :bytes makes every generated call send bytes" do
    data = String.duplicate("abc", 100)
    assert data |> Zlib.compress!() |> Zlib.decompress!() == data
  end
end
