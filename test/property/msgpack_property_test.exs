defmodule SnakeBridge.Property.MsgpackTest do
  # Property tests (PropEr) for SnakeBridge.Msgpack, the port protocol's codec:
  #
  #   * every mappable term (test/support/python_terms.ex) comes back from
  #     decode(encode(t)) unchanged, and re-encodes to the same bytes;
  #   * a wider set of terms (atoms, SnakeBridge.bytes/1, lists in keys, handles)
  #     comes back with exactly the documented changes, or, where those changes
  #     make two keys equal, as {:error, {:duplicate_key, _}};
  #   * a term with one unconvertible item is refused naming that item and its
  #     path, the path the NIF reports; and the codec agrees with the NIF itself
  #     (SnakeBridge.Native) on what it refuses;
  #   * decode/2 returns (never raises, never hangs) on random bytes and on
  #     random mutations of valid encodings.
  #
  # PropEr's Erlang macros are spelled out: ?FORALL(X, G, P) is
  # :proper.forall(G, fn x -> P end).
  use ExUnit.Case, async: true

  import Bitwise
  import SnakeBridge.Test.Helpers, only: [proper_check: 3]

  alias :proper_types, as: PT
  alias SnakeBridge.Msgpack
  alias SnakeBridge.Test.PythonTerms, as: Terms

  @moduletag timeout: 300_000

  defp encode(term, opts \\ []), do: term |> Msgpack.encode!(opts) |> IO.iodata_to_binary()

  test "mappable terms round-trip unchanged, and re-encode to the same bytes" do
    prop =
      :proper.forall(Terms.mappable(), fn term ->
        bytes = encode(term)

        case Msgpack.decode(bytes) do
          {:ok, back} -> Terms.identical?(back, term) and encode(back) == bytes
          _ -> false
        end
      end)

    proper_check(prop, 500, fn [term] ->
      "#{inspect(term, pretty: true, limit: :infinity)}\ndecoded as #{inspect(Msgpack.decode(encode(term)), limit: :infinity)}"
    end)
  end

  test "other terms come back with the documented changes (or a duplicate key they cause)" do
    prop = :proper.forall(wide(), fn term -> wide_roundtrip(term) == :agrees end)

    proper_check(prop, 400, fn [term] ->
      "#{show(term)}\n#{show(wide_roundtrip(term))}"
    end)
  end

  test "one unconvertible item anywhere is refused, naming it and its path" do
    prop =
      :proper.forall(Terms.poisoned(), fn {term, bad, steps} ->
        match?({:error, {:unconvertible, :unconvertible, ^bad, ^steps}}, Msgpack.encode(term))
      end)

    proper_check(prop, 300, fn [{term, bad, steps}] ->
      "#{inspect(term, pretty: true, limit: :infinity)}\nwith #{inspect(bad)} at #{inspect(steps)}: " <>
        inspect(Msgpack.encode(term), limit: 20)
    end)
  end

  describe "agrees with the in-process NIF on what it refuses (term, reason, path)" do
    test "terms with one unconvertible item" do
      prop = :proper.forall(Terms.poisoned(), fn {term, _bad, _steps} -> verdicts_agree?(term) end)
      proper_check(prop, 150, fn [{term, _, _}] -> disagreement(term) end)
    end

    test "mappable and wider terms" do
      prop = :proper.forall(PT.oneof([Terms.mappable(), wide()]), fn term -> verdicts_agree?(term) end)
      proper_check(prop, 150, fn [term] -> disagreement(term) end)
    end

    test "edge cases: calendars, atoms, structs, depth, improper lists" do
      utc = ~U[2020-01-01 00:00:00Z]

      cases = [
        ~D[0001-01-01],
        ~D[9999-12-31],
        %{~D[2020-01-01] | year: 0},
        %{~D[2020-01-01] | year: 10_000},
        %{~D[2020-01-01] | year: -1},
        %{~D[2021-02-01] | day: 29},
        %{~D[2020-01-01] | month: 13},
        %{~D[2020-01-01] | year: "2020"},
        %{~D[2020-01-01] | year: 1 <<< 40},
        %{~D[2020-01-01] | calendar: Calendar.Other},
        Map.delete(~D[2020-01-01], :day),
        %{~T[00:00:00] | second: 60},
        %{~T[00:00:00] | hour: -1},
        %{~T[00:00:00] | microsecond: {1_000_000, 6}},
        %{~T[00:00:00] | microsecond: {-1, 6}},
        %{~T[00:00:00] | microsecond: 5},
        %{~T[00:00:00] | microsecond: {5}},
        %{~T[00:00:00] | minute: nil, microsecond: nil},
        %{~N[2020-01-01 00:00:00] | hour: 24},
        %{utc | utc_offset: 86_399},
        %{utc | utc_offset: 86_400},
        %{utc | utc_offset: -86_400},
        %{utc | utc_offset: 3600, std_offset: 3600, time_zone: "Europe/Paris", zone_abbr: "CEST"},
        %{utc | utc_offset: 3600, std_offset: 0, time_zone: "Europe/Paris", zone_abbr: "CET"},
        %{utc | time_zone: "No/Such_Zone", zone_abbr: "XYZ", utc_offset: 1234},
        %{utc | zone_abbr: <<0xFF>>},
        %{utc | time_zone: nil},
        %{utc | std_offset: :x},
        %{utc | utc_offset: 1 <<< 31},
        :é,
        :日本語,
        :ÿĀ,
        %SnakeBridge.Object{ref: make_ref(), type: "x"},
        %SnakeBridge.Bytes{data: <<1::3>>},
        %SnakeBridge.Test.EncoderFixtures.Point{x: 1, y: 2},
        %{__struct__: :not_a_module},
        %{__struct__: "not an atom"},
        [1 | 2],
        [[self() | :tail]],
        %{%{} => 1},
        %{[1, %{}] => 1},
        MapSet.new([%{}]),
        %{{1, [2, %{}]} => 1},
        nested(1023, 1),
        nested(1024, 1),
        nested(1023, [1]),
        nested(1024, []),
        nested(1023, %{1 => 2}),
        nested(1023, %{}),
        nested(1023, MapSet.new([1])),
        nested(1023, {1}),
        nested(1023, ~D[2020-01-01]),
        [nested(1024, 1), self()],
        [self(), nested(1024, 1)]
      ]

      for term <- cases do
        unless verdicts_agree?(term), do: flunk(disagreement(term))
      end
    end
  end

  test "decode never raises on random bytes" do
    prop = :proper.forall(byte_soup(), fn bytes -> returns?(bytes) end)
    proper_check(prop, 3000, fn [bytes] -> inspect(bytes, limit: :infinity) end)
  end

  test "decode never raises on mutations of valid encodings" do
    prop =
      :proper.forall(PT.tuple([Terms.mappable(), PT.non_empty(PT.list(mutation()))]), fn {term, mutations} ->
        term |> encode() |> mutate(mutations) |> returns?()
      end)

    proper_check(prop, 1500, fn [{term, mutations}] ->
      "#{inspect(term, limit: :infinity)} mutated by #{inspect(mutations)}: " <>
        inspect(term |> encode() |> mutate(mutations), limit: :infinity)
    end)
  end

  # ------------------------------------------------------------------ decoding robustness

  # {:ok, _} or {:error, _}, within a second, and no exception.
  defp returns?(bytes) do
    task = Task.async(fn -> Msgpack.decode(bytes) end)

    case Task.yield(task, 1_000) || Task.shutdown(task, :brutal_kill) do
      {:ok, {:ok, _}} -> true
      {:ok, {:error, _}} -> true
      _ -> false
    end
  end

  # Random bytes, rich in format bytes (container headers with large counts,
  # ext headers and types, the reserved 0xC1).
  @format_bytes [0x00, 0x01, 0x03, 0x05, 0x09, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x91, 0x9F, 0xA0, 0xA5, 0xBF] ++
                  Enum.to_list(0xC0..0xDF) ++ [0xE0, 0xFF]

  defp byte_soup do
    byte = PT.frequency([{3, PT.byte()}, {2, PT.oneof(Enum.map(@format_bytes, &PT.exactly/1))}])
    PT.frequency([{1, PT.binary()}, {3, let(PT.list(byte), &:erlang.list_to_binary/1)}])
  end

  defp mutation do
    PT.tuple([
      PT.oneof(Enum.map([:flip, :set, :insert, :delete, :truncate], &PT.exactly/1)),
      PT.non_neg_integer(),
      PT.byte()
    ])
  end

  defp mutate(bytes, mutations), do: Enum.reduce(mutations, bytes, &mutate_one/2)

  defp mutate_one({op, at, byte}, bytes) do
    size = byte_size(bytes)
    at = if size == 0, do: 0, else: rem(at, size)
    <<before::binary-size(at), rest::binary>> = bytes

    case {op, rest} do
      {:flip, <<b, after_::binary>>} -> <<before::binary, Bitwise.bxor(b, max(byte, 1)), after_::binary>>
      {:set, <<_, after_::binary>>} -> <<before::binary, byte, after_::binary>>
      {:insert, _} -> <<before::binary, byte, rest::binary>>
      {:delete, <<_, after_::binary>>} -> <<before::binary, after_::binary>>
      {:truncate, _} -> before
      _ -> bytes
    end
  end

  # ------------------------------------------------------------------ wider terms

  # Leaves beyond the mappable ones: atoms (names, as binaries on the way back),
  # SnakeBridge.bytes/1 (back as the binary), the binaries those can collide
  # with, and handles (mapped to ids and back by the options below).
  defp wide_leaf do
    PT.frequency([
      {6, Terms.leaf()},
      {2, PT.oneof(Enum.map([:a, :b, :ok, :é, :"with space", Enum], &PT.exactly/1))},
      {1, PT.oneof(Enum.map(["a", "b", "ok"], &PT.exactly/1))},
      {1, let(PT.oneof([PT.binary(), PT.exactly("a")]), &SnakeBridge.bytes/1)},
      {1, let(PT.integer(0, 5), &handle(&1, ""))}
    ])
  end

  defp handle(id, _type), do: %SnakeBridge.Object{ref: id, type: "test"}
  defp handle_id(%SnakeBridge.Object{ref: id}), do: {:ok, id}

  defp wide, do: PT.sized(fn size -> wide(min(4, div(size, 5))) end)

  defp wide(0), do: wide_leaf()

  defp wide(d) do
    PT.frequency([
      {3, wide_leaf()},
      {1, PT.lazy(fn -> small_list(wide(d - 1)) end)},
      {1, PT.lazy(fn -> let(small_list(wide(d - 1)), &List.to_tuple/1) end)},
      {1, PT.lazy(fn -> let(small_list(PT.tuple([wide_key(d - 1), wide(d - 1)])), &Map.new/1) end)},
      {1, PT.lazy(fn -> let(small_list(wide_key(d - 1)), &MapSet.new/1) end)}
    ])
  end

  # Keys may hold lists (they come back as tuples), but no maps.
  defp wide_key(0), do: wide_leaf()

  defp wide_key(d) do
    PT.frequency([
      {4, wide_leaf()},
      {1, PT.lazy(fn -> small_list(wide_key(d - 1)) end)},
      {1, PT.lazy(fn -> let(small_list(wide_key(d - 1)), &List.to_tuple/1) end)},
      {1, PT.lazy(fn -> let(small_list(wide_key(d - 1)), &MapSet.new/1) end)}
    ])
  end

  defp small_list(gen), do: PT.sized(fn size -> PT.resize(min(size, 6), PT.list(PT.resize(size, gen))) end)

  defp let(gen, fun), do: PT.bind(gen, fn x -> PT.exactly(fun.(x)) end, false)

  defp wide_roundtrip(term) do
    decoded = term |> encode(handle_id: &handle_id/1) |> Msgpack.decode(handle: &handle/2)

    expected =
      try do
        {:ok, expect(term, false)}
      catch
        :collision -> :collision
      end

    case {expected, decoded} do
      {{:ok, want}, {:ok, got}} -> if Terms.identical?(got, want), do: :agrees, else: {:differs, want: want, got: got}
      {:collision, {:error, {:duplicate_key, _}}} -> :agrees
      other -> {:differs, other}
    end
  end

  # The term as it must come back: the documented changes (docs/type_mapping.md,
  # "Round trips"); throws :collision when they make two keys of one map or set
  # equal.
  @specials [nil, true, false, :infinity, :neg_infinity, :nan]
  defp expect(a, _key) when is_atom(a) and a not in @specials, do: Atom.to_string(a)
  defp expect(%SnakeBridge.Bytes{data: data}, _key), do: data
  defp expect(%SnakeBridge.Object{} = object, _key), do: object

  defp expect(%MapSet{} = set, _key) do
    back = MapSet.new(set, &expect(&1, true))
    if MapSet.size(back) == MapSet.size(set), do: back, else: throw(:collision)
  end

  defp expect(%_{} = struct, _key), do: struct

  defp expect(map, _key) when is_map(map) do
    back = Map.new(map, fn {k, v} -> {expect(k, true), expect(v, false)} end)
    if map_size(back) == map_size(map), do: back, else: throw(:collision)
  end

  defp expect(list, true) when is_list(list), do: list |> Enum.map(&expect(&1, true)) |> List.to_tuple()
  defp expect(list, false) when is_list(list), do: Enum.map(list, &expect(&1, false))

  defp expect(tuple, key) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> Enum.map(&expect(&1, key)) |> List.to_tuple()

  defp expect(other, _key), do: other

  # ------------------------------------------------------------------ the NIF's verdict

  # The codec encodes the argument list, as the port backend will, so that
  # paths start with the argument's index and depth counts as in-process.
  defp codec_verdict(term) do
    case Msgpack.encode([term]) do
      {:ok, _} -> :ok
      {:error, {:unconvertible, reason, bad, path}} -> {reason, bad, path}
    end
  end

  defp nif_verdict(term) do
    reply =
      case SnakeBridge.Native.execute({:call, "builtins", "id", [term], %{}}, :auto, 10_000) do
        {:pending, _job, ref} ->
          receive do
            {^ref, reply} -> reply
          after
            10_000 -> :timeout
          end

        {tag, value, :output} ->
          {tag, value}

        reply ->
          reply
      end

    case reply do
      {:ok, _} -> :ok
      # Keys equal in Python: the port program's to find, not the codec's.
      {:error, {:unconvertible, :collision, _, _}} -> :collision
      {:error, {:unconvertible, reason, bad, path}} -> {reason, bad, path}
      other -> {:unexpected, other}
    end
  end

  defp verdicts_agree?(term) do
    case {nif_verdict(term), codec_verdict(term)} do
      {:collision, _} -> true
      {same, same} -> true
      {{reason, nif_bad, path}, {reason, bad, path}} -> nif_bad === bad or Terms.identical?(nif_bad, bad)
      _ -> false
    end
  end

  defp disagreement(term) do
    "#{show(term)}\nNIF:   #{show(nif_verdict(term))}\ncodec: #{show(codec_verdict(term))}"
  end

  # Structs as maps: the Inspect of a SnakeBridge.Object asks Python for a repr,
  # which the made-up handles of these tests do not have.
  defp show(term), do: inspect(term, pretty: true, limit: 50, structs: false)

  defp nested(0, leaf), do: leaf
  defp nested(n, leaf), do: [nested(n - 1, leaf)]

  # ------------------------------------------------------------------ running
end
