defmodule SnakeBridge.Property.RoundtripTest do
  # Property tests (PropEr) for the type mapping of docs/type_mapping.md: whatever Elixir
  # term has a Python equivalent that maps back comes back from Python unchanged;
  # whatever has none is refused with an ArgumentError that names it and where it
  # sits, and the VM carries on. Generators and the rules for what is generated:
  # test/support/python_terms.ex.
  #
  # PropEr's Erlang macros are spelled out: ?FORALL(X, G, P) is
  # :proper.forall(G, fn x -> P end).
  use ExUnit.Case, async: true

  import SnakeBridge.Test.Helpers, only: [proper_check: 3]

  alias SnakeBridge.Test.PythonTerms, as: Terms

  @moduletag timeout: 300_000

  setup_all do
    %{"ident" => ident} = SnakeBridge.exec!("def ident(v):\n    return v\n")
    %{ident: ident}
  end

  test "mappable terms round-trip through Python unchanged", %{ident: ident} do
    prop = :proper.forall(Terms.mappable(), fn term -> Enum.all?(roundtrips(term, ident), &same?(&1, term)) end)

    proper_check(prop, 300, fn [term] ->
      failed = roundtrips(term, ident) |> Enum.reject(&same?(&1, term))

      "#{inspect(term, pretty: true, limit: :infinity)}\ncame back as #{inspect(failed, pretty: true, limit: :infinity)}"
    end)
  end

  test "JSON-shaped terms survive json.loads(json.dumps(x)) unchanged" do
    prop = :proper.forall(Terms.json(), fn term -> same?(json_roundtrip(term), term) end)

    proper_check(prop, 200, fn [term] ->
      "#{inspect(term, pretty: true, limit: :infinity)}\ncame back as #{inspect(json_roundtrip(term), pretty: true, limit: :infinity)}"
    end)
  end

  test "a pid, reference, function... anywhere inside a term is an ArgumentError naming it and its path",
       %{ident: ident} do
    prop =
      :proper.forall(Terms.poisoned(), fn {term, bad, steps} ->
        refusals(term, bad, steps, ident) |> Enum.all?(&match?({:ok, _}, &1))
      end)

    proper_check(prop, 200, fn [{term, bad, steps}] ->
      "#{inspect(term, pretty: true, limit: :infinity)}\nwith #{inspect(bad)} at #{inspect(steps)}: " <>
        inspect(refusals(term, bad, steps, ident) |> Enum.reject(&match?({:ok, _}, &1)), pretty: true)
    end)

    # Nothing was left half-converted or pending in Python.
    assert SnakeBridge.eval("x + 1", %{"x" => 41}) == {:ok, 42}
    assert SnakeBridge.call(ident, nil, [[1, {2.5, "three"}]]) == {:ok, [1, {2.5, "three"}]}
  end

  test "a map or MapSet is refused exactly when two of its keys are equal in Python" do
    # Checks the model of Python equality the generators rely on (PythonTerms.py_key/1)
    # against the NIF, which asks Python itself.
    prop = :proper.forall(Terms.maybe_colliding(), fn term -> collision_verdict(term) == :agrees end)

    proper_check(prop, 300, fn [term] ->
      "#{inspect(term, pretty: true)} (collision_free?: #{Terms.collision_free?(term)}): " <>
        inspect(SnakeBridge.eval("x", %{"x" => term}))
    end)
  end

  defp collision_verdict(term) do
    case {Terms.collision_free?(term), SnakeBridge.eval("x", %{"x" => term})} do
      {true, {:ok, _}} ->
        :agrees

      {false, {:error, %ArgumentError{message: message}}} ->
        if message =~ "equal in Python", do: :agrees, else: :wrong_error

      _ ->
        :disagrees
    end
  end

  # Each way a term can go to Python and back: as an eval global, as a positional
  # and a keyword argument of a Python identity function, and with deep conversion.
  defp roundtrips(term, ident) do
    [
      eval: SnakeBridge.eval("x", %{"x" => term}),
      call: SnakeBridge.call(ident, nil, [term]),
      kwarg: SnakeBridge.call(ident, nil, [], %{"v" => term}),
      value: SnakeBridge.eval("x", %{"x" => term}, return: :value)
    ]
  end

  defp same?({_how, {:ok, back}}, term), do: Terms.identical?(back, term)
  defp same?({:ok, back}, term), do: Terms.identical?(back, term)
  defp same?(_, _), do: false

  defp json_roundtrip(term) do
    with {:ok, text} when is_binary(text) <- SnakeBridge.call("json", "dumps", [term]) do
      SnakeBridge.call("json", "loads", [text])
    end
  end

  # {:ok, how} for each way that refused the term as expected, otherwise what it gave.
  defp refusals(term, bad, steps, ident) do
    [
      refused(:eval, SnakeBridge.eval("x", %{"x" => term}), bad, ["x" | steps]),
      refused(:call, SnakeBridge.call(ident, nil, [term]), bad, [0 | steps]),
      refused(:kwarg, SnakeBridge.call(ident, nil, [], %{"v" => term}), bad, ["v" | steps]),
      # The VM and the interpreter keep working after each refusal.
      if(SnakeBridge.eval("1 + 1") == {:ok, 2}, do: {:ok, :alive}, else: {:dead, SnakeBridge.eval("1 + 1")})
    ]
  end

  defp refused(how, {:error, %ArgumentError{message: message}} = result, bad, path) do
    # The documented shape: "cannot convert #PID<0.96.0> (argument 0[2]["k"]) to Python: ..."
    expected = "cannot convert #{inspect(bad, limit: 10, printable_limit: 60)}#{format_path(path)} to Python: "

    cond do
      not String.contains?(message, inspect(bad)) -> {:does_not_name_term, how, result}
      not String.starts_with?(message, expected) -> {:wrong_path, how, expected: expected, got: message}
      true -> {:ok, how}
    end
  end

  defp refused(how, result, _bad, _path), do: {:not_refused, how, result}

  defp format_path([first | steps]) do
    head =
      if is_integer(first), do: " (argument #{first}", else: " (at #{inspect(first, limit: 5, printable_limit: 40)}"

    head <> Enum.map_join(steps, &"[#{inspect(&1, limit: 5, printable_limit: 40)}]") <> ")"
  end
end
