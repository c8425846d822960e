defmodule Mix.Tasks.Snakebridge.Discover do
  @shortdoc "Describes a Python module: functions, classes, signatures"
  @moduledoc """
  Prints a readable summary of a Python module as SnakeBridge sees it, and
  optionally writes the full schema (`SnakeBridge.describe_library/2`).

      mix snakebridge.discover json
      mix snakebridge.discover numpy --depth 1
      mix snakebridge.discover statistics --output statistics.json

  Options:

    * `--depth N` — also describe already-imported submodules N levels deep (default 0, as
      `mix snakebridge.gen` and `use SnakeBridge`, so discover shows what gen makes)
    * `--private` — include `_private` names
    * `--output FILE` — write the schema: JSON if FILE ends in `.json`, otherwise an
      Elixir term (readable with `Code.eval_file/1`)

  The interpreter is the one SnakeBridge is configured with (`SNAKEBRIDGE_PYTHON`,
  `config :snakebridge, python: ...`, see `SnakeBridge.Config`).
  """
  use Mix.Task

  @impl true
  def run(argv) do
    {opts, args, invalid} = OptionParser.parse(argv, strict: [depth: :integer, private: :boolean, output: :string])
    if invalid != [], do: Mix.raise("Unknown option(s): #{Enum.map_join(invalid, ", ", &elem(&1, 0))}")

    module =
      case args do
        [m] -> m
        _ -> Mix.raise("Usage: mix snakebridge.discover MODULE [--depth N] [--private] [--output FILE]")
      end

    Mix.Tasks.Snakebridge.Gen.start_snakebridge!()
    depth = Keyword.get(opts, :depth, 0)
    Mix.shell().info("* describing Python module #{module} (depth #{depth})...")

    {micros, result} =
      :timer.tc(fn ->
        SnakeBridge.describe_library(module, depth: depth, private: opts[:private] || false, timeout: :infinity)
      end)

    schema =
      case result do
        {:ok, schema} -> schema
        {:error, e} -> Mix.raise("Cannot describe #{module}: #{Exception.message(e)}")
      end

    Mix.shell().info(summary(schema, 0) <> "\n(described in #{div(micros, 1000)} ms)")

    if file = opts[:output] do
      write(file, module, depth, opts[:private] || false, schema)
      Mix.shell().info("* wrote #{file}")
    end
  end

  defp summary(schema, level) do
    pad = String.duplicate("  ", level)
    version = if schema.version, do: " #{schema.version}", else: ""

    lines =
      ["#{pad}#{schema.name}#{version} — #{first_line(schema.doc)}"] ++
        section(pad, "functions", schema.functions, &(signatures(&1.name, &1, "(...)  [no signature]") <> bytes(&1))) ++
        section(pad, "classes", schema.classes, fn c ->
          n = length(c.methods) + length(c.class_methods) + length(c.static_methods)
          "#{signatures(c.name, c.init, "(...)")} — #{n} methods, #{length(c.properties)} properties"
        end) ++
        section(pad, "constants", schema.constants, &"#{&1.name} = #{&1.repr}") ++
        if(schema.unimported_submodules == [],
          do: [],
          else: ["#{pad}  not imported (describe them by name): #{Enum.join(schema.unimported_submodules, ", ")}"]
        ) ++
        section(pad, "skipped (failed on access)", schema.errors, &"#{&1.name}: #{&1.error}") ++
        Enum.map(schema.submodules, &summary(&1, level + 1))

    Enum.join(lines, "\n")
  end

  # Every documented form: range(stop) | range(start, stop [, step]).
  defp signatures(name, %{overloads: [_, _ | _] = forms}, _none),
    do: forms |> Enum.map(&"#{name}#{&1.signature}") |> Enum.uniq() |> Enum.join(" | ")

  defp signatures(name, %{signature: signature}, _none) when is_binary(signature), do: name <> signature
  defp signatures(name, _callable, none), do: name <> none

  # Parameters the schema knows to be bytes-like (no annotation says so).
  defp bytes(callable) do
    names =
      for p <- callable.parameters ++ Enum.flat_map(callable.overloads, & &1.parameters),
          Map.get(p, :bytes_like),
          uniq: true,
          do: p.name

    if names == [], do: "", else: "  [bytes: #{Enum.join(names, ", ")}]"
  end

  defp section(_pad, _title, [], _fun), do: []

  defp section(pad, title, items, fun),
    do: ["#{pad}  #{title} (#{length(items)}):" | Enum.map(items, &"#{pad}    #{fun.(&1)}")]

  defp first_line(nil), do: "(no docstring)"
  defp first_line(doc), do: doc |> String.split("\n", parts: 2) |> hd()

  defp write(file, module, depth, private, schema) do
    File.mkdir_p!(Path.dirname(Path.expand(file)))

    if String.ends_with?(file, ".json") do
      # Python describes itself in JSON: the raw schema, dumped by json itself.
      {:ok, raw} = SnakeBridge.Runtime.run({:describe, module, depth, private}, return: :ref, timeout: :infinity)
      json = SnakeBridge.call!("json", "dumps", [raw], indent: 2, default: SnakeBridge.eval!("repr", %{}, return: :ref))
      File.write!(file, json <> "\n")
    else
      File.write!(file, inspect(schema, pretty: true, limit: :infinity, printable_limit: :infinity) <> "\n")
    end
  end
end
