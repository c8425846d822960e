defmodule SnakeBridge.Parity do
  @moduledoc false
  # Shared by the parity suite (test/parity/*_test.exs): run one request on both
  # backends (in-process `:nif` and the port-worker pool of the test config) and
  # reduce each result to a form where `===` means "the same answer".
  #
  # Normalisation (and nothing else is loosened):
  #
  #   * `%SnakeBridge.Object{}` -> `{:object, type, canonical_repr}`. The repr is
  #     made by the process that owns the object; set elements are sorted by their
  #     repr (the two interpreters have different str hash seeds, so Python's own
  #     set order differs between them) and memory addresses are masked.
  #   * `SnakeBridge.PythonError` -> module, `type`, `python_type`, `message`, and
  #     only whether the traceback is a non-empty string.
  #   * `SnakeBridge.ConversionError` -> `python_type` and `repr` (addresses masked;
  #     for a set, its repr's characters in any order: hash order again).
  #   * other exceptions -> module and their message-level fields.
  #   * `-0.0` -> `{:float, :negative_zero}` (on OTP 25 `-0.0 === 0.0`).
  #   * everything else is kept as is and compared with `===` (1 vs 1.0 differ,
  #     calendar structs differ by precision, zone, offsets...).

  alias SnakeBridge.{ConversionError, Object, PythonError, TimeoutError, WorkerCrashError}

  @pool SnakeBridge.TestPool

  def backends, do: [nif: [backend: :nif], pool: [backend: {:pool, @pool}]]
  def opts(:nif), do: [backend: :nif]
  def opts(:pool), do: [backend: {:pool, @pool}]

  @doc "Runs `fun` (which may raise or exit) and returns its result, `{:raised, e}` or `{:exit, reason}`."
  def capture(fun) do
    fun.()
  rescue
    e -> {:raised, e}
  catch
    :exit, reason -> {:exit, exit_reason(reason)}
  end

  defp exit_reason({reason, {mod, fun, _args}}) when is_atom(mod) and is_atom(fun), do: {reason, {mod, fun}}
  defp exit_reason(reason), do: reason

  @doc "The normal form of a result (see the moduledoc)."
  def normalise(term), do: norm(term)

  defp norm(%Object{type: type} = object), do: {:object, type, canonical_repr(object)}
  defp norm(%{__exception__: true} = e), do: exception(e)
  defp norm(%MapSet{} = set), do: {MapSet, set |> Enum.map(&norm/1) |> Enum.sort()}
  defp norm(%mod{} = calendar) when mod in [Date, Time, NaiveDateTime, DateTime], do: calendar
  defp norm(%mod{} = struct), do: {mod, struct |> Map.from_struct() |> norm()}
  defp norm(map) when is_map(map), do: Map.new(map, fn {k, v} -> {norm(k), norm(v)} end)
  defp norm(list) when is_list(list), do: norm_list(list)
  defp norm(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> norm_list() |> List.to_tuple()

  defp norm(f) when is_float(f) do
    if <<f::float>> == <<0x8000000000000000::64>>, do: {:float, :negative_zero}, else: f
  end

  defp norm(other), do: other

  defp norm_list([h | t]), do: [norm(h) | norm_list(t)]
  defp norm_list(other), do: other

  defp exception(%PythonError{} = e) do
    {PythonError, e.type, e.python_type, mask(e.message), traceback: is_binary(e.traceback) and e.traceback != ""}
  end

  # A set's repr lists its elements in hash order, and str hashes are seeded per
  # interpreter: compare the characters of the repr, not their order.
  defp exception(%ConversionError{python_type: type, repr: repr}) when type in ["set", "frozenset"] and is_binary(repr),
    do: {ConversionError, type, {:chars, repr |> String.graphemes() |> Enum.sort()}}

  defp exception(%ConversionError{} = e), do: {ConversionError, e.python_type, mask(e.repr)}
  defp exception(%TimeoutError{} = e), do: {TimeoutError, e.timeout, e.operation}
  defp exception(%WorkerCrashError{} = e), do: {WorkerCrashError, e.reason}
  defp exception(%mod{} = e), do: {mod, mask(Exception.message(e))}

  # Memory addresses and OS thread ids differ between interpreters.
  def mask(text) when is_binary(text) do
    text
    |> then(&Regex.replace(~r/0x[0-9a-fA-F]{4,}/, &1, "0x?"))
    |> then(&Regex.replace(~r/thread id \d+/, &1, "thread id ?"))
  end

  def mask(other), do: other

  # repr with set elements sorted (by their own canonical repr), recursing into the
  # exact builtin containers only; other objects use their own repr.
  @canonical """
  (lambda c: c(c, o))(lambda c, x: \
  (type(x).__name__ + '{' + ', '.join(sorted(c(c, e) for e in x)) + '}') if type(x) in (set, frozenset) else \
  ('[' + ', '.join(c(c, e) for e in x) + ']') if type(x) is list else \
  ('(' + ''.join(c(c, e) + ', ' for e in x) + ')') if type(x) is tuple else \
  ('{' + ', '.join(c(c, k) + ': ' + c(c, v) for k, v in x.items()) + '}') if type(x) is dict else \
  repr(x))
  """

  defp canonical_repr(%Object{owner: owner} = object) do
    backend = if owner == nil, do: :nif, else: {:pool, @pool}

    case SnakeBridge.eval(@canonical, %{"o" => object}, backend: backend, timeout: 10_000) do
      {:ok, repr} when is_binary(repr) ->
        mask(repr)

      _ ->
        case SnakeBridge.call("builtins", "repr", [object], [], backend: backend, timeout: 10_000) do
          {:ok, repr} when is_binary(repr) -> mask(repr)
          {:ok, other} -> {:repr_not_text, other.__struct__}
          {:error, e} -> {:repr_failed, e.__struct__, Map.get(e, :type)}
        end
    end
  end

  @doc "A list nested `n` levels around 0 (`nest(1) == [0]`)."
  def nest(0), do: 0
  def nest(n), do: [nest(n - 1)]

  @doc "How many single-item lists wrap the innermost non-list, and that item."
  def unnest(term, d \\ 0)
  def unnest([inner], d), do: unnest(inner, d + 1)
  def unnest(other, d), do: {d, other}

  @doc "-0.0, made at run time (the compiler may share one literal for 0.0 and -0.0)."
  def negative_zero do
    <<f::float>> = <<0x8000000000000000::64>>
    f
  end

  @doc "Masks memory addresses in every binary inside `term` (for results that embed reprs, such as schemas)."
  def mask_all(term) when is_binary(term), do: mask(term)
  def mask_all(%MapSet{} = set), do: MapSet.new(set, &mask_all/1)
  def mask_all(%_{} = struct), do: struct
  def mask_all(map) when is_map(map), do: Map.new(map, fn {k, v} -> {mask_all(k), mask_all(v)} end)
  def mask_all(list) when is_list(list), do: Enum.map(list, &mask_all/1)
  def mask_all(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> mask_all() |> List.to_tuple()
  def mask_all(other), do: other

  @doc "Bounded rendering for failure messages."
  def show(term) do
    text = inspect(term, limit: 30, printable_limit: 300)
    if byte_size(text) > 1_500, do: binary_part(text, 0, 1_500) <> " ...(cut)", else: text
  end

  @doc "Where two normalised terms differ: up to `max` `{path, a, b}` (paths as lists of keys/indexes)."
  def diff(a, b, max \\ 5), do: a |> do_diff(b, []) |> Enum.take(max)

  defp do_diff(a, b, _path) when a === b, do: []

  defp do_diff(a, b, path) when is_map(a) and is_map(b) and not is_struct(a) and not is_struct(b) do
    (Map.keys(a) ++ Map.keys(b))
    |> Enum.uniq()
    |> Enum.flat_map(fn k -> do_diff(Map.get(a, k, :__missing__), Map.get(b, k, :__missing__), [k | path]) end)
  end

  defp do_diff(a, b, path) when is_list(a) and is_list(b) and length(a) == length(b) do
    a |> Enum.zip(b) |> Enum.with_index() |> Enum.flat_map(fn {{x, y}, i} -> do_diff(x, y, [i | path]) end)
  end

  defp do_diff(a, b, path) when is_tuple(a) and is_tuple(b) and tuple_size(a) == tuple_size(b) do
    do_diff(Tuple.to_list(a), Tuple.to_list(b), path)
  end

  defp do_diff(a, b, path), do: [{Enum.reverse(path), a, b}]

  @doc "A failure message: where `a` (nif) and `b` (pool) differ, then both, cut short."
  def explain(a, b) do
    places =
      diff(a, b)
      |> Enum.map_join("\n", fn {path, x, y} ->
        "  at #{inspect(path, limit: 12)}:\n    nif:  #{show(x)}\n    pool: #{show(y)}"
      end)

    "differences:\n#{places}\nnif:  #{show(a)}\npool: #{show(b)}"
  end
end
