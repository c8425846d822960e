defmodule SnakeBridge.Msgpack.Wire do
  @moduledoc """
  The MessagePack wire format
  ([spec](https://github.com/msgpack/msgpack/blob/master/spec.md)): the bytes of
  each format family, and nothing about what values mean.

  `SnakeBridge.Msgpack` builds SnakeBridge's spellings (tuples, sets, structs,
  handles) from these pieces; nothing else should need this module.

  Encoding functions return iodata, or a single byte (an integer 0..255) for a
  value that is one byte. A byte is iodata only inside a list, so callers put
  every result in a list. Lengths and counts must be below 2^32 (`is_length/1`):
  the format has no larger ones, so callers spell larger values otherwise.

      iex> SnakeBridge.Msgpack.Wire.int(300)
      <<0xCD, 0x01, 0x2C>>

      iex> [SnakeBridge.Msgpack.Wire.array_header(2) | SnakeBridge.Msgpack.Wire.items([1, "a"], nil)]
      ...> |> IO.iodata_to_binary()
      <<0x92, 0x01, 0xC4, 0x01, ?a>>

  `decode/3` reads one value; what extension values mean is left to its
  callbacks.
  """

  import Bitwise

  @max_depth 1024

  @null 0xC0
  @false_ 0xC2
  @true_ 0xC3
  @float64 0xCB
  @bin8 0xC4
  @fixext1 0xD4

  # A binary shorter than this is copied into the run of scalars it is in
  # (items/2); a longer one is referenced from the iodata.
  @short_binary 64
  # Lists this long or longer have their scalars appended to one binary (items/2).
  @short_list 32

  # The int formats: {first, last, prefix, bits}, the prefix empty for the
  # fixints (the value is the byte). Written once here, this table generates
  # the clauses of int/1 and of the runs of items/2, and the decoder's clauses
  # for every prefixed format (a format whose range is negative is read signed).
  #
  # The order matters: within each sign the ranges grow, so an encoder clause
  # tests only the sign and the far bound (the near one is the previous
  # clause's). Measured, that is about 20% faster on a list of random int64s than
  # testing both bounds. The 32-bit formats of both signs come before the
  # 64-bit ones, whose bounds are bignums, slower to compare.
  @ints [
    {0, 0x7F, <<>>, 8},
    {0x80, 0xFF, <<0xCC>>, 8},
    {0x100, 0xFFFF, <<0xCD>>, 16},
    {0x10000, 0xFFFFFFFF, <<0xCE>>, 32},
    {-0x20, -1, <<>>, 8},
    {-0x80, -0x21, <<0xD0>>, 8},
    {-0x8000, -0x81, <<0xD1>>, 16},
    {-0x80000000, -0x8001, <<0xD2>>, 32},
    {0x100000000, 0xFFFFFFFFFFFFFFFF, <<0xCF>>, 64},
    {-0x8000000000000000, -0x80000001, <<0xD3>>, 64}
  ]

  # Whether the integer i, past the clauses of the formats before, is in the
  # format first..last: its sign and the far bound (see @ints).
  defmacrop in_format(i, first, last) when first >= 0, do: quote(do: unquote(i) >= 0 and unquote(i) <= unquote(last))
  defmacrop in_format(i, first, _last), do: quote(do: unquote(i) < 0 and unquote(i) >= unquote(first))

  @typedoc "Why `decode/3` refused its input (its callbacks may add their own reasons)."
  @type reason ::
          :truncated
          | :too_deep
          | {:trailing_bytes, pos_integer()}
          | {:invalid_byte, 0xC1}
          | {:duplicate_key, term()}
          | term()

  @doc "An integer that a MessagePack int format holds: -2^63..2^64-1."
  defguard is_int(i) when is_integer(i) and i >= -0x8000000000000000 and i <= 0xFFFFFFFFFFFFFFFF

  @doc "A length or count that a MessagePack header can state: 0..2^32-1."
  defguard is_length(n) when is_integer(n) and n >= 0 and n <= 0xFFFFFFFF

  # ====================================================================== encode

  @doc "nil."
  @spec null() :: byte()
  def null, do: @null

  @doc "false or true."
  @spec bool(boolean()) :: byte()
  def bool(false), do: @false_
  def bool(true), do: @true_

  @doc "An integer in its smallest format (`is_int/1` must hold)."
  @spec int(integer()) :: byte() | binary()
  for {first, last, prefix, bits} <- @ints do
    if prefix == <<>> do
      def int(i) when is_integer(i) and in_format(i, unquote(first), unquote(last)), do: i &&& 0xFF
    else
      def int(i) when is_integer(i) and in_format(i, unquote(first), unquote(last)),
        do: <<unquote(prefix), i::size(unquote(bits))>>
    end
  end

  @doc "A float as float64 (always, so that `-0.0` keeps its sign)."
  @spec float(float()) :: binary()
  def float(f), do: <<@float64, f::float-64>>

  @doc "A str (the bytes as they are: the caller knows whether they are UTF-8)."
  @spec str(binary()) :: iodata()
  def str(s) do
    case byte_size(s) do
      n when n < 0x20 -> [0xA0 + n | s]
      n when n < 0x100 -> [<<0xD9, n>> | s]
      n when n < 0x10000 -> [<<0xDA, n::16>> | s]
      n -> [<<0xDB, n::32>> | s]
    end
  end

  @doc "A bin."
  @spec bin(binary()) :: iodata()
  def bin(b) do
    case byte_size(b) do
      n when n < 0x100 -> [<<@bin8, n>> | b]
      n when n < 0x10000 -> [<<0xC5, n::16>> | b]
      n -> [<<0xC6, n::32>> | b]
    end
  end

  @doc "The header of an array of `n` values (the values follow it)."
  @spec array_header(non_neg_integer()) :: byte() | binary()
  def array_header(n) when n < 0x10, do: 0x90 + n
  def array_header(n) when n < 0x10000, do: <<0xDC, n::16>>
  def array_header(n), do: <<0xDD, n::32>>

  @doc "The header of a map of `n` entries (keys and values alternate after it)."
  @spec map_header(non_neg_integer()) :: byte() | binary()
  def map_header(n) when n < 0x10, do: 0x80 + n
  def map_header(n) when n < 0x10000, do: <<0xDE, n::16>>
  def map_header(n), do: <<0xDF, n::32>>

  @doc "An extension value of `type` (-128..127) with `payload`, in its smallest format."
  @spec ext(integer(), iodata()) :: iodata()
  def ext(type, payload), do: [ext_header(type, IO.iodata_length(payload)) | payload]

  defp ext_header(type, 1), do: <<@fixext1, type>>
  defp ext_header(type, 2), do: <<0xD5, type>>
  defp ext_header(type, 4), do: <<0xD6, type>>
  defp ext_header(type, 8), do: <<0xD7, type>>
  defp ext_header(type, 16), do: <<0xD8, type>>
  defp ext_header(type, n) when n < 0x100, do: <<0xC7, n, type>>
  defp ext_header(type, n) when n < 0x10000, do: <<0xC8, n::16, type>>
  defp ext_header(type, n), do: <<0xC9, n::32, type>>

  @doc """
  The items of a proper list as consecutive values, without a header.

  In a list of #{@short_list} items or more, runs of integers that `is_int/1`
  accepts, floats, nil, booleans and binaries shorter than #{@short_binary}
  bytes (as bin) are appended to one binary (the runtime grows it in place),
  so a list of 10,000 integers is one binary rather than 10,000 small ones. A
  shorter list gives each item its own small piece: a binary grown in place
  is allocated off the process heap, which costs more than a few items' worth
  of pieces (a `math.sqrt` request's elements took 620–760 ns to encode with
  it, 360 ns without).
  `encode` (a function of one argument) encodes every other item; it may be
  nil for a list of such scalars only.
  """
  @spec items(list(), (term() -> iodata() | byte()) | nil) :: iodata()
  def items(list, encode) do
    if shorter_than?(list, @short_list), do: each(list, encode), else: run(list, <<>>, encode)
  end

  defp shorter_than?([_ | rest], n) when n > 1, do: shorter_than?(rest, n - 1)
  defp shorter_than?([_ | _], _n), do: false
  defp shorter_than?(_end, _n), do: true

  defp each([i | rest], e) when is_int(i), do: [int(i) | each(rest, e)]
  defp each([f | rest], e) when is_float(f), do: [float(f) | each(rest, e)]
  defp each([nil | rest], e), do: [@null | each(rest, e)]
  defp each([false | rest], e), do: [@false_ | each(rest, e)]
  defp each([true | rest], e), do: [@true_ | each(rest, e)]
  defp each([b | rest], e) when is_binary(b) and byte_size(b) < @short_binary, do: [bin(b) | each(rest, e)]
  defp each([x | rest], e), do: [e.(x) | each(rest, e)]
  defp each([], _e), do: []

  for {first, last, prefix, bits} <- @ints do
    defp run([i | rest], acc, e) when is_integer(i) and in_format(i, unquote(first), unquote(last)),
      do: run(rest, <<acc::binary, unquote(prefix), i::size(unquote(bits))>>, e)
  end

  defp run([f | rest], acc, e) when is_float(f), do: run(rest, <<acc::binary, @float64, f::float-64>>, e)
  defp run([nil | rest], acc, e), do: run(rest, <<acc::binary, @null>>, e)
  defp run([false | rest], acc, e), do: run(rest, <<acc::binary, @false_>>, e)
  defp run([true | rest], acc, e), do: run(rest, <<acc::binary, @true_>>, e)

  defp run([b | rest], acc, e) when is_binary(b) and byte_size(b) < @short_binary,
    do: run(rest, <<acc::binary, @bin8, byte_size(b), b::binary>>, e)

  defp run([x | rest], <<>>, e), do: [e.(x) | run(rest, <<>>, e)]
  defp run([x | rest], acc, e), do: [acc, e.(x) | run(rest, <<>>, e)]
  defp run([], acc, _e), do: acc

  # ====================================================================== decode

  @doc """
  Decodes exactly one value from `binary`.

  nil, booleans, integers and floats become themselves (float32 too; inf, -inf
  and nan, which have no Erlang float, the atoms `:infinity`, `:neg_infinity`,
  `:nan`); str and bin binaries (sub-binaries of the input, not copies); arrays
  lists; maps maps (two keys that decode to the same term fail with
  `{:duplicate_key, key}`). Extension values are left to the callbacks:

    * `ext.(type, payload)` gives the term of an extension value;
    * `tagged.(type, payload, rest)` the term of an array whose first item is a
      fixext 1 value (its type and 1-byte payload), `rest` being the other items,
      decoded. This is how a layer above spells things as tagged arrays.

  Either may end the decoding with `fail/1`. Returns `{:ok, term}` or
  `{:error, reason}`: `:truncated` (the data ends inside a value, or a length
  exceeds what is left), `{:trailing_bytes, n}`, `{:invalid_byte, 0xC1}` (the one
  byte MessagePack never uses), `:too_deep` (an array or map more than
  #{@max_depth} levels below the top one), or a reason given to `fail/1`. It never
  raises on any input: every length is checked against the bytes present before
  it is used (exceptions raised by the callbacks propagate).
  """
  @spec decode(binary(), (integer(), binary() -> term()), (integer(), binary(), list() -> term())) ::
          {:ok, term()} | {:error, reason()}
  def decode(binary, ext, tagged) when is_binary(binary) do
    value(binary, 0, {ext, tagged})
  catch
    :throw, {__MODULE__, reason} -> {:error, reason}
  else
    {term, <<>>} -> {:ok, term}
    {_term, rest} -> {:error, {:trailing_bytes, byte_size(rest)}}
  end

  @doc "Ends the `decode/3` in progress with `{:error, reason}`; for its callbacks."
  @spec fail(term()) :: no_return()
  def fail(reason), do: throw({__MODULE__, reason})

  # value(binary, depth, callbacks) -> {term, rest}. Every size is checked by the
  # match itself (binary-size(n) fails when fewer bytes remain), so nothing is
  # allocated from an unchecked length; a failed match ends in :truncated.
  defp value(<<0::1, v::7, r::binary>>, _d, _c), do: {v, r}
  defp value(<<0b111::3, v::5, r::binary>>, _d, _c), do: {v - 32, r}
  defp value(<<0b101::3, n::5, s::binary-size(n), r::binary>>, _d, _c), do: {s, r}
  defp value(<<0b1001::4, n::4, r::binary>>, d, c), do: array(r, n, d, c)
  defp value(<<0b1000::4, n::4, r::binary>>, d, c), do: map(r, n, d, c)
  defp value(<<@null, r::binary>>, _d, _c), do: {nil, r}
  defp value(<<@false_, r::binary>>, _d, _c), do: {false, r}
  defp value(<<@true_, r::binary>>, _d, _c), do: {true, r}
  defp value(<<@float64, f::float-64, r::binary>>, _d, _c), do: {f, r}
  defp value(<<@float64, s::1, 0x7FF::11, m::52, r::binary>>, _d, _c), do: {special_float(s, m), r}
  defp value(<<0xCA, f::float-32, r::binary>>, _d, _c), do: {f, r}
  defp value(<<0xCA, s::1, 0xFF::8, m::23, r::binary>>, _d, _c), do: {special_float(s, m), r}

  for {first, _last, prefix, bits} <- @ints, prefix != <<>> do
    if first < 0 do
      defp value(<<unquote(prefix), v::signed-size(unquote(bits)), r::binary>>, _d, _c), do: {v, r}
    else
      defp value(<<unquote(prefix), v::size(unquote(bits)), r::binary>>, _d, _c), do: {v, r}
    end
  end

  defp value(<<0xD9, n::8, s::binary-size(n), r::binary>>, _d, _c), do: {s, r}
  defp value(<<0xDA, n::16, s::binary-size(n), r::binary>>, _d, _c), do: {s, r}
  defp value(<<0xDB, n::32, s::binary-size(n), r::binary>>, _d, _c), do: {s, r}
  defp value(<<@bin8, n::8, s::binary-size(n), r::binary>>, _d, _c), do: {s, r}
  defp value(<<0xC5, n::16, s::binary-size(n), r::binary>>, _d, _c), do: {s, r}
  defp value(<<0xC6, n::32, s::binary-size(n), r::binary>>, _d, _c), do: {s, r}
  defp value(<<0xDC, n::16, r::binary>>, d, c), do: array(r, n, d, c)
  defp value(<<0xDD, n::32, r::binary>>, d, c), do: array(r, n, d, c)
  defp value(<<0xDE, n::16, r::binary>>, d, c), do: map(r, n, d, c)
  defp value(<<0xDF, n::32, r::binary>>, d, c), do: map(r, n, d, c)
  defp value(<<@fixext1, t::signed-8, p::binary-size(1), r::binary>>, _d, c), do: {elem(c, 0).(t, p), r}
  defp value(<<0xD5, t::signed-8, p::binary-size(2), r::binary>>, _d, c), do: {elem(c, 0).(t, p), r}
  defp value(<<0xD6, t::signed-8, p::binary-size(4), r::binary>>, _d, c), do: {elem(c, 0).(t, p), r}
  defp value(<<0xD7, t::signed-8, p::binary-size(8), r::binary>>, _d, c), do: {elem(c, 0).(t, p), r}
  defp value(<<0xD8, t::signed-8, p::binary-size(16), r::binary>>, _d, c), do: {elem(c, 0).(t, p), r}
  defp value(<<0xC7, n::8, t::signed-8, p::binary-size(n), r::binary>>, _d, c), do: {elem(c, 0).(t, p), r}
  defp value(<<0xC8, n::16, t::signed-8, p::binary-size(n), r::binary>>, _d, c), do: {elem(c, 0).(t, p), r}
  defp value(<<0xC9, n::32, t::signed-8, p::binary-size(n), r::binary>>, _d, c), do: {elem(c, 0).(t, p), r}
  defp value(<<0xC1, _::binary>>, _d, _c), do: fail({:invalid_byte, 0xC1})
  defp value(_, _d, _c), do: fail(:truncated)

  defp special_float(_sign, m) when m != 0, do: :nan
  defp special_float(0, 0), do: :infinity
  defp special_float(1, 0), do: :neg_infinity

  # Each item takes at least one byte, each entry two: a count beyond what is
  # left fails at once instead of after reading it all.
  defp array(r, 0, _d, _c), do: {[], r}
  defp array(_r, _n, d, _c) when d >= @max_depth, do: fail(:too_deep)
  defp array(r, n, _d, _c) when n > byte_size(r), do: fail(:truncated)

  defp array(<<@fixext1, t::signed-8, p::binary-size(1), r::binary>>, n, d, c) do
    {rest, r} = items(r, n - 1, [], d + 1, c)
    {elem(c, 1).(t, p, rest), r}
  end

  defp array(r, n, d, c), do: items(r, n, [], d + 1, c)

  # The usual scalars are matched here, so a list of them is read in one
  # function that keeps its match context, without a {value, rest} tuple per
  # item. Every clause starts with the binary match (the compiler reuses the
  # match context only then); the count is checked in guards.
  defp items(<<0::1, v::7, r::binary>>, n, acc, d, c) when n > 0, do: items(r, n - 1, [v | acc], d, c)
  defp items(<<0b111::3, v::5, r::binary>>, n, acc, d, c) when n > 0, do: items(r, n - 1, [v - 32 | acc], d, c)

  for {first, _last, prefix, bits} <- @ints, prefix != <<>> do
    if first < 0 do
      defp items(<<unquote(prefix), v::signed-size(unquote(bits)), r::binary>>, n, acc, d, c) when n > 0,
        do: items(r, n - 1, [v | acc], d, c)
    else
      defp items(<<unquote(prefix), v::size(unquote(bits)), r::binary>>, n, acc, d, c) when n > 0,
        do: items(r, n - 1, [v | acc], d, c)
    end
  end

  defp items(<<@float64, f::float-64, r::binary>>, n, acc, d, c) when n > 0, do: items(r, n - 1, [f | acc], d, c)
  defp items(<<@null, r::binary>>, n, acc, d, c) when n > 0, do: items(r, n - 1, [nil | acc], d, c)
  defp items(<<@false_, r::binary>>, n, acc, d, c) when n > 0, do: items(r, n - 1, [false | acc], d, c)
  defp items(<<@true_, r::binary>>, n, acc, d, c) when n > 0, do: items(r, n - 1, [true | acc], d, c)

  defp items(<<0b101::3, l::5, s::binary-size(l), r::binary>>, n, acc, d, c) when n > 0,
    do: items(r, n - 1, [s | acc], d, c)

  defp items(<<0xD9, l::8, s::binary-size(l), r::binary>>, n, acc, d, c) when n > 0,
    do: items(r, n - 1, [s | acc], d, c)

  defp items(<<@bin8, l::8, s::binary-size(l), r::binary>>, n, acc, d, c) when n > 0,
    do: items(r, n - 1, [s | acc], d, c)

  defp items(r, 0, acc, _d, _c), do: {:lists.reverse(acc), r}

  defp items(b, n, acc, d, c) do
    {v, r} = value(b, d, c)
    items(r, n - 1, [v | acc], d, c)
  end

  defp map(r, 0, _d, _c), do: {%{}, r}
  defp map(_r, _n, d, _c) when d >= @max_depth, do: fail(:too_deep)
  defp map(r, n, _d, _c) when n * 2 > byte_size(r), do: fail(:truncated)
  defp map(r, n, d, c), do: pairs(r, n, n, [], d + 1, c)

  # Keys are mostly short strings: matched here, as items/5 does for scalars.
  defp pairs(<<0b101::3, l::5, key::binary-size(l), r::binary>>, n, count, acc, d, c) when n > 0 do
    {v, r} = value(r, d, c)
    pairs(r, n - 1, count, [{key, v} | acc], d, c)
  end

  defp pairs(r, 0, count, acc, _d, _c) do
    map = :maps.from_list(acc)
    if map_size(map) == count, do: {map, r}, else: fail({:duplicate_key, duplicate(:lists.reverse(acc), %{})})
  end

  defp pairs(b, n, count, acc, d, c) do
    {key, r} = value(b, d, c)
    {v, r} = value(r, d, c)
    pairs(r, n - 1, count, [{key, v} | acc], d, c)
  end

  defp duplicate([{key, _} | rest], seen) do
    if is_map_key(seen, key), do: key, else: duplicate(rest, Map.put(seen, key, []))
  end
end
