Code.require_file("parity_support.exs", __DIR__)

defmodule SnakeBridge.ParityPropertyTest do
  # PropEr properties for backend parity (docs/architecture.md, "One semantics, two
  # wires"): a random Elixir term, sent to Python one of several ways and brought
  # back with a random return mode, gives the same normalised result in-process
  # (`:nif`) and through the port-worker pool. Generators: test/support/python_terms.ex;
  # normalisation: test/parity/parity_support.exs.
  #
  # ?FORALL(X, G, P) is spelled :proper.forall(G, fn x -> P end).
  #
  # Not async, like the corpus (test/parity/parity_test.exs): pool workers are shared.
  use ExUnit.Case, async: false

  alias :proper_types, as: PT
  alias SnakeBridge.Parity
  alias SnakeBridge.Test.PythonTerms, as: Terms

  @moduletag :parity
  @moduletag timeout: 120_000

  # How the term goes to Python, and what Python makes of it before it comes back
  # (values produced by Python code, not just the term's own conversion).
  @ways [:eval, :call, :kwarg, :wrapped, :deepcopy, :repr]

  setup_all do
    idents =
      for backend <- [:nif, :pool], into: %{} do
        %{"ident" => ident} = SnakeBridge.exec!("def ident(v):\n    return v\n", %{}, Parity.opts(backend))
        {backend, ident}
      end

    %{idents: idents}
  end

  test "convertible terms: same result on both backends, any way and return mode", %{idents: idents} do
    gen = PT.tuple([Terms.mappable(), oneof(@ways), oneof([:auto, :ref, :value])])
    check(gen, 500, idents)
  end

  test "terms with one item that cannot cross: same refusal on both backends", %{idents: idents} do
    poisoned = PT.bind(Terms.poisoned(), fn {term, _bad, _steps} -> PT.exactly(term) end, false)
    gen = PT.tuple([poisoned, oneof([:eval, :call, :kwarg]), oneof([:auto, :ref, :value])])
    check(gen, 150, idents)
  end

  test "maps and MapSets whose keys may be equal in Python: same result on both backends", %{idents: idents} do
    gen = PT.tuple([Terms.maybe_colliding(), oneof([:eval, :call, :kwarg, :repr]), oneof([:auto, :ref, :value])])
    check(gen, 150, idents)
  end

  defp oneof(values), do: PT.oneof(Enum.map(values, &PT.exactly/1))

  defp check(gen, numtests, idents) do
    prop = :proper.forall(gen, fn {term, way, mode} -> same?(term, way, mode, idents) end)
    result = :proper.quickcheck(prop, [{:numtests, numtests}, {:max_shrinks, 40}, {:to_file, :user}])

    unless result == true do
      case :proper.counterexample() do
        [{term, way, mode}] ->
          {n, p} = both(term, way, mode, idents)

          flunk("""
          the backends differ for #{way} / return: #{mode} of
          #{inspect(term, limit: 50, printable_limit: 200)}
          #{Parity.explain(n, p)}
          """)

        other ->
          flunk("PropEr: #{inspect(result)} #{inspect(other)}")
      end
    end
  end

  defp same?(term, way, mode, idents) do
    {n, p} = both(term, way, mode, idents)
    n === p
  end

  defp both(term, way, mode, idents) do
    results =
      for backend <- [:nif, :pool] do
        opts = Parity.opts(backend) ++ [return: mode]
        Parity.normalise(Parity.capture(fn -> run(way, term, opts, idents[backend]) end))
      end

    List.to_tuple(results)
  end

  defp run(:eval, term, opts, _ident), do: SnakeBridge.eval("x", %{"x" => term}, opts)
  defp run(:call, term, opts, ident), do: SnakeBridge.call(ident, nil, [term], [], opts)
  defp run(:kwarg, term, opts, ident), do: SnakeBridge.call(ident, nil, [], %{"v" => term}, opts)
  defp run(:wrapped, term, opts, _ident), do: SnakeBridge.eval("[x, (x,), {'k': x}]", %{"x" => term}, opts)
  defp run(:deepcopy, term, opts, _ident), do: SnakeBridge.eval("__import__('copy').deepcopy(x)", %{"x" => term}, opts)
  # Python's own rendering of what it received: sets sorted (the interpreters' str
  # hash seeds differ), dicts in their insertion order.
  defp run(:repr, term, opts, _ident) do
    SnakeBridge.eval(
      "(lambda c: c(c, x))(lambda c, v: (type(v).__name__ + '{' + ', '.join(sorted(c(c, e) for e in v)) + '}') " <>
        "if type(v) in (set, frozenset) else ('[' + ', '.join(c(c, e) for e in v) + ']') if type(v) is list " <>
        "else ('(' + ''.join(c(c, e) + ', ' for e in v) + ')') if type(v) is tuple " <>
        "else ('{' + ', '.join(c(c, k) + ': ' + c(c, w) for k, w in v.items()) + '}') if type(v) is dict " <>
        "else type(v).__name__ + ':' + repr(v))",
      %{"x" => term},
      opts
    )
  end
end
