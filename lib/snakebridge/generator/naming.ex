defmodule SnakeBridge.Generator.Naming do
  @moduledoc """
  Elixir names for Python names, stable across runs (documented in
  `docs/generated_modules.md`, "Names"):

    * Function names are snake_cased when Python uses CamelCase
      (`ScalarType` → `scalar_type`).
    * A name that Elixir reserves (`do`, `end`, `fn`, `when`, `true`, ...), a
      special form (`alias`, `receive`, `quote`, ...), a name the compiler
      defines (`module_info`, `__info__`), or `new` in a class module (the
      constructor) gets a trailing underscore: `end_`, `new_`.
    * If the result is already taken in the same module, underscores are added
      until it is free (`end__`). Names are processed in the order of the schema,
      which is sorted, so the outcome does not change between runs.
    * Parameter names follow the same rules, lose leading underscores, and avoid
      `kwargs` and `opts`, the two trailing arguments of every generated function.
    * Class and submodule names become aliases: `date` → `Date`, `JSONDecoder` stays.
  """

  @reserved ~w(do end fn when and or not in true false nil catch rescue after else
               __MODULE__ __DIR__ __ENV__ __CALLER__ __STACKTRACE__ module_info __info__ behaviour_info)
  @special_forms Kernel.SpecialForms.__info__(:macros) |> Enum.map(fn {n, _} -> Atom.to_string(n) end)

  @doc "A function name for a Python name, not in `taken`."
  @spec function_name(String.t(), MapSet.t(), [String.t()]) :: String.t()
  def function_name(python_name, taken, extra_reserved \\ []) do
    base = python_name |> underscore() |> valid_identifier()
    base = if reserved?(base) or base in extra_reserved, do: base <> "_", else: base
    free(base, taken)
  end

  @doc "A variable name for a Python parameter name, not in `taken`."
  @spec variable_name(String.t(), MapSet.t()) :: String.t()
  def variable_name(python_name, taken) do
    # A leading underscore would mark the variable as unused.
    base = python_name |> String.trim_leading("_") |> underscore() |> valid_identifier()
    base = if reserved?(base) or base in ["kwargs", "opts"], do: base <> "_", else: base
    free(base, taken)
  end

  @doc "A module alias segment for a Python class or module name."
  @spec alias_name(String.t()) :: String.t()
  def alias_name(python_name) do
    cleaned = python_name |> String.trim_leading("_") |> String.replace(~r/[^A-Za-z0-9_]/u, "_")
    cleaned = if cleaned == "", do: "X", else: cleaned

    cleaned = if cleaned =~ ~r/^[a-z]/ or String.contains?(cleaned, "_"), do: Macro.camelize(cleaned), else: cleaned

    if cleaned =~ ~r/^[A-Z]/, do: cleaned, else: "M" <> cleaned
  end

  defp reserved?(name), do: name in @reserved or name in @special_forms

  defp free(name, taken) do
    if MapSet.member?(taken, name), do: free(name <> "_", taken), else: name
  end

  # CamelCase and digits-first names; leave snake_case and _private alone.
  defp underscore(name) do
    if name =~ ~r/[A-Z]/ do
      {lead, rest} = split_leading_underscores(name)
      lead <> Macro.underscore(rest)
    else
      name
    end
  end

  defp split_leading_underscores(name) do
    rest = String.trim_leading(name, "_")
    {String.duplicate("_", String.length(name) - String.length(rest)), rest}
  end

  defp valid_identifier(name) do
    name = String.replace(name, ~r/[^\p{L}\p{N}_]/u, "_")

    cond do
      name == "" -> "x"
      name =~ ~r/^[\p{N}]/u -> "n" <> name
      name =~ ~r/^\p{Lu}/u -> String.downcase(name)
      true -> name
    end
  end
end
