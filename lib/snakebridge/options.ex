defmodule SnakeBridge.Options do
  @moduledoc false
  # Checks a keyword list against the type declared for each option, so that a
  # bad value is refused where it is given rather than found later (a pool
  # given `max_calls: "10"` used to start and simply never recycle). Used by
  # SnakeBridge.Pool (its options) and SnakeBridge.Config (the application's).
  #
  # Types: :pos_integer, :non_neg_integer, a range of integers, :boolean,
  # :name (an atom other than nil, true, false), :string (non-empty),
  # :strings (a list of them), :paths (a list of directories: non-empty
  # strings or {app, path}, see SnakeBridge.Config.expand/1), :search_paths
  # (:paths without ":", which separates them on the way to a port worker),
  # :env, {:in, values}, and {:or, types}.

  @doc """
  `:ok`, or `{:error, problem}` for the first option that is unknown or whose
  value does not have the declared type: `{:unknown, keys}`,
  `{:invalid, key, value, expected}` (`expected` says in words what it must be)
  or `{:not_keyword, opts}`.
  """
  def check(opts, types) do
    cond do
      not Keyword.keyword?(opts) ->
        {:error, {:not_keyword, opts}}

      (unknown = for({key, _} <- opts, not Keyword.has_key?(types, key), do: key)) != [] ->
        {:error, {:unknown, Enum.uniq(unknown)}}

      true ->
        Enum.find_value(opts, :ok, fn {key, value} ->
          type = Keyword.fetch!(types, key)
          if not valid?(type, value), do: {:error, {:invalid, key, value, describe(type)}}
        end)
    end
  end

  @doc "What a value of `type` must be, in words."
  def describe(:pos_integer), do: "a positive integer"
  def describe(:non_neg_integer), do: "a non-negative integer"
  def describe(%Range{first: first, last: last}), do: "an integer from #{first} to #{last}"
  def describe(:boolean), do: "a boolean"
  def describe(:name), do: "an atom (not nil, true or false)"
  def describe(:string), do: "a non-empty string"
  def describe(:strings), do: "a list of non-empty strings"
  def describe(:paths), do: ~s[a list of directories (non-empty strings or {app, "path"} tuples)]
  def describe(:search_paths), do: ~s[a list of directories (non-empty strings without ":" or {app, "path"} tuples)]
  def describe(:env), do: ~s(a list of {name, value} pairs of strings, each name non-empty and without "=")
  def describe({:in, values}), do: Enum.map_join(values, " or ", &inspect/1)
  def describe({:or, types}), do: Enum.map_join(types, " or ", &describe/1)

  defp valid?(:pos_integer, v), do: is_integer(v) and v > 0
  defp valid?(:non_neg_integer, v), do: is_integer(v) and v >= 0
  defp valid?(%Range{} = range, v), do: is_integer(v) and v in range
  defp valid?(:boolean, v), do: is_boolean(v)
  defp valid?(:name, v), do: is_atom(v) and v not in [nil, true, false]
  defp valid?(:string, v), do: is_binary(v) and v != ""
  defp valid?(:strings, v), do: is_list(v) and Enum.all?(v, &valid?(:string, &1))
  defp valid?(:paths, v), do: is_list(v) and Enum.all?(v, &path?/1)

  defp valid?(:search_paths, v),
    do: valid?(:paths, v) and not Enum.any?(v, &(&1 |> path_text() |> String.contains?(":")))

  defp valid?(:env, v), do: is_list(v) and Enum.all?(v, &env_pair?/1)
  defp valid?({:in, values}, v), do: v in values
  defp valid?({:or, types}, v), do: Enum.any?(types, &valid?(&1, v))

  defp path?({app, path}), do: valid?(:name, app) and valid?(:string, path)
  defp path?(path), do: valid?(:string, path)

  defp path_text({_app, path}), do: path
  defp path_text(path), do: path

  defp env_pair?({name, value}) when is_binary(name) and is_binary(value),
    do: name != "" and not String.contains?(name, ["=", <<0>>]) and not String.contains?(value, <<0>>)

  defp env_pair?(_), do: false
end
