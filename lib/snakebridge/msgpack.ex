defmodule SnakeBridge.Msgpack do
  @moduledoc """
  The MessagePack codec of the port protocol (`docs/protocol.md`, "Values").

  Converts between Elixir terms and single MessagePack values with the type
  mapping of DESIGN.md §3 — the same as the in-process backend, so a term is
  refused here exactly when the NIF refuses it, with the same error shape.

  ## Elixir to MessagePack (`encode/2`)

  | Elixir | MessagePack |
  |---|---|
  | `nil`, `true`, `false` | nil, true, false |
  | `:infinity`, `:neg_infinity`, `:nan` | float64 inf, -inf, nan |
  | other atoms (Latin-1 names) | str (the name) |
  | integer in -2^63..2^64-1 | the smallest int format |
  | other integers | ext 2: sign byte (0 or 1), magnitude little-endian |
  | float | float64 (always, so `-0.0` keeps its sign) |
  | binary, valid UTF-8 (`String.valid?/1`) | str |
  | binary, not UTF-8; `%SnakeBridge.Bytes{}` | bin |
  | list | array (ext 3 in a map key or set element) |
  | tuple | ext 3, the payload an array of the elements |
  | map | map (keys in hashable form) |
  | `MapSet` | ext 4 (ext 5 in a map key or set element), payload an array |
  | `Date`, `Time`, `NaiveDateTime`, `DateTime` (`Calendar.ISO`) | ext 6, 7, 8, 9 |
  | `%SnakeBridge.Object{}` | ext 1, the 8-byte big-endian handle id from `:handle_id` |

  Map keys and `MapSet` elements are encoded in *hashable* form, as Python
  needs for dict keys and set elements: a list becomes ext 3 (a tuple), a
  `MapSet` ext 5 (a frozenset), and a map is refused (`:unhashable`). Inside a
  hashable list or tuple the items are hashable too.

  Refused, with `{:error, {:unconvertible, reason, term, path}}`:

    * `:unconvertible` — pids, ports, references, functions, bitstrings that are
      not binaries, improper lists, atoms whose name is not Latin-1, structs other
      than the ones above (a struct implementing `SnakeBridge.Encoder` too: the
      caller applies the protocol and retries, as in-process), calendar values of
      another calendar or with fields out of Python's range (years 1..9999, no
      leap second, offsets within a day; a field that is not a 32-bit integer
      adds that field's name to the path, as the NIF does), an `Object` that
      `:handle_id` cannot place;
    * `:unhashable` — a map used as a map key or `MapSet` element;
    * `:too_deep` — a term nested more than 1024 levels below the one encoded
      (the encoded term is level 0).

  `path` locates `term` from the top, as the NIF reports it: list and tuple
  indexes, and for maps the key (for an entry's key and its value alike), for a
  `MapSet` the element. Encoding the argument list of a call gives the NIF's
  paths and depth limit exactly (an argument is at level 1, its path starts with
  its index).

  A `DateTime`'s `time_zone` and `zone_abbr` are sent as str with their bytes
  as they are (the NIF needs the abbreviation only for a zone Python does not
  know, so whether it must be readable is the port program's call).

  Not detected here: map keys distinct in Elixir but equal in Python (`1` and
  `1.0`, `"a"` and `:a`); the port program refuses those (reason `"collision"`).

  MessagePack values concatenate, so a request can be assembled from encoded
  parts: `[0x90 + n, part1, ..., partn]` (n < 16) is an array of n values.

  ## MessagePack to Elixir (`decode/2`)

  str and bin become binaries (a str that is not UTF-8 is kept as it is); float32
  and float64 become floats, inf/-inf/nan the atoms above; arrays lists, maps
  maps, ext 2 integers, ext 3 tuples, ext 4 and 5 `MapSet`s, ext 6..9 calendar
  structs (microsecond precision 0 when the microsecond is 0, else 6 — Python
  keeps none), ext 1 whatever the `:handle` callback builds.

  Decoding checks every length against the bytes present before using it, and
  never raises on malformed input. Errors (`{:error, reason}`):

    * `:truncated` — the data ends inside a value;
    * `{:trailing_bytes, n}` — `n` bytes follow the value;
    * `{:invalid_byte, 0xC1}` — the one byte MessagePack never uses;
    * `:too_deep` — a value more than 1024 levels below the top one;
    * `{:unknown_ext, type}` — an extension type outside 1..9;
    * `{:invalid_ext, type}` — an extension whose payload does not fit the table;
    * `{:duplicate_key, key}` — two map keys (or set elements) that decode to the
      same term, such as Python's `'a'` and `b'a'`; the caller decides what to do.

  Decoded binaries are sub-binaries of the input (no copy): a small one kept
  for long keeps the whole input alive (`:binary.copy/1` it). Type names of
  handles and the zone names of `DateTime`s are copied.
  """

  import Bitwise

  @max_depth 1024
  @tag :__snakebridge_msgpack__

  @typedoc "A step of a path: a list or tuple index, a map key, a set element, or a calendar field."
  @type step :: term()

  @typedoc "Why `encode/2` refused a term."
  @type encode_error ::
          {:unconvertible, :unconvertible | :unhashable | :too_deep, term(), [step()]}

  @typedoc "Why `decode/2` refused its input."
  @type decode_error ::
          :truncated
          | :too_deep
          | {:trailing_bytes, pos_integer()}
          | {:invalid_byte, byte()}
          | {:unknown_ext, integer()}
          | {:invalid_ext, 1..9}
          | {:duplicate_key, term()}

  # ====================================================================== encode

  @doc """
  Encodes `term` as one MessagePack value.

  Options:

    * `:handle_id` — `fn object -> {:ok, id} | :error end`, the handle id
      (0..2^64-1) of a `%SnakeBridge.Object{}` in the worker the value is for.
      Without it, or when it returns `:error`, an `Object` is unconvertible.

  Returns `{:ok, iodata}` or `{:error, {:unconvertible, reason, term, path}}`
  (see the module documentation). After a refusal the path is found by
  encoding the way down to the refused term again, so `:handle_id` may be
  called more than once for an object; exceptions it raises propagate.

      iex> SnakeBridge.Msgpack.encode([1, "a"]) |> elem(1) |> IO.iodata_to_binary()
      <<0x92, 0x01, 0xA1, ?a>>

      iex> SnakeBridge.Msgpack.encode(%{"k" => [1, self()]}) |> elem(1) |> elem(3)
      ["k", 1]
  """
  @spec encode(term(), keyword()) :: {:ok, iodata()} | {:error, encode_error()}
  def encode(term, opts \\ []) do
    handle_id = Keyword.get(opts, :handle_id)

    try do
      case enc(term, false, 0, handle_id) do
        byte when is_integer(byte) -> {:ok, [byte]}
        iodata -> {:ok, iodata}
      end
    catch
      :throw, {@tag, reason, bad, tail} ->
        path = if bad === term, do: tail, else: locate(term, false, 0, handle_id)
        {:error, {:unconvertible, reason, bad, path}}
    end
  end

  @doc """
  Like `encode/2`, but returns the iodata or raises `ArgumentError`.
  """
  @spec encode!(term(), keyword()) :: iodata()
  def encode!(term, opts \\ []) do
    case encode(term, opts) do
      {:ok, iodata} ->
        iodata

      {:error, {:unconvertible, reason, bad, path}} ->
        where = if path == [], do: "", else: " at #{inspect(path, limit: 20, printable_limit: 60)}"

        raise ArgumentError,
              "cannot encode #{inspect(bad, limit: 10, printable_limit: 60)}#{where} as MessagePack (#{reason})"
    end
  end

  # `k` is true in hashable position (a map key or set element, or inside one),
  # `d` the nesting level, `h` the :handle_id callback. Returns iodata, or a
  # byte (0..255) that is only valid inside a list; throws on a refused term.
  defp enc(t, _k, d, _h) when d > @max_depth, do: bad(:too_deep, t)
  defp enc(i, _k, _d, _h) when is_integer(i), do: int(i)
  defp enc(b, _k, _d, _h) when is_binary(b), do: binary(b)
  defp enc(f, _k, _d, _h) when is_float(f), do: <<0xCB, f::float-64>>
  defp enc(nil, _k, _d, _h), do: 0xC0
  defp enc(false, _k, _d, _h), do: 0xC2
  defp enc(true, _k, _d, _h), do: 0xC3
  defp enc(:infinity, _k, _d, _h), do: <<0xCB, 0x7FF0000000000000::64>>
  defp enc(:neg_infinity, _k, _d, _h), do: <<0xCB, 0xFFF0000000000000::64>>
  defp enc(:nan, _k, _d, _h), do: <<0xCB, 0x7FF8000000000000::64>>
  defp enc(a, _k, _d, _h) when is_atom(a), do: atom(a)
  defp enc(l, k, d, h) when is_list(l), do: list(l, k, d, h)
  defp enc(%{__struct__: mod} = s, k, d, h) when is_atom(mod), do: enc_struct(mod, s, k, d, h)
  defp enc(m, false, d, h) when is_map(m), do: map(m, d, h)
  defp enc(m, true, _d, _h) when is_map(m), do: bad(:unhashable, m)
  defp enc(t, k, d, h) when is_tuple(t), do: tuple(t, k, d, h)
  defp enc(other, _k, _d, _h), do: bad(:unconvertible, other)

  defp bad(reason, term, tail \\ []), do: throw({@tag, reason, term, tail})

  # Positive integers take the unsigned formats, negative ones the signed.
  defp int(i) when i >= 0 and i < 0x80, do: i
  defp int(i) when i >= 0 and i < 0x100, do: <<0xCC, i>>
  defp int(i) when i >= 0 and i < 0x10000, do: <<0xCD, i::16>>
  defp int(i) when i >= 0 and i < 0x100000000, do: <<0xCE, i::32>>
  defp int(i) when i < 0 and i >= -0x20, do: i + 0x100
  defp int(i) when i < 0 and i >= -0x80, do: <<0xD0, i::signed-8>>
  defp int(i) when i < 0 and i >= -0x8000, do: <<0xD1, i::signed-16>>
  defp int(i) when i < 0 and i >= -0x80000000, do: <<0xD2, i::signed-32>>
  defp int(i) when i >= 0 and i < 0x10000000000000000, do: <<0xCF, i::64>>
  defp int(i) when i < 0 and i >= -0x8000000000000000, do: <<0xD3, i::signed-64>>
  defp int(i) when i >= 0, do: bigint(0, i)
  defp int(i), do: bigint(1, -i)

  defp bigint(sign, magnitude) do
    payload = <<sign, :binary.encode_unsigned(magnitude, :little)::binary>>
    [ext_header(2, byte_size(payload), magnitude) | payload]
  end

  defp binary(b) do
    if utf8?(b), do: str(b), else: bin(b)
  end

  defp str(s) do
    case byte_size(s) do
      n when n < 0x20 -> [0xA0 + n | s]
      n when n < 0x100 -> [<<0xD9, n>> | s]
      n when n < 0x10000 -> [<<0xDA, n::16>> | s]
      n when n < 0x100000000 -> [<<0xDB, n::32>> | s]
      _ -> bad(:unconvertible, s)
    end
  end

  defp bin(b) do
    case byte_size(b) do
      n when n < 0x100 -> [<<0xC4, n>> | b]
      n when n < 0x10000 -> [<<0xC5, n::16>> | b]
      n when n < 0x100000000 -> [<<0xC6, n::32>> | b]
      _ -> bad(:unconvertible, b)
    end
  end

  # Same test as String.valid?/1, 14 ASCII bytes at a time while the text is
  # ASCII; after a multi-byte character, byte by byte until 16 ASCII bytes in a
  # row say the chunks are worth trying again.
  defp utf8?(<<a::56, b::56, rest::binary>>) when (bor(a, b) &&& 0x80808080808080) == 0, do: utf8?(rest)
  defp utf8?(b), do: utf8_chars(b, 16)

  defp utf8_chars(<<c, rest::binary>>, 0) when c < 0x80, do: utf8?(rest)
  defp utf8_chars(<<c, rest::binary>>, n) when c < 0x80, do: utf8_chars(rest, n - 1)
  defp utf8_chars(<<_::utf8, rest::binary>>, _n), do: utf8_chars(rest, 16)
  defp utf8_chars(<<>>, _n), do: true
  defp utf8_chars(_, _n), do: false

  # OTP 25 gives NIFs atom text in Latin-1 only, so the NIF refuses other atoms;
  # a UTF-8 lead byte from 0xC4 up starts a code point above U+00FF.
  defp atom(a) do
    s = Atom.to_string(a)
    if latin1?(s), do: str(s), else: bad(:unconvertible, a)
  end

  defp latin1?(<<c, rest::binary>>) when c < 0xC4, do: latin1?(rest)
  defp latin1?(<<>>), do: true
  defp latin1?(_), do: false

  defp list(l, k, d, h) do
    # An improper list is refused as a whole, before its items (as the NIF does).
    n =
      try do
        length(l)
      catch
        :error, :badarg -> bad(:unconvertible, l)
      end

    array = [array_header(n, l) | items(l, k, d + 1, h)]
    if k, do: ext(3, array, l), else: array
  end

  # Items of a list: runs of numbers, nil/booleans and short strings are
  # appended to one binary (the runtime grows it in place), so a list of
  # 10,000 integers is one binary rather than 10,000 small ones; anything else
  # goes through enc/4 as its own iodata. Above @max_depth every item is
  # refused, so the fast clauses are skipped there.
  defp items(list, k, d, h), do: run(list, <<>>, k, d, h)

  # One clause per int format, with small-integer bounds (a bound beyond 60
  # bits is a bignum, slower to compare), so the common sizes come first.
  defp run([i | rest], acc, k, d, h) when is_integer(i) and i >= 0 and i < 0x80 and d <= @max_depth,
    do: run(rest, <<acc::binary, i>>, k, d, h)

  defp run([i | rest], acc, k, d, h) when is_integer(i) and i >= 0x80 and i < 0x100 and d <= @max_depth,
    do: run(rest, <<acc::binary, 0xCC, i>>, k, d, h)

  defp run([i | rest], acc, k, d, h) when is_integer(i) and i >= 0x100 and i < 0x10000 and d <= @max_depth,
    do: run(rest, <<acc::binary, 0xCD, i::16>>, k, d, h)

  defp run([i | rest], acc, k, d, h) when is_integer(i) and i >= 0x10000 and i < 0x100000000 and d <= @max_depth,
    do: run(rest, <<acc::binary, 0xCE, i::32>>, k, d, h)

  defp run([i | rest], acc, k, d, h) when is_integer(i) and i < 0 and i >= -0x20 and d <= @max_depth,
    do: run(rest, <<acc::binary, i::signed-8>>, k, d, h)

  defp run([i | rest], acc, k, d, h) when is_integer(i) and i < -0x20 and i >= -0x80 and d <= @max_depth,
    do: run(rest, <<acc::binary, 0xD0, i::signed-8>>, k, d, h)

  defp run([i | rest], acc, k, d, h) when is_integer(i) and i < -0x80 and i >= -0x8000 and d <= @max_depth,
    do: run(rest, <<acc::binary, 0xD1, i::signed-16>>, k, d, h)

  defp run([i | rest], acc, k, d, h) when is_integer(i) and i < -0x8000 and i >= -0x80000000 and d <= @max_depth,
    do: run(rest, <<acc::binary, 0xD2, i::signed-32>>, k, d, h)

  defp run([i | rest], acc, k, d, h)
       when is_integer(i) and i >= 0x100000000 and i < 0x10000000000000000 and d <= @max_depth,
       do: run(rest, <<acc::binary, 0xCF, i::64>>, k, d, h)

  defp run([i | rest], acc, k, d, h)
       when is_integer(i) and i < -0x80000000 and i >= -0x8000000000000000 and d <= @max_depth,
       do: run(rest, <<acc::binary, 0xD3, i::signed-64>>, k, d, h)

  defp run([f | rest], acc, k, d, h) when is_float(f) and d <= @max_depth,
    do: run(rest, <<acc::binary, 0xCB, f::float-64>>, k, d, h)

  defp run([nil | rest], acc, k, d, h) when d <= @max_depth, do: run(rest, <<acc::binary, 0xC0>>, k, d, h)
  defp run([false | rest], acc, k, d, h) when d <= @max_depth, do: run(rest, <<acc::binary, 0xC2>>, k, d, h)
  defp run([true | rest], acc, k, d, h) when d <= @max_depth, do: run(rest, <<acc::binary, 0xC3>>, k, d, h)

  defp run([s | rest], acc, k, d, h) when is_binary(s) and byte_size(s) < 0x20 and d <= @max_depth do
    acc =
      if utf8?(s),
        do: <<acc::binary, 0xA0 + byte_size(s), s::binary>>,
        else: <<acc::binary, 0xC4, byte_size(s), s::binary>>

    run(rest, acc, k, d, h)
  end

  defp run([x | rest], <<>>, k, d, h) do
    encoded = enc(x, k, d, h)
    [encoded | run(rest, <<>>, k, d, h)]
  end

  defp run([x | rest], acc, k, d, h) do
    encoded = enc(x, k, d, h)
    [acc, encoded | run(rest, <<>>, k, d, h)]
  end

  defp run([], acc, _k, _d, _h), do: acc

  defp tuple(t, k, d, h) do
    ext(3, [array_header(tuple_size(t), t) | items(Tuple.to_list(t), k, d + 1, h)], t)
  end

  defp map(m, d, h) do
    d = d + 1

    pairs =
      :maps.fold(
        fn key, value, acc ->
          key = enc(key, true, d, h)
          value = enc(value, false, d, h)
          [key, value | acc]
        end,
        [],
        m
      )

    [map_header(map_size(m), m) | pairs]
  end

  defp enc_struct(MapSet, %MapSet{map: m} = set, k, d, h) when is_map(m) do
    elements = MapSet.to_list(set)
    array = [array_header(map_size(m), set) | items(elements, true, d + 1, h)]
    ext(if(k, do: 5, else: 4), array, set)
  end

  defp enc_struct(SnakeBridge.Bytes, %{data: b}, _k, _d, _h) when is_binary(b), do: bin(b)
  defp enc_struct(SnakeBridge.Object, object, _k, _d, h), do: object(object, h)
  defp enc_struct(mod, s, _k, _d, _h) when mod in [Date, Time, NaiveDateTime, DateTime], do: enc_calendar(mod, s)
  defp enc_struct(_mod, s, _k, _d, _h), do: bad(:unconvertible, s)

  defp object(object, nil), do: bad(:unconvertible, object)

  defp object(object, handle_id) do
    case handle_id.(object) do
      {:ok, id} when is_integer(id) and id >= 0 and id < 0x10000000000000000 -> <<0xD7, 1, id::64>>
      :error -> bad(:unconvertible, object)
      other -> raise ArgumentError, ":handle_id returned #{inspect(other)}, expected {:ok, 0..2^64-1} or :error"
    end
  end

  # Fields are checked in the NIF's order: calendar, date fields, microsecond,
  # time fields, zone; then the ranges Python accepts.
  defp enc_calendar(mod, s) do
    unless Map.get(s, :calendar) == Calendar.ISO, do: bad(:unconvertible, s)

    date = if mod != Time, do: [field(s, :year), field(s, :month), field(s, :day)], else: []

    time =
      if mod != Date do
        us =
          case s do
            %{microsecond: {us, _}} when is_integer(us) and us >= -0x80000000 and us < 0x80000000 -> us
            _ -> bad(:unconvertible, s)
          end

        [field(s, :hour), field(s, :minute), field(s, :second), us]
      else
        []
      end

    zone =
      if mod == DateTime do
        {tz, abbr} =
          case s do
            %{time_zone: tz, zone_abbr: abbr} when is_binary(tz) and is_binary(abbr) -> {tz, abbr}
            _ -> bad(:unconvertible, s)
          end

        utc = field(s, :utc_offset)
        std = field(s, :std_offset)
        # Python's fixed-offset zones (the fallback for a zone it does not know)
        # must be strictly within a day; a zone Python knows has such offsets.
        unless abs(utc + std) < 86_400, do: bad(:unconvertible, s)
        # Always str, as the port program expects, with the bytes as they are:
        # whether a zone name Python cannot read matters is the program's call
        # (the NIF accepts one when it does not need it).
        [str(tz), str(abbr), int(utc), int(std)]
      else
        []
      end

    unless date == [] or valid_date?(date), do: bad(:unconvertible, s)
    unless time == [] or valid_time?(time), do: bad(:unconvertible, s)

    fields = date ++ time
    header = 0x90 + length(fields) + length(zone)
    payload = IO.iodata_to_binary([header, Enum.map(fields, &int/1) | zone])
    [ext_header(calendar_type(mod), byte_size(payload), s) | payload]
  end

  defp calendar_type(Date), do: 6
  defp calendar_type(Time), do: 7
  defp calendar_type(NaiveDateTime), do: 8
  defp calendar_type(DateTime), do: 9

  # A field the NIF reads as a C int: otherwise refused with the field's name
  # appended to the path.
  defp field(s, key) do
    case s do
      %{^key => v} when is_integer(v) and v >= -0x80000000 and v < 0x80000000 -> v
      _ -> bad(:unconvertible, s, [key])
    end
  end

  defp valid_date?([y, m, d]), do: y in 1..9999 and m in 1..12 and d >= 1 and d <= Calendar.ISO.days_in_month(y, m)
  defp valid_time?([h, m, s, us]), do: h in 0..23 and m in 0..59 and s in 0..59 and us in 0..999_999

  defp array_header(n, _t) when n < 0x10, do: 0x90 + n
  defp array_header(n, _t) when n < 0x10000, do: <<0xDC, n::16>>
  defp array_header(n, _t) when n < 0x100000000, do: <<0xDD, n::32>>
  defp array_header(_n, t), do: bad(:unconvertible, t)

  defp map_header(n, _t) when n < 0x10, do: 0x80 + n
  defp map_header(n, _t) when n < 0x10000, do: <<0xDE, n::16>>
  defp map_header(n, _t) when n < 0x100000000, do: <<0xDF, n::32>>
  defp map_header(_n, t), do: bad(:unconvertible, t)

  defp ext(type, payload, t), do: [ext_header(type, IO.iodata_length(payload), t) | payload]

  defp ext_header(type, 1, _t), do: <<0xD4, type>>
  defp ext_header(type, 2, _t), do: <<0xD5, type>>
  defp ext_header(type, 4, _t), do: <<0xD6, type>>
  defp ext_header(type, 8, _t), do: <<0xD7, type>>
  defp ext_header(type, 16, _t), do: <<0xD8, type>>
  defp ext_header(type, n, _t) when n < 0x100, do: <<0xC7, n, type>>
  defp ext_header(type, n, _t) when n < 0x10000, do: <<0xC8, n::16, type>>
  defp ext_header(type, n, _t) when n < 0x100000000, do: <<0xC9, n::32, type>>
  defp ext_header(_type, _n, t), do: bad(:unconvertible, t)

  # The encoder does not track paths (it would cost an allocation per item).
  # After a refusal, this walks down from the top, re-encoding each child in the
  # encoder's own order, to the first child that fails: it is the refused term
  # itself, or holds it. Runs only on the error path.
  defp locate(term, k, d, h), do: first_failure(children(term, k), d + 1, h)

  defp first_failure([{step, child, k} | rest], d, h) do
    case probe(child, k, d, h) do
      :ok -> first_failure(rest, d, h)
      {bad, tail} when bad === child -> [step | tail]
      {_bad, _tail} -> [step | locate(child, k, d, h)]
    end
  end

  defp first_failure([], _d, _h), do: []

  defp probe(term, k, d, h) do
    enc(term, k, d, h)
    :ok
  catch
    :throw, {@tag, _reason, bad, tail} -> {bad, tail}
  end

  defp children(l, k) when is_list(l), do: l |> Enum.with_index() |> Enum.map(fn {x, i} -> {i, x, k} end)
  defp children(t, k) when is_tuple(t), do: children(Tuple.to_list(t), k)
  defp children(%MapSet{} = s, _k), do: s |> MapSet.to_list() |> Enum.map(&{&1, &1, true})
  defp children(%{__struct__: mod}, _k) when is_atom(mod), do: []

  defp children(m, false) when is_map(m) do
    :maps.fold(fn key, value, acc -> [{key, value, false}, {key, key, true} | acc] end, [], m) |> Enum.reverse()
  end

  defp children(_term, _k), do: []

  # ====================================================================== decode

  @doc """
  Decodes exactly one MessagePack value from `binary`.

  Options:

    * `:handle` — `fn id, type_name -> term end`, builds the term for a handle
      (ext 1) from its id and Python type name. Default: `{:snakebridge_handle, id,
      type_name}`.

  Returns `{:ok, term}` or `{:error, reason}` (see the module documentation); it
  does not raise on any input (an exception raised by `:handle` propagates).

      iex> SnakeBridge.Msgpack.decode(<<0x92, 0x01, 0xA1, ?a>>)
      {:ok, [1, "a"]}

      iex> SnakeBridge.Msgpack.decode(<<0x92, 0x01>>)
      {:error, :truncated}
  """
  @spec decode(binary(), keyword()) :: {:ok, term()} | {:error, decode_error()}
  def decode(binary, opts \\ []) when is_binary(binary) do
    handle = Keyword.get(opts, :handle, &default_handle/2)

    try do
      value(binary, 0, handle)
    catch
      :throw, {@tag, reason} -> {:error, reason}
    else
      {term, <<>>} -> {:ok, term}
      {_term, rest} -> {:error, {:trailing_bytes, byte_size(rest)}}
    end
  end

  @doc """
  Like `decode/2`, but returns the term or raises `ArgumentError`.
  """
  @spec decode!(binary(), keyword()) :: term()
  def decode!(binary, opts \\ []) do
    case decode(binary, opts) do
      {:ok, term} -> term
      {:error, reason} -> raise ArgumentError, "invalid MessagePack: #{inspect(reason)}"
    end
  end

  defp default_handle(id, type_name), do: {:snakebridge_handle, id, type_name}

  defp fail(reason), do: throw({@tag, reason})

  # value(binary, depth, handle) -> {term, rest}. Every size is checked by the
  # match itself (binary-size(n) fails when fewer bytes remain), so nothing is
  # allocated from an unchecked length; a failed match ends in :truncated.
  defp value(<<0::1, v::7, r::binary>>, _d, _h), do: {v, r}
  defp value(<<0b111::3, v::5, r::binary>>, _d, _h), do: {v - 32, r}
  defp value(<<0b101::3, n::5, s::binary-size(n), r::binary>>, _d, _h), do: {s, r}
  defp value(<<0b1001::4, n::4, r::binary>>, d, h), do: array(r, n, d, h)
  defp value(<<0b1000::4, n::4, r::binary>>, d, h), do: map(r, n, d, h)
  defp value(<<0xC0, r::binary>>, _d, _h), do: {nil, r}
  defp value(<<0xC2, r::binary>>, _d, _h), do: {false, r}
  defp value(<<0xC3, r::binary>>, _d, _h), do: {true, r}
  defp value(<<0xCB, f::float-64, r::binary>>, _d, _h), do: {f, r}
  defp value(<<0xCB, s::1, 0x7FF::11, m::52, r::binary>>, _d, _h), do: {special_float(s, m), r}
  defp value(<<0xCA, f::float-32, r::binary>>, _d, _h), do: {f, r}
  defp value(<<0xCA, s::1, 0xFF::8, m::23, r::binary>>, _d, _h), do: {special_float(s, m), r}
  defp value(<<0xCC, v::8, r::binary>>, _d, _h), do: {v, r}
  defp value(<<0xCD, v::16, r::binary>>, _d, _h), do: {v, r}
  defp value(<<0xCE, v::32, r::binary>>, _d, _h), do: {v, r}
  defp value(<<0xCF, v::64, r::binary>>, _d, _h), do: {v, r}
  defp value(<<0xD0, v::signed-8, r::binary>>, _d, _h), do: {v, r}
  defp value(<<0xD1, v::signed-16, r::binary>>, _d, _h), do: {v, r}
  defp value(<<0xD2, v::signed-32, r::binary>>, _d, _h), do: {v, r}
  defp value(<<0xD3, v::signed-64, r::binary>>, _d, _h), do: {v, r}
  defp value(<<0xD9, n::8, s::binary-size(n), r::binary>>, _d, _h), do: {s, r}
  defp value(<<0xDA, n::16, s::binary-size(n), r::binary>>, _d, _h), do: {s, r}
  defp value(<<0xDB, n::32, s::binary-size(n), r::binary>>, _d, _h), do: {s, r}
  defp value(<<0xC4, n::8, s::binary-size(n), r::binary>>, _d, _h), do: {s, r}
  defp value(<<0xC5, n::16, s::binary-size(n), r::binary>>, _d, _h), do: {s, r}
  defp value(<<0xC6, n::32, s::binary-size(n), r::binary>>, _d, _h), do: {s, r}
  defp value(<<0xDC, n::16, r::binary>>, d, h), do: array(r, n, d, h)
  defp value(<<0xDD, n::32, r::binary>>, d, h), do: array(r, n, d, h)
  defp value(<<0xDE, n::16, r::binary>>, d, h), do: map(r, n, d, h)
  defp value(<<0xDF, n::32, r::binary>>, d, h), do: map(r, n, d, h)
  defp value(<<0xD4, t::signed-8, p::binary-size(1), r::binary>>, d, h), do: {ext(t, p, d, h), r}
  defp value(<<0xD5, t::signed-8, p::binary-size(2), r::binary>>, d, h), do: {ext(t, p, d, h), r}
  defp value(<<0xD6, t::signed-8, p::binary-size(4), r::binary>>, d, h), do: {ext(t, p, d, h), r}
  defp value(<<0xD7, t::signed-8, p::binary-size(8), r::binary>>, d, h), do: {ext(t, p, d, h), r}
  defp value(<<0xD8, t::signed-8, p::binary-size(16), r::binary>>, d, h), do: {ext(t, p, d, h), r}
  defp value(<<0xC7, n::8, t::signed-8, p::binary-size(n), r::binary>>, d, h), do: {ext(t, p, d, h), r}
  defp value(<<0xC8, n::16, t::signed-8, p::binary-size(n), r::binary>>, d, h), do: {ext(t, p, d, h), r}
  defp value(<<0xC9, n::32, t::signed-8, p::binary-size(n), r::binary>>, d, h), do: {ext(t, p, d, h), r}
  defp value(<<0xC1, _::binary>>, _d, _h), do: fail({:invalid_byte, 0xC1})
  defp value(_, _d, _h), do: fail(:truncated)

  defp special_float(_sign, m) when m != 0, do: :nan
  defp special_float(0, 0), do: :infinity
  defp special_float(1, 0), do: :neg_infinity

  # Each item takes at least one byte, each entry two: a count beyond what is
  # left fails at once instead of after reading it all.
  defp array(r, 0, _d, _h), do: {[], r}
  defp array(_r, _n, d, _h) when d >= @max_depth, do: fail(:too_deep)
  defp array(r, n, _d, _h) when n > byte_size(r), do: fail(:truncated)
  defp array(r, n, d, h), do: items(r, n, [], d + 1, h)

  # The usual scalars are matched here, so a list of them is read in one
  # function that keeps its match context, without a {value, rest} tuple per
  # item. Every clause starts with the binary match (the compiler reuses the
  # match context only then); the count is checked in guards.
  defp items(<<0::1, v::7, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v | acc], d, h)
  defp items(<<0b111::3, v::5, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v - 32 | acc], d, h)
  defp items(<<0xCC, v::8, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v | acc], d, h)
  defp items(<<0xCD, v::16, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v | acc], d, h)
  defp items(<<0xCE, v::32, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v | acc], d, h)
  defp items(<<0xCF, v::64, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v | acc], d, h)
  defp items(<<0xD0, v::signed-8, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v | acc], d, h)
  defp items(<<0xD1, v::signed-16, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v | acc], d, h)
  defp items(<<0xD2, v::signed-32, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v | acc], d, h)
  defp items(<<0xD3, v::signed-64, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [v | acc], d, h)
  defp items(<<0xCB, f::float-64, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [f | acc], d, h)
  defp items(<<0xC0, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [nil | acc], d, h)
  defp items(<<0xC2, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [false | acc], d, h)
  defp items(<<0xC3, r::binary>>, n, acc, d, h) when n > 0, do: items(r, n - 1, [true | acc], d, h)

  defp items(<<0b101::3, l::5, s::binary-size(l), r::binary>>, n, acc, d, h) when n > 0,
    do: items(r, n - 1, [s | acc], d, h)

  defp items(<<0xD9, l::8, s::binary-size(l), r::binary>>, n, acc, d, h) when n > 0,
    do: items(r, n - 1, [s | acc], d, h)

  defp items(r, 0, acc, _d, _h), do: {:lists.reverse(acc), r}

  defp items(b, n, acc, d, h) do
    {v, r} = value(b, d, h)
    items(r, n - 1, [v | acc], d, h)
  end

  defp map(r, 0, _d, _h), do: {%{}, r}
  defp map(_r, _n, d, _h) when d >= @max_depth, do: fail(:too_deep)
  defp map(r, n, _d, _h) when n * 2 > byte_size(r), do: fail(:truncated)
  defp map(r, n, d, h), do: pairs(r, n, n, [], d + 1, h)

  # Keys are mostly short strings: matched here, as items/5 does for scalars.
  defp pairs(<<0b101::3, l::5, key::binary-size(l), r::binary>>, n, c, acc, d, h) when n > 0 do
    {v, r} = value(r, d, h)
    pairs(r, n - 1, c, [{key, v} | acc], d, h)
  end

  defp pairs(r, 0, count, acc, _d, _h) do
    map = :maps.from_list(acc)
    if map_size(map) == count, do: {map, r}, else: fail({:duplicate_key, duplicate(:lists.reverse(acc), %{})})
  end

  defp pairs(b, n, c, acc, d, h) do
    {key, r} = value(b, d, h)
    {v, r} = value(r, d, h)
    pairs(r, n - 1, c, [{key, v} | acc], d, h)
  end

  defp duplicate([{key, _} | rest], seen) do
    if is_map_key(seen, key), do: key, else: duplicate(rest, Map.put(seen, key, []))
  end

  defp ext(1, <<id::64, type_name::binary>>, _d, h), do: h.(id, :binary.copy(type_name))

  defp ext(2, <<sign, magnitude::binary>>, _d, _h) when sign in [0, 1] do
    n = :binary.decode_unsigned(magnitude, :little)
    if sign == 1, do: -n, else: n
  catch
    :error, :system_limit -> fail({:invalid_ext, 2})
  end

  defp ext(3, p, d, h), do: p |> sequence(3, d, h) |> List.to_tuple()
  defp ext(4, p, d, h), do: p |> sequence(4, d, h) |> set()
  defp ext(5, p, d, h), do: p |> sequence(5, d, h) |> set()
  defp ext(t, p, _d, _h) when t in 6..9, do: calendar(t, flat(p))
  defp ext(t, _p, _d, _h) when t in 1..9, do: fail({:invalid_ext, t})
  defp ext(t, _p, _d, _h), do: fail({:unknown_ext, t})

  # The payload of ext 3..5: one array, the same nesting level as the ext.
  defp sequence(<<first, _::binary>> = p, t, d, h) when first in 0x90..0x9F or first in [0xDC, 0xDD] do
    case value(p, d, h) do
      {items, <<>>} -> items
      _ -> fail({:invalid_ext, t})
    end
  catch
    :throw, {@tag, :truncated} -> fail({:invalid_ext, t})
  end

  defp sequence(_p, t, _d, _h), do: fail({:invalid_ext, t})

  defp set(items) do
    set = MapSet.new(items)

    if MapSet.size(set) == length(items),
      do: set,
      else: fail({:duplicate_key, items |> Enum.map(&{&1, []}) |> duplicate(%{})})
  end

  # Calendar payloads: an array of integers and strings only, read flat (no
  # handles, no nesting), or :error.
  defp flat(<<0b1001::4, n::4, r::binary>>), do: flat(r, n, [])
  defp flat(<<0xDC, n::16, r::binary>>), do: flat(r, n, [])
  defp flat(<<0xDD, n::32, r::binary>>), do: flat(r, n, [])
  defp flat(_), do: :error

  defp flat(<<>>, 0, acc), do: :lists.reverse(acc)
  defp flat(_r, 0, _acc), do: :error

  defp flat(r, n, acc) do
    case r do
      <<0::1, v::7, r::binary>> -> flat(r, n - 1, [v | acc])
      <<0b111::3, v::5, r::binary>> -> flat(r, n - 1, [v - 32 | acc])
      <<0xCC, v::8, r::binary>> -> flat(r, n - 1, [v | acc])
      <<0xCD, v::16, r::binary>> -> flat(r, n - 1, [v | acc])
      <<0xCE, v::32, r::binary>> -> flat(r, n - 1, [v | acc])
      <<0xCF, v::64, r::binary>> -> flat(r, n - 1, [v | acc])
      <<0xD0, v::signed-8, r::binary>> -> flat(r, n - 1, [v | acc])
      <<0xD1, v::signed-16, r::binary>> -> flat(r, n - 1, [v | acc])
      <<0xD2, v::signed-32, r::binary>> -> flat(r, n - 1, [v | acc])
      <<0xD3, v::signed-64, r::binary>> -> flat(r, n - 1, [v | acc])
      <<0b101::3, l::5, s::binary-size(l), r::binary>> -> flat(r, n - 1, [s | acc])
      <<0xD9, l::8, s::binary-size(l), r::binary>> -> flat(r, n - 1, [s | acc])
      <<0xDA, l::16, s::binary-size(l), r::binary>> -> flat(r, n - 1, [s | acc])
      <<0xDB, l::32, s::binary-size(l), r::binary>> -> flat(r, n - 1, [s | acc])
      <<0xC4, l::8, s::binary-size(l), r::binary>> -> flat(r, n - 1, [s | acc])
      <<0xC5, l::16, s::binary-size(l), r::binary>> -> flat(r, n - 1, [s | acc])
      <<0xC6, l::32, s::binary-size(l), r::binary>> -> flat(r, n - 1, [s | acc])
      _ -> :error
    end
  end

  defp calendar(6, [y, m, d] = date) when is_integer(y) and is_integer(m) and is_integer(d) do
    if valid_date?(date), do: %Date{year: y, month: m, day: d}, else: fail({:invalid_ext, 6})
  end

  defp calendar(7, [h, m, s, us] = time) when is_integer(h) and is_integer(m) and is_integer(s) and is_integer(us) do
    if valid_time?(time),
      do: %Time{hour: h, minute: m, second: s, microsecond: micro(us)},
      else: fail({:invalid_ext, 7})
  end

  defp calendar(8, [y, mo, d, h, mi, s, us]) do
    with %Date{} <- calendar(6, [y, mo, d]), %Time{} <- calendar(7, [h, mi, s, us]) do
      %NaiveDateTime{year: y, month: mo, day: d, hour: h, minute: mi, second: s, microsecond: micro(us)}
    end
  catch
    :throw, {@tag, _} -> fail({:invalid_ext, 8})
  end

  defp calendar(9, [y, mo, d, h, mi, s, us, tz, abbr, utc, std])
       when is_binary(tz) and is_binary(abbr) and is_integer(utc) and is_integer(std) do
    %NaiveDateTime{} = calendar(8, [y, mo, d, h, mi, s, us])

    %DateTime{
      year: y,
      month: mo,
      day: d,
      hour: h,
      minute: mi,
      second: s,
      microsecond: micro(us),
      time_zone: :binary.copy(tz),
      zone_abbr: :binary.copy(abbr),
      utc_offset: utc,
      std_offset: std
    }
  catch
    :throw, {@tag, _} -> fail({:invalid_ext, 9})
  end

  defp calendar(t, _fields), do: fail({:invalid_ext, t})

  # Python keeps microseconds without a precision: the in-process canonical form.
  defp micro(0), do: {0, 0}
  defp micro(us), do: {us, 6}
end
