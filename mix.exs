defmodule Mix.Tasks.Compile.SnakebridgeNative do
  @moduledoc false
  # Builds c_src/ with CMake into priv/. Defined here rather than in lib/
  # because a compiler must exist before the project's own code is compiled,
  # and we take no hex dependency (elixir_make) to provide one.
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    root = Path.expand(".", __DIR__)
    build = Path.join(root, "_build/cmake")
    python = System.get_env("SNAKEBRIDGE_PYTHON") || "/usr/bin/python3"

    cond do
      System.find_executable("cmake") == nil ->
        Mix.raise(
          "snakebridge: cmake not found. Install the build requirements (Debian: apt-get install " <>
            "cmake g++ erlang-dev python3-dev libmsgpack-cxx-dev libboost-dev), " <>
            "or run `make deps` in #{root}"
        )

      true ->
        configure = [
          "-S",
          root,
          "-B",
          build,
          "-DCMAKE_BUILD_TYPE=" <> (System.get_env("SNAKEBRIDGE_BUILD_TYPE") || "Release"),
          "-DSNAKEBRIDGE_PYTHON=" <> python
        ]

        unless File.exists?(Path.join(build, "CMakeCache.txt")) do
          # CMake's output is shown when it is done: say why the first compile is quiet for a while.
          Mix.shell().info(
            "snakebridge: building the NIF and the port program against #{python} (once; a minute or two)"
          )

          cmd!("cmake", configure)
        end

        cmd!("cmake", ["--build", build, "--target", "snakebridge_nif", "snakebridge_port", "--parallel", "2"])
        {:ok, []}
    end
  end

  defp cmd!(exe, args) do
    case System.cmd(exe, args, stderr_to_stdout: true, into: "") do
      {out, 0} ->
        if out =~ ~r/warning|Building|Linking/, do: Mix.shell().info(String.trim(out))
        :ok

      {out, status} ->
        Mix.shell().error(out)
        Mix.raise("snakebridge: `#{exe} #{Enum.join(args, " ")}` failed with status #{status}")
    end
  end
end

defmodule SnakeBridge.MixProject do
  use Mix.Project

  def project do
    [
      app: :snakebridge,
      version: "0.1.0",
      elixir: "~> 1.14",
      compilers: [:snakebridge_native | Mix.compilers()],
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      # PropEr comes from Debian (erlang-proper), used only by the property tests.
      xref: [exclude: [:proper, :proper_types]],
      docs: [main: "readme"]
    ]
  end

  def application do
    [
      extra_applications: [:logger, :crypto],
      mod: {SnakeBridge.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
