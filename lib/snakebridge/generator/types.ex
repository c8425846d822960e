defmodule SnakeBridge.Generator.Types do
  @moduledoc """
  Python annotations (as text) to Elixir typespecs, and to the typed argument
  mapping of generated wrappers.

  | annotation | spec |
  |---|---|
  | `int` | `integer()` |
  | `float` | `float()` (`number()` for a parameter: integers are converted) |
  | `complex` | `term()` |
  | `str` | `String.t()` |
  | `bytes`, `bytearray`, `memoryview`, `Buffer`, `ReadableBuffer` | `binary()` |
  | `bool` | `boolean()` |
  | `None` | `nil` |
  | `list[T]`, `List[T]`, `Sequence[T]`, `Iterable[T]` | `list(t)` |
  | `tuple[...]`, `Tuple[...]` | `tuple()` |
  | `dict[K, V]`, `Mapping[K, V]` | `map()` |
  | `set[T]`, `frozenset[T]` | `MapSet.t()` |
  | `Optional[T]`, `T \\| None` | `t \\| nil` |
  | `Union[A, B]`, `A \\| B` | `a \\| b` |
  | `datetime.date`, `.time`, `.datetime` | `Date.t()`, `Time.t()`, `NaiveDateTime.t() \\| DateTime.t()` |
  | `numpy.ndarray`, `NDArray[...]` | `SnakeBridge.Array.t() \\| SnakeBridge.Object.t() \\| list()` (`SnakeBridge.Object.t()` for a result) |
  | `ArrayLike` (`numpy.typing`) | `SnakeBridge.Array.t() \\| SnakeBridge.Object.t() \\| list() \\| number()` (`term()` for a result) |
  | anything else | `term()` |
  """

  # Types that take bytes and never a str.
  @bytes_like ~w(bytes bytearray memoryview ByteString Buffer ReadableBuffer ReadOnlyBuffer)

  @doc "The spec (source text) for an annotation; `role` is `:param` or `:return`."
  @spec spec(String.t() | nil, :param | :return) :: String.t()
  def spec(nil, _role), do: "term()"

  def spec(annotation, role) do
    case parse(annotation) do
      {:ok, ast} -> render(ast, role)
      :error -> "term()"
    end
  end

  @doc """
  How a generated wrapper converts an argument for this parameter annotation:
  `:bytes` (binary → Python bytes), `:float` (integer → float), `:tuple`
  (list → tuple), or nil.

  `:bytes` for the bytes-like types — `bytes`, `bytearray`, `memoryview`,
  `ByteString`, `collections.abc.Buffer`, typeshed's `ReadableBuffer` — and
  unions of them with `None` (`bytes | None`, `Optional[Buffer]`,
  `bytes | bytearray`). A union that also admits text (`str | bytes`, `AnyStr`)
  converts nothing: the binary stays a `str`.
  """
  @spec coercion(String.t() | nil) :: :bytes | :float | :tuple | nil
  def coercion(nil), do: nil

  def coercion(annotation) do
    case parse(annotation) do
      {:ok, {:name, n, _}} -> coercion_of(n)
      # Optional[bytes] still wants bytes when a value is given.
      {:ok, {:union, members}} -> members |> Enum.reject(&none?/1) |> union_coercion()
      _ -> nil
    end
  end

  defp none?({:name, n, []}), do: base(n) in ["None", "NoneType"]
  defp none?(_), do: false

  defp union_coercion([{:name, n, _}]), do: coercion_of(n)

  defp union_coercion([_ | _] = members) do
    if Enum.all?(members, &match?({:name, _, _}, &1)) and
         Enum.all?(members, fn {:name, n, _} -> base(n) in @bytes_like end),
       do: :bytes
  end

  defp union_coercion(_), do: nil

  defp coercion_of(n) do
    case base(n) do
      b when b in @bytes_like -> :bytes
      "float" -> :float
      b when b in ["tuple", "Tuple"] -> :tuple
      _ -> nil
    end
  end

  # ------------------------------------------------------------------ parsing

  # union := primary ("|" primary)* ; primary := name ["[" union ("," union)* "]"]
  defp parse(text) do
    with {:ok, tokens} <- tokenize(String.trim(text), []),
         {:ok, ast, []} <- union(tokens) do
      {:ok, ast}
    else
      _ -> :error
    end
  end

  defp tokenize("", acc), do: {:ok, Enum.reverse(acc)}
  defp tokenize(<<c, rest::binary>>, acc) when c in [?\s, ?\t], do: tokenize(rest, acc)
  defp tokenize(<<c, rest::binary>>, acc) when c in [?[, ?], ?,, ?|], do: tokenize(rest, [<<c>> | acc])

  defp tokenize(<<q, _::binary>> = text, acc) when q in [?', ?"] do
    case Regex.run(~r/^(['"])(.*?)\1/s, text) do
      [whole, _, inner] ->
        tokenize(binary_part(text, byte_size(whole), byte_size(text) - byte_size(whole)), [{:lit, inner} | acc])

      _ ->
        :error
    end
  end

  defp tokenize(text, acc) do
    case Regex.run(~r/^[\w.]+|^\.\.\./u, text) do
      [name] -> tokenize(binary_part(text, byte_size(name), byte_size(text) - byte_size(name)), [{:id, name} | acc])
      _ -> :error
    end
  end

  defp union(tokens) do
    with {:ok, first, rest} <- primary(tokens) do
      union_rest(rest, [first])
    end
  end

  defp union_rest(["|" | rest], acc) do
    with {:ok, next, rest} <- primary(rest), do: union_rest(rest, [next | acc])
  end

  defp union_rest(rest, [single]), do: {:ok, single, rest}
  defp union_rest(rest, acc), do: {:ok, {:union, Enum.reverse(acc)}, rest}

  defp primary([{:lit, text} | rest]), do: {:ok, {:lit, text}, rest}

  defp primary([{:id, name}, "[" | rest]) do
    with {:ok, args, rest} <- args(rest, []) do
      {:ok, normalize({:name, name, args}), rest}
    end
  end

  defp primary([{:id, name} | rest]), do: {:ok, normalize({:name, name, []}), rest}

  defp primary(["[" | rest]) do
    with {:ok, items, rest} <- args(rest, []), do: {:ok, {:name, "list", items}, rest}
  end

  defp primary(_), do: :error

  defp args(["]" | rest], acc), do: {:ok, Enum.reverse(acc), rest}

  defp args(tokens, acc) do
    with {:ok, arg, rest} <- union(tokens) do
      case rest do
        ["," | rest] -> args(rest, [arg | acc])
        ["]" | rest] -> {:ok, Enum.reverse([arg | acc]), rest}
        _ -> :error
      end
    end
  end

  defp normalize({:name, n, args}) do
    case {base(n), args} do
      {"Optional", [t]} -> {:union, [t, {:name, "None", []}]}
      {"Union", members} when members != [] -> {:union, members}
      _ -> {:name, n, args}
    end
  end

  defp base(name), do: name |> String.split(".") |> List.last()

  # ------------------------------------------------------------------ rendering

  defp render({:union, members}, role) do
    members |> Enum.map(&render(&1, role)) |> Enum.uniq() |> collapse_union()
  end

  defp render({:lit, _}, _), do: "String.t()"

  defp render({:name, name, args}, role) do
    qualified = String.replace_prefix(name, "typing.", "")

    case {base(qualified), args, qualified} do
      {_, _, "datetime.datetime"} ->
        "NaiveDateTime.t() | DateTime.t()"

      {_, _, "datetime.date"} ->
        "Date.t()"

      {_, _, "datetime.time"} ->
        "Time.t()"

      {"int", _, _} ->
        "integer()"

      {"float", _, _} ->
        if role == :param, do: "number()", else: "float()"

      {"str", _, _} ->
        "String.t()"

      {b, _, _} when b in @bytes_like ->
        "binary()"

      {"bool", _, _} ->
        "boolean()"

      {b, _, _} when b in ["None", "NoneType"] ->
        "nil"

      {b, [t], _} when b in ["list", "List", "Sequence", "MutableSequence", "Iterable", "Iterator", "Collection"] ->
        "list(#{render(t, role)})"

      {b, _, _} when b in ["list", "List", "Sequence", "MutableSequence", "Iterable", "Iterator", "Collection"] ->
        "list()"

      {b, _, _} when b in ["tuple", "Tuple"] ->
        "tuple()"

      {b, _, _} when b in ["dict", "Dict", "Mapping", "MutableMapping", "OrderedDict", "defaultdict"] ->
        "map()"

      {b, _, _} when b in ["set", "Set", "frozenset", "FrozenSet", "AbstractSet", "MutableSet"] ->
        "MapSet.t()"

      {b, _, _} when b in ["ndarray", "NDArray"] ->
        if role == :param, do: "SnakeBridge.Array.t() | SnakeBridge.Object.t() | list()", else: "SnakeBridge.Object.t()"

      {"ArrayLike", _, _} ->
        if role == :param, do: "SnakeBridge.Array.t() | SnakeBridge.Object.t() | list() | number()", else: "term()"

      {"Literal", _, _} ->
        "term()"

      _ ->
        "term()"
    end
  end

  defp collapse_union(specs) do
    if "term()" in specs, do: "term()", else: Enum.join(specs, " | ")
  end
end
