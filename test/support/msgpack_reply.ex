defmodule SnakeBridge.Test.MsgpackReply do
  @moduledoc false
  # Test-only helpers for SnakeBridge.Msgpack, written apart from it (its own
  # small MessagePack reader) so that the tests do not check the codec against
  # itself:
  #
  #   * tree/1 reads an encoded request into a tree that keeps every value's bytes;
  #   * reply/1 turns a request's spelling into a reply's, as the port program
  #     would send the same values back (structs of the calendar modules become
  #     ext 6..9, ext 10 a bin; everything else is spelled alike both ways);
  #   * positions/1 lists every value a refusal can name, with the steps the
  #     program would give (docs/protocol.md, "Replies").

  import Bitwise

  @typedoc "A value and its bytes (`raw`); an array's or map's header apart."
  @type tree ::
          {:scalar, binary()}
          | {:array, binary(), [tree()]}
          | {:map, binary(), [{tree(), tree()}]}
          | {:ext, binary(), integer(), binary()}

  @doc "Reads exactly one value (raises on anything else)."
  def tree(bytes) do
    {tree, <<>>} = read(bytes)
    tree
  end

  @doc "The bytes of a tree."
  def raw({:scalar, raw}), do: raw
  def raw({:ext, raw, _type, _payload}), do: raw
  def raw({:array, header, items}), do: IO.iodata_to_binary([header | Enum.map(items, &raw/1)])
  def raw({:map, header, pairs}), do: IO.iodata_to_binary([header | Enum.map(pairs, fn {k, v} -> [raw(k), raw(v)] end)])

  @doc "A request's bytes as a reply would spell the same values."
  def reply(bytes), do: bytes |> tree() |> to_reply() |> IO.iodata_to_binary()

  @doc """
  `{steps, tree}` for every value inside the top one (the top one too, with no
  steps): array items, counted without the marker of a tuple or set; map
  entries' values (`{:entry, i}`) and keys (`{:key, i}`); struct fields by name.
  Markers and the module name of a struct are not values and are not listed.
  """
  def positions(tree), do: [{[], tree} | inside(tree, [])]

  defp inside({:array, _, [{:ext, _, 12, <<0>>}, _module, {:map, _, fields}]}, steps) do
    for {{:scalar, key}, value} <- fields, {sub, t} <- positions(value), do: {steps ++ [text(key) | sub], t}
  end

  defp inside({:array, _, [{:ext, _, type, <<0>>} | items]}, steps) when type in [3, 4], do: indexed(items, steps)
  defp inside({:array, _, items}, steps), do: indexed(items, steps)

  defp inside({:map, _, pairs}, steps) do
    pairs
    |> Enum.with_index()
    |> Enum.flat_map(fn {{k, v}, i} ->
      prefix(positions(v), steps ++ [{:entry, i}]) ++ prefix(positions(k), steps ++ [{:key, i}])
    end)
  end

  defp inside(_leaf, _steps), do: []

  defp indexed(items, steps) do
    items |> Enum.with_index() |> Enum.flat_map(fn {item, i} -> prefix(positions(item), steps ++ [i]) end)
  end

  defp prefix(positions, steps), do: Enum.map(positions, fn {sub, t} -> {steps ++ sub, t} end)

  # The text of a str or bin scalar.
  defp text(raw) do
    case raw do
      <<0b101::3, n::5, s::binary-size(n)>> -> s
      <<0xD9, n, s::binary-size(n)>> -> s
      <<0xC4, n, s::binary-size(n)>> -> s
    end
  end

  # ------------------------------------------------------------------ reply spelling

  @calendars %{"Elixir.Date" => 6, "Elixir.Time" => 7, "Elixir.NaiveDateTime" => 8, "Elixir.DateTime" => 9}

  defp to_reply({:array, _, [{:ext, _, 12, <<0>>}, {:scalar, module}, {:map, _, fields}]}) do
    type = Map.fetch!(@calendars, text(module))
    fields = Map.new(fields, fn {{:scalar, k}, v} -> {text(k), field(v)} end)
    {us, precision} = fields["microsecond"] || {nil, nil}

    values =
      case type do
        6 -> [fields["year"], fields["month"], fields["day"]]
        7 -> [fields["hour"], fields["minute"], fields["second"], us, precision]
        8 -> Enum.map(~w(year month day hour minute second), &fields[&1]) ++ [us, precision]
        9 -> Enum.map(~w(year month day hour minute second), &fields[&1]) ++ [us, precision] ++ zone(fields)
      end

    payload = IO.iodata_to_binary([0x90 + length(values) | Enum.map(values, &scalar/1)])
    ext(type, payload)
  end

  defp to_reply({:array, header, items}), do: [header | Enum.map(items, &to_reply/1)]
  defp to_reply({:map, header, pairs}), do: [header | Enum.map(pairs, fn {k, v} -> [to_reply(k), to_reply(v)] end)]
  defp to_reply({:ext, _, 10, payload}), do: scalar(payload)
  defp to_reply({:ext, _, 13, _}), do: raise(ArgumentError, "an opaque term has no reply spelling")
  defp to_reply(other), do: raw(other)

  defp zone(fields), do: [fields["time_zone"], fields["zone_abbr"], fields["utc_offset"], fields["std_offset"]]

  # A calendar field: an int, a str or bin, or the microsecond tuple.
  defp field({:array, _, [{:ext, _, 3, <<0>>}, us, precision]}), do: {field(us), field(precision)}
  defp field({:scalar, <<0::1, v::7>>}), do: v
  defp field({:scalar, <<0b111::3, v::5>>}), do: v - 32
  defp field({:scalar, <<0xCC, v>>}), do: v
  defp field({:scalar, <<0xCD, v::16>>}), do: v
  defp field({:scalar, <<0xCE, v::32>>}), do: v
  defp field({:scalar, <<0xCF, v::64>>}), do: v
  defp field({:scalar, <<0xD0, v::signed-8>>}), do: v
  defp field({:scalar, <<0xD1, v::signed-16>>}), do: v
  defp field({:scalar, <<0xD2, v::signed-32>>}), do: v
  defp field({:scalar, <<0xD3, v::signed-64>>}), do: v
  defp field({:scalar, raw}), do: text(raw)

  defp scalar(i) when is_integer(i) and i >= 0 and i < 0x80, do: <<i>>
  defp scalar(i) when is_integer(i) and i >= -0x80000000 and i < 0x80000000, do: <<0xD2, i::32>>
  defp scalar(i) when is_integer(i), do: <<0xD3, i::64>>
  defp scalar(b) when is_binary(b) and byte_size(b) < 0x100, do: <<0xC4, byte_size(b), b::binary>>
  defp scalar(b) when is_binary(b), do: <<0xC6, byte_size(b)::32, b::binary>>

  defp ext(type, payload) when byte_size(payload) < 0x100, do: <<0xC7, byte_size(payload), type, payload::binary>>
  defp ext(type, payload), do: <<0xC9, byte_size(payload)::32, type, payload::binary>>

  # ------------------------------------------------------------------ reader

  defp read(<<b, _::binary>> = bytes) when b < 0x80 or b >= 0xE0 or b in [0xC0, 0xC2, 0xC3], do: take(bytes, 1)
  defp read(<<b, _::binary>> = bytes) when b in 0xA0..0xBF, do: take(bytes, 1 + (b &&& 0x1F))
  defp read(<<b, _::binary>> = bytes) when b in 0x90..0x9F, do: array(bytes, 1, b &&& 0x0F)
  defp read(<<b, _::binary>> = bytes) when b in 0x80..0x8F, do: map(bytes, 1, b &&& 0x0F)
  defp read(<<0xCA, _::binary>> = bytes), do: take(bytes, 5)
  defp read(<<0xCB, _::binary>> = bytes), do: take(bytes, 9)
  defp read(<<b, _::binary>> = bytes) when b in [0xCC, 0xD0], do: take(bytes, 2)
  defp read(<<b, _::binary>> = bytes) when b in [0xCD, 0xD1], do: take(bytes, 3)
  defp read(<<b, _::binary>> = bytes) when b in [0xCE, 0xD2], do: take(bytes, 5)
  defp read(<<b, _::binary>> = bytes) when b in [0xCF, 0xD3], do: take(bytes, 9)
  defp read(<<b, n, _::binary>> = bytes) when b in [0xC4, 0xD9], do: take(bytes, 2 + n)
  defp read(<<b, n::16, _::binary>> = bytes) when b in [0xC5, 0xDA], do: take(bytes, 3 + n)
  defp read(<<b, n::32, _::binary>> = bytes) when b in [0xC6, 0xDB], do: take(bytes, 5 + n)
  defp read(<<0xDC, n::16, _::binary>> = bytes), do: array(bytes, 3, n)
  defp read(<<0xDD, n::32, _::binary>> = bytes), do: array(bytes, 5, n)
  defp read(<<0xDE, n::16, _::binary>> = bytes), do: map(bytes, 3, n)
  defp read(<<0xDF, n::32, _::binary>> = bytes), do: map(bytes, 5, n)
  defp read(<<b, _::binary>> = bytes) when b in 0xD4..0xD8, do: ext(bytes, 2, 1 <<< (b - 0xD4))
  defp read(<<0xC7, n, _::binary>> = bytes), do: ext(bytes, 3, n)
  defp read(<<0xC8, n::16, _::binary>> = bytes), do: ext(bytes, 4, n)
  defp read(<<0xC9, n::32, _::binary>> = bytes), do: ext(bytes, 6, n)

  defp take(bytes, n) do
    <<raw::binary-size(n), rest::binary>> = bytes
    {{:scalar, raw}, rest}
  end

  defp ext(bytes, header, n) do
    <<raw::binary-size(header + n), rest::binary>> = bytes
    <<_::binary-size(header - 1), type::signed-8, payload::binary>> = raw
    {{:ext, raw, type, payload}, rest}
  end

  defp array(bytes, header, n) do
    <<h::binary-size(header), rest::binary>> = bytes
    {items, rest} = Enum.map_reduce(List.duplicate(nil, n), rest, fn _, r -> read(r) end)
    {{:array, h, items}, rest}
  end

  defp map(bytes, header, n) do
    <<h::binary-size(header), rest::binary>> = bytes

    {pairs, rest} =
      Enum.map_reduce(List.duplicate(nil, n), rest, fn _, r ->
        {k, r} = read(r)
        {v, r} = read(r)
        {{k, v}, r}
      end)

    {{:map, h, pairs}, rest}
  end
end
