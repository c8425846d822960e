defmodule SnakeBridge.Property.MsgpackTest do
  # Property tests (PropEr) for SnakeBridge.Msgpack, the port protocol's codec:
  #
  #   * encode/2 never raises, on any term (pids, functions, improper lists,
  #     structs of every kind, objects with and without a handle id), and writes
  #     exactly one well-formed MessagePack value;
  #   * a term sent, and read back as the program would reply with the same
  #     values (test/support/msgpack_reply.ex), comes back with exactly the
  #     documented changes (atoms as their names, bytes as binaries), or, where
  #     those changes make two keys equal, as {:error, {:duplicate_key, _}};
  #   * locate/2 follows the steps of every value in an encoding to the term
  #     that was encoded there; and for a term with one unconvertible item, the
  #     steps of its opaque marker lead to that item with the path the
  #     in-process backend reports (test/support/python_terms.ex);
  #   * decode/2 returns (never raises, never hangs) on random bytes and on
  #     random mutations of valid replies.
  #
  # PropEr's Erlang macros are spelled out: ?FORALL(X, G, P) is
  # :proper.forall(G, fn x -> P end).
  use ExUnit.Case, async: true

  import SnakeBridge.Test.Helpers, only: [proper_check: 3]

  alias :proper_types, as: PT
  alias SnakeBridge.Msgpack
  alias SnakeBridge.Test.MsgpackReply, as: Reply
  alias SnakeBridge.Test.PythonTerms, as: Terms

  @moduletag timeout: 300_000

  defp encode(term), do: term |> Msgpack.encode(handle_id: &handle_id/1) |> IO.iodata_to_binary()

  # Objects with an integer ref have a handle id; others are spelled opaque.
  defp handle_id(%SnakeBridge.Object{ref: id}) when is_integer(id), do: {:ok, id}
  defp handle_id(_object), do: :error

  defp handle(id, _type), do: %SnakeBridge.Object{ref: id, type: "test"}

  test "encode never raises, and writes exactly one well-formed value, on any term" do
    prop = :proper.forall(any_term(), fn term -> well_formed?(term) end)
    proper_check(prop, 500, fn [term] -> show(term) end)
  end

  test "terms come back from a reply with the documented changes (or a duplicate key they cause)" do
    prop = :proper.forall(PT.oneof([Terms.mappable(), wide()]), fn term -> round_trip(term) == :agrees end)
    proper_check(prop, 500, fn [term] -> "#{show(term)}\n#{show(round_trip(term))}" end)
  end

  test "locate/2 follows the steps of every value in an encoding to the term encoded there" do
    prop = :proper.forall(any_term(), fn term -> locate_all(term) == :ok end)
    proper_check(prop, 300, fn [term] -> "#{show(term)}\n#{show(locate_all(term))}" end)
  end

  test "the steps of a refused item lead to it, with the path the in-process backend reports" do
    prop =
      :proper.forall(opaque_poisoned(), fn {term, bad, path} ->
        refused(term) == {:ok, bad, path}
      end)

    proper_check(prop, 400, fn [{term, bad, path}] ->
      "#{show(term)}\nwith #{show(bad)} at #{show(path)}: #{show(refused(term))}"
    end)
  end

  test "decode never raises on random bytes" do
    prop = :proper.forall(byte_soup(), fn bytes -> returns?(bytes) end)
    proper_check(prop, 3000, fn [bytes] -> inspect(bytes, limit: :infinity) end)
  end

  test "decode never raises on mutations of valid replies" do
    prop =
      :proper.forall(PT.tuple([Terms.mappable(), PT.non_empty(PT.list(mutation()))]), fn {term, mutations} ->
        term |> reply() |> mutate(mutations) |> returns?()
      end)

    proper_check(prop, 1500, fn [{term, mutations}] ->
      "#{inspect(term, limit: :infinity)} mutated by #{inspect(mutations)}: " <>
        inspect(term |> reply() |> mutate(mutations), limit: :infinity)
    end)
  end

  defp reply(term), do: term |> encode() |> Reply.reply()

  # ------------------------------------------------------------------ encoding

  defp well_formed?(term) do
    bytes = encode(term)
    Reply.raw(Reply.tree(bytes)) == bytes
  rescue
    _ -> false
  end

  # ------------------------------------------------------------------ locate

  # :ok, or the first position whose term does not encode to the bytes there.
  defp locate_all(term) do
    term
    |> encode()
    |> Reply.tree()
    |> Reply.positions()
    |> Enum.take(300)
    |> Enum.find_value(:ok, fn {steps, tree} ->
      case Msgpack.locate(term, steps) do
        {:ok, found, path} when length(path) == length(steps) ->
          if encode(found) == Reply.raw(tree), do: nil, else: {:differs, steps, found}

        other ->
          {:not_found, steps, other}
      end
    end)
  end

  # The one opaque marker in the term's encoding, located.
  defp refused(term) do
    opaque = for {steps, {:ext, _, 13, _}} <- term |> encode() |> Reply.tree() |> Reply.positions(), do: steps

    case opaque do
      [steps] -> Msgpack.locate(term, steps)
      other -> {:opaque_markers, other}
    end
  end

  # Terms.poisoned/0 with an item that encode/2 spells opaque (not an atom or a
  # struct, which it spells as any other).
  defp opaque_poisoned do
    PT.add_constraint(Terms.poisoned(), fn {_term, bad, _path} -> not is_atom(bad) and not is_map(bad) end, true)
  end

  # ------------------------------------------------------------------ round trips

  defp round_trip(term) do
    decoded = term |> reply() |> Msgpack.decode(handle: &handle/2)

    expected =
      try do
        {:ok, expect(term)}
      catch
        :collision -> :collision
      end

    case {expected, decoded} do
      {{:ok, want}, {:ok, got}} -> if Terms.identical?(got, want), do: :agrees, else: {:differs, want: want, got: got}
      {:collision, {:error, {:duplicate_key, _}}} -> :agrees
      other -> {:differs, other}
    end
  end

  # The term as it must come back: atoms as their names (the program makes
  # floats of :infinity, :neg_infinity and :nan; the codec does not), bytes as
  # binaries; throws :collision when that makes two keys of one map or set
  # equal.
  defp expect(a) when is_atom(a) and a not in [nil, true, false], do: Atom.to_string(a)
  defp expect(%SnakeBridge.Bytes{data: data}), do: data
  defp expect(%SnakeBridge.Object{ref: id}), do: handle(id, "")

  defp expect(%MapSet{} = set) do
    back = MapSet.new(set, &expect/1)
    if MapSet.size(back) == MapSet.size(set), do: back, else: throw(:collision)
  end

  defp expect(%_{} = struct), do: struct

  defp expect(map) when is_map(map) do
    back = Map.new(map, fn {k, v} -> {expect(k), expect(v)} end)
    if map_size(back) == map_size(map), do: back, else: throw(:collision)
  end

  defp expect(list) when is_list(list), do: Enum.map(list, &expect/1)
  defp expect(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> expect() |> List.to_tuple()
  defp expect(other), do: other

  # ------------------------------------------------------------------ generators

  # Leaves beyond the mappable ones: atoms (names, as binaries on the way back),
  # SnakeBridge.bytes/1 (back as the binary), the binaries those can collide
  # with, and objects with a handle id.
  defp wide_leaf do
    PT.frequency([
      {6, Terms.leaf()},
      {2, PT.oneof(Enum.map([:a, :b, :ok, :é, :日本語, :"with space", Enum], &PT.exactly/1))},
      {1, PT.oneof(Enum.map(["a", "b", "ok"], &PT.exactly/1))},
      {1, let(PT.oneof([PT.binary(), PT.exactly("a")]), &SnakeBridge.bytes/1)},
      {1, let(PT.integer(0, 5), &handle(&1, ""))}
    ])
  end

  # Anything at all: also what has no spelling but the opaque marker, and
  # structs of every kind.
  defp any_leaf do
    PT.frequency([
      {8, wide_leaf()},
      {2, PT.oneof(Enum.map(Terms.unconvertible(), &PT.exactly/1))},
      {1,
       PT.oneof(
         Enum.map(
           [
             %SnakeBridge.Object{ref: make_ref(), type: "elsewhere"},
             %MapSet{map: :x},
             %SnakeBridge.Bytes{data: 1},
             %{__struct__: :not_a_module, a: 1},
             %{__struct__: "not an atom"},
             [1, 2 | 3],
             %{~D[2020-01-01] | year: "2020"}
           ],
           &PT.exactly/1
         )
       )}
    ])
  end

  # (No user structs: a reply has no spelling for them.)
  defp wide, do: PT.sized(fn size -> tree(min(4, div(size, 5)), wide_leaf(), 0) end)
  defp any_term, do: PT.sized(fn size -> tree(min(4, div(size, 5)), any_leaf(), 1) end)

  # Containers of `leaf`s, keyword lists, and user structs with weight
  # `structs`; map keys and set elements are any such term (the codec has no
  # notion of hashable).
  defp tree(0, leaf, _structs), do: leaf

  defp tree(d, leaf, structs) do
    sub = fn -> tree(d - 1, leaf, structs) end
    key = PT.oneof(Enum.map([:a, :b, :c], &PT.exactly/1))

    PT.frequency([
      {3, leaf},
      {1, PT.lazy(fn -> small_list(sub.()) end)},
      {1, PT.lazy(fn -> let(small_list(sub.()), &List.to_tuple/1) end)},
      {1, PT.lazy(fn -> let(small_list(PT.tuple([sub.(), sub.()])), &Map.new/1) end)},
      {1, PT.lazy(fn -> let(small_list(sub.()), &MapSet.new/1) end)},
      {1, PT.lazy(fn -> small_list(PT.tuple([key, sub.()])) end)},
      {structs,
       PT.lazy(fn ->
         let(PT.tuple([sub.(), sub.()]), fn {x, y} -> %SnakeBridge.Test.EncoderFixtures.Point{x: x, y: y} end)
       end)}
    ])
  end

  defp small_list(gen), do: PT.sized(fn size -> PT.resize(min(size, 6), PT.list(PT.resize(size, gen))) end)

  defp let(gen, fun), do: PT.bind(gen, fn x -> PT.exactly(fun.(x)) end, false)

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
  # ext headers and types, markers, the reserved 0xC1).
  @format_bytes [0x00, 0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x7F, 0x80, 0x81, 0x8F] ++
                  [0x90, 0x91, 0x92, 0x9F, 0xA0, 0xA5, 0xBF] ++ Enum.to_list(0xC0..0xDF) ++ [0xE0, 0xFF]

  defp byte_soup do
    byte = PT.frequency([{3, PT.byte()}, {2, PT.oneof(Enum.map(@format_bytes, &PT.exactly/1))}])
    marker = PT.oneof(Enum.map([<<0xD4, 3, 0>>, <<0xD4, 4, 0>>, <<0x92, 0xD4, 3, 0>>], &PT.exactly/1))
    chunk = PT.frequency([{6, let(byte, &<<&1>>)}, {1, marker}])
    PT.frequency([{1, PT.binary()}, {3, let(PT.list(chunk), &IO.iodata_to_binary/1)}])
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

  # Structs as maps: the Inspect of a SnakeBridge.Object asks Python for a repr,
  # which the made-up handles of these tests do not have.
  defp show(term), do: inspect(term, pretty: true, limit: 50, structs: false)
end
