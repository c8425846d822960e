defmodule SnakeBridge.SchemaCache do
  @moduledoc """
  Schemas of Python modules cached on disk, so that compiling a project whose
  modules `use SnakeBridge` needs no Python when nothing changed.

  Entries live in `_build/snakebridge/schemas/` (under the project's build root,
  shared by all Mix environments; `mix snakebridge.clean` removes them). An
  entry records the interpreter and a fingerprint of the module's file (path,
  size, modification time): installing another version of the library changes
  the file, which makes the entry stale, and the module that uses it recompile
  (`__mix_recompile__?/0`). A SnakeBridge whose introspection helper or schema
  format changed uses entries of its own.
  """

  # Entries also depend on the introspection helper that made them and on the
  # shape of SnakeBridge.Schema: a SnakeBridge that describes modules
  # differently starts a fresh cache.
  @helper Path.expand("../../priv/python/snakebridge_introspect.py", __DIR__)
  @external_resource @helper
  @helper_hash :crypto.hash(:sha256, File.read!(@helper))

  @doc "The directory holding cached schemas."
  @spec dir() :: Path.t()
  def dir, do: Path.join(SnakeBridge.Cache.dir(), "schemas")

  @doc "The cache file for a module described with `opts` (`:depth`, `:private`)."
  @spec path(String.t(), keyword()) :: Path.t()
  def path(module, opts) do
    key =
      {SnakeBridge.Config.python(), Keyword.get(opts, :depth, 1), Keyword.get(opts, :private, false), @helper_hash,
       SnakeBridge.Schema.format()}

    hash = :crypto.hash(:sha256, :erlang.term_to_binary(key)) |> Base.url_encode64(padding: false) |> binary_part(0, 12)
    Path.join(dir(), "#{module}-#{hash}.etf")
  end

  @doc """
  The schema of `module`, from the cache when it is fresh, otherwise described by
  the embedded interpreter (starting `:snakebridge` if needed) and cached.
  """
  @spec fetch(String.t(), keyword()) :: {:ok, SnakeBridge.Schema.t(), Path.t()} | {:error, Exception.t()}
  def fetch(module, opts \\ []) do
    file = path(module, opts)

    case read(file) do
      {:ok, schema} ->
        {:ok, schema, file}

      :stale ->
        with {:ok, _} <- Application.ensure_all_started(:snakebridge),
             {:ok, schema} <- SnakeBridge.describe_library(module, Keyword.take(opts, [:depth, :private, :timeout])) do
          write(file, schema)
          {:ok, schema, file}
        else
          {:error, %{__exception__: true} = e} -> {:error, e}
          {:error, reason} -> {:error, %RuntimeError{message: "cannot start SnakeBridge: #{inspect(reason)}"}}
        end
    end
  end

  @doc "Whether the cache entry at `file` still matches the Python module on disk."
  @spec fresh?(Path.t()) :: boolean()
  def fresh?(file), do: match?({:ok, _}, read(file))

  defp read(file) do
    with {:ok, bin} <- File.read(file),
         %{schema: schema, fingerprint: fingerprint} <- safe_decode(bin),
         true <- fingerprint == fingerprint(schema) do
      {:ok, schema}
    else
      _ -> :stale
    end
  end

  defp write(file, schema) do
    File.mkdir_p!(Path.dirname(file))
    tmp = file <> ".tmp#{System.unique_integer([:positive])}"
    File.write!(tmp, :erlang.term_to_binary(%{schema: schema, fingerprint: fingerprint(schema)}))
    # The entry is an @external_resource of the module being compiled, written
    # while it compiles: with a fresh mtime it would look newer than that
    # compile, and the next `mix compile` would compile the module again. An
    # entry's freshness is its fingerprint (`__mix_recompile__?/0`), not its mtime.
    File.touch!(tmp, {{2000, 1, 1}, {0, 0, 0}})
    File.rename!(tmp, file)
  end

  defp safe_decode(bin) do
    :erlang.binary_to_term(bin)
  rescue
    ArgumentError -> nil
  end

  # The module's own file, and for built-in modules (no file) the interpreter.
  defp fingerprint(schema) do
    files = [schema.file || SnakeBridge.Config.python()] ++ Enum.map(schema.submodules, & &1.file)

    for f <- files, f != nil do
      case File.stat(f) do
        {:ok, stat} -> {f, stat.size, stat.mtime}
        {:error, _} -> {f, :missing}
      end
    end
  end
end
