defmodule SnakeBridge.OptionsTest do
  # Options are checked before anything starts: SnakeBridge.Pool's (in
  # start_link/1 and its child spec) and the application's `config :snakebridge`
  # keys (when the application starts). A bad one raises ArgumentError naming
  # the option and the value. Rejections here start no worker and no Python.
  use ExUnit.Case, async: true

  alias SnakeBridge.{Config, Pool}

  doctest SnakeBridge.Pool

  @pool SnakeBridge.OptionsTest.Pool

  defp pool_error(opts) do
    assert {:error, message} = Pool.validate_options(opts)
    message
  end

  defp config_error(env) do
    assert_raise(ArgumentError, fn -> Config.validate!(env) end).message
  end

  # ------------------------------------------------------------------ pool options

  test "every pool option accepts each of its documented forms" do
    valid = [
      name: [@pool, :a_pool],
      size: [0, 1, 8],
      python: ["/usr/bin/python3", nil],
      python_paths: [[], ["/srv/py", "relative/dir"], [{:my_app, "priv/python"}, "/srv/py"]],
      env: [[], [{"MY_VAR", "value"}, {"EMPTY", ""}]],
      cd: ["/tmp", nil],
      max_calls: [1, 10_000, :infinity],
      max_memory_mb: [1, 512, :infinity],
      affinity: [:process, :none],
      threads: [1, 128],
      distributed: [true, false],
      spin_us: [0, 100]
    ]

    for {key, values} <- valid, value <- values do
      opts = Keyword.merge([name: @pool, distributed: true], [{key, value}])
      assert Pool.validate_options(opts) == :ok, "#{inspect(key)}: #{inspect(value)} was refused"
    end
  end

  test "a pool with every option set starts and answers" do
    name = SnakeBridge.OptionsTest.Everything

    opts = [
      name: name,
      size: 1,
      python: nil,
      python_paths: [],
      env: [{"SB_OPTIONS_TEST", "1"}],
      cd: nil,
      max_calls: :infinity,
      max_memory_mb: :infinity,
      affinity: :none,
      threads: 2,
      distributed: false,
      spin_us: 0
    ]

    start_supervised!({Pool, opts})
    assert SnakeBridge.eval!("__import__('os').environ['SB_OPTIONS_TEST']", %{}, backend: {:pool, name}) == "1"
  end

  test "max_calls: \"10\" is refused, naming the option and the value, and nothing starts" do
    opts = [name: @pool, size: 1, max_calls: "10"]
    expected = ~s(SnakeBridge.Pool #{inspect(@pool)}: :max_calls must be a positive integer or :infinity, got: "10")

    assert_raise ArgumentError, expected, fn -> Pool.start_link(opts) end
    assert_raise ArgumentError, expected, fn -> Pool.child_spec(opts) end
    # In a supervision tree, the child spec is refused before any sibling starts.
    assert_raise ArgumentError, expected, fn -> Supervisor.start_link([{Pool, opts}], strategy: :one_for_one) end
    assert Process.whereis(Module.concat(@pool, Supervisor)) == nil
    assert Pool.workers(@pool) == []
  end

  test "an unknown pool option is refused, and the known ones are listed" do
    message = pool_error(name: @pool, max_call: 10)
    assert message =~ "SnakeBridge.Pool #{inspect(@pool)}: unknown option :max_call"
    assert message =~ ":max_calls"
    assert pool_error(name: @pool, venv: ".venv", foo: 1) =~ "unknown options :venv, :foo"
  end

  test "each pool option refuses values of the wrong type" do
    invalid = [
      name: [nil, true, "MyPool", {:via, Registry, :x}],
      size: [-1, 1.5, "2"],
      python: ["", ~c"/usr/bin/python3", :python3],
      python_paths: ["/srv/py", [~c"/srv/py"], [""], ["/a:/b"], [{:my_app, ""}], [{nil, "priv"}], [{:my_app, "a:b"}]],
      env: [%{"A" => "1"}, [{"A", 1}], [{:A, "1"}], [{"", "1"}], [{"A=B", "1"}], [{"A", "1", "2"}], ["A=1"]],
      cd: ["", ~c"/tmp"],
      max_calls: [0, -5, "10", 1.0, nil],
      max_memory_mb: [0, "512", nil],
      affinity: [:sticky, "process", nil],
      threads: [0, "1"],
      distributed: [nil, "true", 1],
      spin_us: [-1, "100", 0.5]
    ]

    for {key, values} <- invalid, value <- values do
      opts = Keyword.merge([name: @pool, distributed: true], [{key, value}])
      message = pool_error(opts)
      assert message =~ "#{inspect(key)} must be ", "#{inspect(key)}: #{inspect(value)}: #{message}"
      assert message =~ "got: #{inspect(value)}"
    end
  end

  test "a pool needs a name, options as a keyword list, and workers of its own unless distributed" do
    assert pool_error(size: 1) == "SnakeBridge.Pool: the :name option is required"
    assert pool_error(%{name: @pool}) =~ "SnakeBridge.Pool options must be a keyword list, got: %{"
    assert pool_error(name: @pool, size: 0) =~ ":size must be positive unless distributed: true, got: 0"
    assert_raise ArgumentError, ~r/the :name option is required/, fn -> Pool.start_link(size: 1) end
  end

  # ------------------------------------------------------------------ config :snakebridge

  test "every config key accepts each of its documented forms" do
    valid = [
      python: ["/usr/bin/python3", nil],
      venv: [".venv", "", nil],
      python_requirements: [[], ["numpy==1.24.2", "./py/mylib"]],
      venv_system_site_packages: [true, false],
      python_paths: [[], ["priv/python"], [{:my_app, "priv/python"}]],
      max_python_threads: [1, 128],
      fast_path: [true, false],
      thread_spin_us: [0, 50],
      pools: [[], [[name: @pool, size: 2, max_calls: 10]], [[name: A], [name: B, affinity: :none]]]
    ]

    for {key, values} <- valid, value <- values do
      assert Config.validate!([{key, value}]) == [{key, value}]
    end

    assert Config.validate!([]) == []
  end

  test "a bad config value is refused, naming `config :snakebridge, <key>` and the value" do
    invalid = [
      python: ["", ~c"/usr/bin/python3"],
      venv: [:venv, ~c".venv"],
      python_requirements: ["numpy", [:numpy]],
      venv_system_site_packages: ["yes"],
      python_paths: ["priv/python", [~c"priv/python"], [{"my_app", "priv/python"}], [{:my_app, ~c"priv"}]],
      max_python_threads: [0, "8", 4_294_967_296],
      fast_path: [nil, "false"],
      thread_spin_us: [-1, "50", 4_294_967_296]
    ]

    for {key, values} <- invalid, value <- values do
      message = config_error([{key, value}])
      assert message =~ "config :snakebridge, #{key}: must be ", message
      assert message =~ "got: #{inspect(value)}"
    end
  end

  test "an unknown config key is refused (max_threads is spelled max_python_threads)" do
    message = config_error(max_threads: 8)
    assert message =~ "unknown config :snakebridge key :max_threads"
    assert message =~ ":max_python_threads"
  end

  test "a bad pool in config is refused, naming the pool and the option" do
    assert config_error(pools: [[name: @pool, size: 1], [name: Other, max_calls: "10"]]) ==
             ~s(config :snakebridge, pools: SnakeBridge.Pool Other: :max_calls must be a positive integer or :infinity, got: "10")

    assert config_error(pools: [[name: @pool, sise: 2]]) =~
             "config :snakebridge, pools: SnakeBridge.Pool #{inspect(@pool)}: unknown option :sise"

    assert config_error(pools: [[size: 2]]) ==
             "config :snakebridge, pools: SnakeBridge.Pool: the :name option is required"

    assert config_error(pools: [name: @pool]) =~ "config :snakebridge, pools: must be a list of keyword lists"
    assert config_error(pools: @pool) =~ "config :snakebridge, pools: must be a list of keyword lists"

    assert config_error(pools: [[name: @pool], [name: @pool, size: 1]]) ==
             "config :snakebridge, pools: more than one pool is named #{inspect(@pool)}"
  end

  test "the application does not start with a bad pool in config, and says which pool and option" do
    # A fresh BEAM: stopping this one's application would stop the other suites' pools.
    ebin = :code.lib_dir(:snakebridge, :ebin) |> to_string()

    code = """
    Application.put_env(:snakebridge, :pools, [[name: BadPool, size: 1, max_calls: "10"]])
    {:error, reason} = Application.ensure_all_started(:snakebridge)
    IO.puts("result: " <> inspect(reason))
    """

    {out, _} = System.cmd("elixir", ["-pa", ebin, "-e", code], stderr_to_stdout: true)
    [result] = Regex.run(~r/^result: .*/m, out)
    assert result =~ "config :snakebridge, pools: SnakeBridge.Pool BadPool: :max_calls must be"
    assert result =~ ~s(got: \\"10\\")
  end
end
