defmodule SnakeBridge.Msgpack do
  @moduledoc """
  SnakeBridge's values in MessagePack, as the port protocol spells them
  (`docs/protocol.md`, "Values"): `encode/2` for requests, `decode/2` for
  replies, and `locate/2` to find a term the port program refused.

  The spelling only: which term may become which Python object, and every
  error about it, is decided in the C++ core, the same for both backends. The
  bytes of each MessagePack format are `SnakeBridge.Msgpack.Wire`'s.

  A **marker** is a fixext 1 value (`0xD4`, type, `0x00`) that starts an array
  to say what the array spells: a tuple (type 3), a set (type 4) or a struct
  (type 12). The opaque marker (type 13) stands alone, for a term with no
  spelling.

  ## Requests: Elixir terms (`encode/2`)

  | Elixir | MessagePack |
  |---|---|
  | `nil`, `true`, `false` | nil, true, false |
  | other atoms | str: the atom's name (`:infinity`, `:neg_infinity`, `:nan` included) |
  | integer in -2^63..2^64-1 | int, smallest format |
  | other integers | ext 2: sign byte (0 or 1), then the magnitude, little-endian |
  | float | float64 |
  | binary | bin |
  | `%SnakeBridge.Bytes{data: binary}` | ext 10, payload the bytes |
  | proper list | array |
  | tuple of n | array of n + 1: the tuple marker, then the elements |
  | map (not a struct) | map, entries in `:maps.to_list/1` order |
  | `MapSet` of n | array of n + 1: the set marker, then the elements in `MapSet.to_list/1` order |
  | `%SnakeBridge.Object{}` | ext 1: the 8-byte big-endian handle id that `:handle_id` gives |
  | `%SnakeBridge.Msgpack.Shared{}` (bytes a port worker reads from shared memory) | ext 16: their size (8 bytes big-endian), then the object's name |
  | any other struct (`Date`, `Time`, `NaiveDateTime`, `DateTime`, user structs) | array of 3: the struct marker, the module name as str (`"Elixir.Date"`), a map of the fields without `__struct__` |
  | pid, port, reference, function | ext 14: the term's external term format (`:erlang.term_to_binary/1`) |
  | anything else: improper list, bitstring, an `Object` without a handle id | the opaque marker |

  The encoder refuses nothing and checks nothing: it spells every term, and the
  port program refuses what cannot cross, naming it by `steps` that `locate/2`
  resolves. (A binary of 4 GiB or more has no MessagePack length: it is
  spelled opaque too, and a `Bytes` holding one as a struct.) Values concatenate, so a request can be assembled
  from encoded parts: `[0x90 + n, part1, ..., partn]` (n < 16) is an array of
  n values.

      iex> SnakeBridge.Msgpack.encode({:ok, [1, "a"]}) |> IO.iodata_to_binary()
      <<0x93, 0xD4, 3, 0, 0xA2, "ok", 0x92, 0x01, 0xC4, 0x01, "a">>

      iex> SnakeBridge.Msgpack.encode([1 | 2]) |> IO.iodata_to_binary()
      <<0xD4, 13, 0>>

  ## Replies: Python values (`decode/2`)

  | MessagePack | Elixir |
  |---|---|
  | nil, true, false | `nil`, `true`, `false` |
  | int; ext 2 (as above) | integer |
  | float64, float32 | float (a raw inf, -inf or nan: `:infinity`, `:neg_infinity`, `:nan`) |
  | str, bin | binary |
  | array | list |
  | array starting with the tuple marker | tuple of the other items |
  | array starting with the set marker | `MapSet` of the other items |
  | map | map |
  | ext 1: 8-byte big-endian id, then the type name | what the `:handle` callback builds |
  | ext 6 `[year, month, day]` | `Date` |
  | ext 7 `[hour, minute, second, microsecond, precision]` | `Time` |
  | ext 8 `[year, month, day, hour, minute, second, microsecond, precision]` | `NaiveDateTime` |
  | ext 9 `[year, ..., microsecond, precision, time_zone, zone_abbr, utc_offset, std_offset]` | `DateTime` |
  | ext 11: a name | that atom, if it exists |
  | ext 14: external term format | that term (a pid, port, reference or function sent before) |
  | ext 15: kind (`?s`, `?u`, `?f` or `?c`), bits, number of dimensions `n`, padding `p` (a byte each), `n` dimensions (8 bytes big-endian each), `p` bytes, then the elements | `%SnakeBridge.Array{}`, its data a sub-binary of the input |
  | ext 17: kind, bits, `n`, a zero byte, `n` dimensions, the size (8 bytes big-endian), the name of a shared-memory object `/snakebridge-<pid>-r<n>` | `%SnakeBridge.Array{}`, its data a binary over a mapping of the object (taken: unlinked) |

      iex> SnakeBridge.Msgpack.decode(<<0x93, 0xD4, 3, 0, 0xD4, 11, "a", 0x01>>)
      {:ok, {:a, 1}}

  Decoding never raises on malformed input and never allocates from a length it
  has not checked. Errors (`{:error, reason}`):

    * `:truncated` — the data ends inside a value;
    * `{:trailing_bytes, n}` — `n` bytes follow the value;
    * `{:invalid_byte, 0xC1}` — the one byte MessagePack never uses;
    * `:too_deep` — an array or map more than 1024 levels below the top one;
    * `{:unknown_ext, type}` — an extension type not in the table above;
    * `{:invalid_ext, type}` — an extension whose payload does not fit the table
      (or an atom that does not exist, or a calendar value Elixir finds invalid);
    * `:misplaced_marker` — a marker anywhere but first in an array;
    * `{:duplicate_key, key}` — two map keys (or set elements) that decode to the
      same term, such as Python's `'a'` and `b'a'`.

  Decoded binaries are sub-binaries of the input (no copy): a small one kept
  for long keeps the whole input alive (`:binary.copy/1` it). The type names of
  handles and the zone names of `DateTime`s are copied.
  """

  import SnakeBridge.Msgpack.Wire, only: [is_int: 1, is_length: 1]

  alias SnakeBridge.Msgpack.Wire

  # Extension types (docs/protocol.md).
  @handle 1
  @bigint 2
  @tuple 3
  @set 4
  @date 6
  @time 7
  @naive 8
  @datetime 9
  @bytes 10
  @atom 11
  @struct 12
  @opaque_ext 13
  @term 14
  @array 15
  @shared 16
  @shared_array 17

  @tuple_marker IO.iodata_to_binary(Wire.ext(@tuple, <<0>>))
  @set_marker IO.iodata_to_binary(Wire.ext(@set, <<0>>))
  @struct_marker IO.iodata_to_binary(Wire.ext(@struct, <<0>>))
  @opaque_marker IO.iodata_to_binary(Wire.ext(@opaque_ext, <<0>>))

  @typedoc """
  A step of the port program's way to a refused term: a position in an array
  (a list item, a tuple element, a `MapSet` element in `MapSet.to_list/1`
  order), `{:entry, i}` the value of the i-th entry of a map in
  `:maps.to_list/1` order, `{:key, i}` its key, a binary a struct field by name.
  """
  @type step :: non_neg_integer() | {:entry, non_neg_integer()} | {:key, non_neg_integer()} | String.t()

  @typedoc """
  A step of a path as the in-process backend reports it: a list or tuple
  index, a map key (for an entry's key and its value alike), a `MapSet`
  element, a struct field's name.
  """
  @type path_step :: term()

  @typedoc "Why `decode/2` refused its input."
  @type decode_error ::
          :truncated
          | :too_deep
          | :misplaced_marker
          | {:trailing_bytes, pos_integer()}
          | {:invalid_byte, 0xC1}
          | {:unknown_ext, integer()}
          | {:invalid_ext, integer()}
          | {:duplicate_key, term()}

  # ====================================================================== encode

  @doc """
  Encodes `term` as one MessagePack value, spelled as the module documentation
  says. It cannot fail.

  Options:

    * `:handle_id` — `fn object -> {:ok, id} | :error end`, the handle id
      (0..2^64-1) of a `%SnakeBridge.Object{}` in the program the request is
      for. Without it, or for any other answer, the `Object` is spelled opaque
      (the program then refuses it).

  Returns iodata.

      iex> SnakeBridge.Msgpack.encode(%{"k" => MapSet.new([:x])}) |> IO.iodata_to_binary()
      <<0x81, 0xC4, 1, "k", 0x92, 0xD4, 4, 0, 0xA1, "x">>
  """
  @spec encode(term(), keyword()) :: iodata()
  def encode(term, opts \\ []) do
    case enc(term, handle_id(opts)) do
      byte when is_integer(byte) -> [byte]
      iodata -> iodata
    end
  end

  @doc false
  # Each term of `terms` encoded, as encode/2 with `handle_id: handle_id` does
  # (a request's elements: one option read for all of them).
  @spec encode_each([term()], (term() -> {:ok, non_neg_integer()} | :error) | nil) :: [iodata()]
  def encode_each(terms, handle_id) when is_function(handle_id, 1) or handle_id == nil,
    do: each(terms, handle_id)

  defp each([], _h), do: []

  defp each([t | rest], h) do
    case enc(t, h) do
      byte when is_integer(byte) -> [[byte] | each(rest, h)]
      iodata -> [iodata | each(rest, h)]
    end
  end

  # The name callers used when encoding could fail; the same as encode/2.
  @doc false
  @spec encode!(term(), keyword()) :: iodata()
  def encode!(term, opts \\ []), do: encode(term, opts)

  @doc false
  # The start of a tuple of n elements: the elements, encoded, follow.
  def tuple_header(n), do: [Wire.array_header(n + 1), @tuple_marker]

  @doc false
  # Any term as ext 14 (its external term format), read back as the same term.
  def term(term), do: Wire.ext(@term, :erlang.term_to_binary(term))

  defp handle_id([]), do: nil
  defp handle_id(handle_id: fun) when is_function(fun, 1) or fun == nil, do: fun

  defp handle_id(opts) do
    raise ArgumentError,
          "SnakeBridge.Msgpack.encode/2 takes one option, :handle_id (a function of one argument); got #{inspect(opts)}"
  end

  # Returns iodata, or a byte (0..255) that is iodata only inside a list; `h`
  # is the :handle_id callback.
  defp enc(i, _h) when is_int(i), do: Wire.int(i)
  defp enc(b, _h) when is_binary(b) and is_length(byte_size(b)), do: Wire.bin(b)
  defp enc(f, _h) when is_float(f), do: Wire.float(f)
  defp enc(nil, _h), do: Wire.null()
  defp enc(b, _h) when is_boolean(b), do: Wire.bool(b)
  defp enc(a, _h) when is_atom(a), do: Wire.str(Atom.to_string(a))
  defp enc(i, _h) when is_integer(i), do: bigint(i)
  defp enc(l, h) when is_list(l), do: list(l, h)

  defp enc(t, h) when is_tuple(t),
    do: [Wire.array_header(tuple_size(t) + 1), @tuple_marker | items(Tuple.to_list(t), h)]

  defp enc(%{__struct__: mod} = s, h) when is_atom(mod), do: enc_struct(struct_spelling(s), s, h)
  defp enc(m, h) when is_map(m), do: [Wire.map_header(map_size(m)) | entries(:maps.to_list(m), h)]

  defp enc(t, _h) when is_pid(t) or is_reference(t) or is_port(t) or is_function(t),
    do: Wire.ext(@term, :erlang.term_to_binary(t))

  defp enc(_other, _h), do: @opaque_marker

  defp items(list, h), do: Wire.items(list, &enc(&1, h))

  defp bigint(i) when i >= 0, do: Wire.ext(@bigint, <<0, :binary.encode_unsigned(i, :little)::binary>>)
  defp bigint(i), do: Wire.ext(@bigint, <<1, :binary.encode_unsigned(-i, :little)::binary>>)

  defp list(l, h) do
    case proper_length(l) do
      n when is_length(n) -> [Wire.array_header(n) | items(l, h)]
      _improper -> @opaque_marker
    end
  end

  defp proper_length(l) do
    length(l)
  catch
    :error, :badarg -> :improper
  end

  defp entries([{k, v} | rest], h), do: [enc(k, h), enc(v, h) | entries(rest, h)]
  defp entries([], _h), do: []

  # How a struct is spelled; locate/2 goes into it by the same choice.
  defp struct_spelling(%MapSet{map: m}) when is_map(m), do: :set
  defp struct_spelling(%SnakeBridge.Bytes{data: b}) when is_binary(b) and is_length(byte_size(b)), do: :bytes
  defp struct_spelling(%SnakeBridge.Object{}), do: :object
  defp struct_spelling(%SnakeBridge.Msgpack.Shared{name: n, size: s}) when is_binary(n) and is_integer(s), do: :shared
  defp struct_spelling(_), do: :fields

  defp enc_struct(:set, %MapSet{map: m} = set, h),
    do: [Wire.array_header(map_size(m) + 1), @set_marker | items(MapSet.to_list(set), h)]

  defp enc_struct(:bytes, %{data: b}, _h), do: Wire.ext(@bytes, b)
  defp enc_struct(:object, object, h), do: object(object, h)
  defp enc_struct(:shared, %{name: name, size: size}, _h), do: Wire.ext(@shared, [<<size::64>> | name])

  defp enc_struct(:fields, %{__struct__: mod} = s, h) do
    fields = Map.delete(s, :__struct__)
    [Wire.array_header(3), @struct_marker, Wire.str(Atom.to_string(mod)), enc(fields, h)]
  end

  defp object(object, h) when is_function(h, 1) do
    case h.(object) do
      {:ok, id} when is_integer(id) and id >= 0 and id <= 0xFFFFFFFFFFFFFFFF -> Wire.ext(@handle, <<id::64>>)
      _ -> @opaque_marker
    end
  end

  defp object(_object, nil), do: @opaque_marker

  # ====================================================================== locate

  @doc """
  Follows the port program's `steps` into `term` (the term that was encoded),
  and returns the term found there with its path as the in-process backend
  would report it, or `:error` when the steps do not fit the term.

  Steps go the way `encode/2` spelled the term (see `t:step/0`); the path
  gives list and tuple indexes as they are, a map's key for its entry (the key
  or the value), a `MapSet`'s element itself, and a struct field's name as an
  atom. A keyword list is a list of pairs like any other: `[i, 1]` is the value
  of its i-th pair; as keyword arguments, `{:entry, i}` is the value of its
  i-th pair and `{:key, i}` its key, named by the key.

      iex> SnakeBridge.Msgpack.locate([:a, %{"k" => {0, :b}}], [1, {:entry, 0}, 1])
      {:ok, :b, [1, "k", 1]}

      iex> SnakeBridge.Msgpack.locate(%{{1, 2} => 3}, [{:key, 0}, 1])
      {:ok, 2, [{1, 2}, 1]}

      iex> SnakeBridge.Msgpack.locate(~D[2024-01-31], ["month"])
      {:ok, 1, [:month]}

      iex> SnakeBridge.Msgpack.locate([1], [1])
      :error
  """
  @spec locate(term(), [step()]) :: {:ok, term(), [path_step()]} | :error
  def locate(term, steps) when is_list(steps), do: walk(term, steps, [])
  def locate(_term, _steps), do: :error

  defp walk(term, [], path), do: {:ok, term, :lists.reverse(path)}

  # length/1 in a guard fails on an improper list, which has no items to go to.
  defp walk(l, [i | rest], path) when is_list(l) and is_integer(i) and i >= 0 and length(l) > i,
    do: walk(:lists.nth(i + 1, l), rest, [i | path])

  defp walk(t, [i | rest], path) when is_tuple(t) and is_integer(i) and i >= 0 and i < tuple_size(t),
    do: walk(elem(t, i), rest, [i | path])

  defp walk(m, [{side, i} | rest], path)
       when is_map(m) and not is_struct(m) and side in [:entry, :key] and is_integer(i) and i >= 0 and
              i < map_size(m) do
    {key, value} = :lists.nth(i + 1, :maps.to_list(m))
    walk(if(side == :entry, do: value, else: key), rest, [key | path])
  end

  # A keyword list passed as keyword arguments: the core names its pairs like
  # a map's entries.
  defp walk(l, [{side, i} | rest], path)
       when is_list(l) and side in [:entry, :key] and is_integer(i) and i >= 0 and length(l) > i do
    case :lists.nth(i + 1, l) do
      {key, value} -> walk(if(side == :entry, do: value, else: key), rest, [key | path])
      _ -> :error
    end
  end

  defp walk(%{__struct__: mod} = s, [step | rest], path) when is_atom(mod) do
    case {struct_spelling(s), step} do
      {:set, i} when is_integer(i) and i >= 0 ->
        case Enum.drop(MapSet.to_list(s), i) do
          [element | _] -> walk(element, rest, [element | path])
          [] -> :error
        end

      {:fields, name} when is_binary(name) ->
        with {:ok, field} when field != :__struct__ <- existing_atom(name),
             {:ok, value} <- Map.fetch(s, field) do
          walk(value, rest, [field | path])
        else
          _ -> :error
        end

      _ ->
        :error
    end
  end

  defp walk(_term, _steps, _path), do: :error

  defp existing_atom(name) do
    {:ok, :erlang.binary_to_existing_atom(name, :utf8)}
  catch
    :error, _ -> :error
  end

  # ====================================================================== decode

  @doc """
  Decodes exactly one MessagePack value from `binary`, a reply's spelling (see
  the module documentation).

  Options:

    * `:handle` — `fn id, type_name -> term end`, builds the term for a handle
      (ext 1) from its id and Python type name. Default: `{:snakebridge_handle, id,
      type_name}`.

  Returns `{:ok, term}` or `{:error, reason}`; it does not raise on any input
  (an exception raised by `:handle` propagates).

      iex> SnakeBridge.Msgpack.decode(<<0x92, 0x01, 0xA1, ?a>>)
      {:ok, [1, "a"]}

      iex> SnakeBridge.Msgpack.decode(<<0x92, 0x01>>)
      {:error, :truncated}

      iex> SnakeBridge.Msgpack.decode(<<0x92, 0x01, 0xD4, 3, 0>>)
      {:error, :misplaced_marker}
  """
  @spec decode(binary(), keyword()) :: {:ok, term()} | {:error, decode_error()}
  def decode(binary, opts \\ []) when is_binary(binary) do
    handle = handle(opts)
    Wire.decode(binary, &ext(&1, &2, handle), &tagged(&1, &2, &3, handle))
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

  defp handle([]), do: &default_handle/2
  defp handle(handle: fun) when is_function(fun, 2), do: fun

  defp handle(opts) do
    raise ArgumentError,
          "SnakeBridge.Msgpack.decode/2 takes one option, :handle (a function of two arguments); got #{inspect(opts)}"
  end

  defp default_handle(id, type_name), do: {:snakebridge_handle, id, type_name}

  # An array whose first item is a fixext 1: a tuple or a set when that item is
  # their marker, else a list that starts with that extension value.
  defp tagged(@tuple, <<0>>, items, _h), do: List.to_tuple(items)
  defp tagged(@set, <<0>>, items, _h), do: set(items)
  defp tagged(type, payload, items, h), do: [ext(type, payload, h) | items]

  defp set(items) do
    set = MapSet.new(items)

    if MapSet.size(set) == length(items),
      do: set,
      else: Wire.fail({:duplicate_key, duplicate(items, MapSet.new())})
  end

  defp duplicate([x | rest], seen) do
    if MapSet.member?(seen, x), do: x, else: duplicate(rest, MapSet.put(seen, x))
  end

  defp ext(@handle, <<id::64, type_name::binary>>, h), do: h.(id, :binary.copy(type_name))

  defp ext(@bigint, <<sign, magnitude::binary>>, _h) when sign in [0, 1] do
    n = :binary.decode_unsigned(magnitude, :little)
    if sign == 1, do: -n, else: n
  catch
    :error, :system_limit -> Wire.fail({:invalid_ext, @bigint})
  end

  defp ext(type, payload, _h) when type in @date..@datetime, do: calendar(type, fields(payload))

  defp ext(@atom, name, _h) do
    :erlang.binary_to_existing_atom(name, :utf8)
  catch
    :error, _ -> Wire.fail({:invalid_ext, @atom})
  end

  # A pid, reference, port or function Python held: the term it was sent as
  # (its external term format, from this program's own client).
  defp ext(@term, etf, _h) do
    :erlang.binary_to_term(etf)
  catch
    :error, _ -> Wire.fail({:invalid_ext, @term})
  end

  @array_types [{?s, 8}, {?s, 16}, {?s, 32}, {?s, 64}, {?u, 8}, {?u, 16}, {?u, 32}, {?u, 64}] ++
                 [{?f, 16}, {?f, 32}, {?f, 64}, {?c, 64}, {?c, 128}]

  defp ext(@array, <<kind, bits, ndim, pad, dims::binary-size(ndim * 8), _::binary-size(pad), data::binary>>, _h)
       when {kind, bits} in @array_types do
    shape = for <<d::64 <- dims>>, do: d

    if Enum.product(shape) * div(bits, 8) == byte_size(data),
      do: %SnakeBridge.Array{data: data, type: {List.to_atom([kind]), bits}, shape: List.to_tuple(shape)},
      else: Wire.fail({:invalid_ext, @array})
  end

  # An array whose elements a worker on this node left in shared memory: the
  # binary points into the mapping (the object is unlinked as it is taken).
  defp ext(@shared_array, <<kind, bits, ndim, 0, dims::binary-size(ndim * 8), size::64, name::binary>>, _h)
       when {kind, bits} in @array_types and byte_size(name) < 64 do
    shape = for <<d::64 <- dims>>, do: d

    with true <- shared_name?(name),
         {:ok, data} <- SnakeBridge.Native.shm_take(name, size),
         true <- Enum.product(shape) * div(bits, 8) == size do
      %SnakeBridge.Array{data: data, type: {List.to_atom([kind]), bits}, shape: List.to_tuple(shape)}
    else
      _ -> Wire.fail({:invalid_ext, @shared_array})
    end
  end

  defp ext(type, <<0>>, _h) when type in [@tuple, @set], do: Wire.fail(:misplaced_marker)

  defp ext(type, _payload, _h)
       when type in [@handle, @bigint, @tuple, @set, @atom, @array, @shared_array] or type in @date..@datetime,
       do: Wire.fail({:invalid_ext, type})

  defp ext(type, _payload, _h), do: Wire.fail({:unknown_ext, type})

  # A calendar payload: one array of integers and strings, or :error.
  defp fields(payload) do
    no_ext = fn _type, _payload -> Wire.fail(:nested) end

    case Wire.decode(payload, no_ext, fn _type, _payload, _rest -> Wire.fail(:nested) end) do
      {:ok, fields} when is_list(fields) ->
        if Enum.all?(fields, &(is_integer(&1) or is_binary(&1))), do: fields, else: :error

      _ ->
        :error
    end
  end

  defp calendar(@date, [y, m, d]) when is_integer(y) and is_integer(m) and is_integer(d) do
    if Calendar.ISO.valid_date?(y, m, d), do: %Date{year: y, month: m, day: d}, else: Wire.fail({:invalid_ext, @date})
  end

  defp calendar(@time, [h, m, s, us, p]) when is_integer(h) and is_integer(m) and is_integer(s) and is_integer(us) do
    if Calendar.ISO.valid_time?(h, m, s, {us, p}),
      do: %Time{hour: h, minute: m, second: s, microsecond: {us, p}},
      else: Wire.fail({:invalid_ext, @time})
  end

  defp calendar(@naive, [y, mo, d, h, mi, s, us, p]) do
    date = calendar(@date, [y, mo, d])
    time = calendar(@time, [h, mi, s, us, p])
    NaiveDateTime.new!(date, time)
  catch
    :throw, _ -> Wire.fail({:invalid_ext, @naive})
  end

  defp calendar(@datetime, [y, mo, d, h, mi, s, us, p, tz, abbr, utc, std])
       when is_binary(tz) and is_binary(abbr) and is_integer(utc) and is_integer(std) do
    naive = calendar(@naive, [y, mo, d, h, mi, s, us, p])

    %DateTime{
      year: naive.year,
      month: naive.month,
      day: naive.day,
      hour: naive.hour,
      minute: naive.minute,
      second: naive.second,
      microsecond: naive.microsecond,
      time_zone: :binary.copy(tz),
      zone_abbr: :binary.copy(abbr),
      utc_offset: utc,
      std_offset: std
    }
  catch
    :throw, _ -> Wire.fail({:invalid_ext, @datetime})
  end

  defp calendar(type, _fields), do: Wire.fail({:invalid_ext, type})

  # "/snakebridge-<os pid>-r<n>", the names workers give shared replies.
  defp shared_name?("/snakebridge-" <> rest) do
    case String.split(rest, "-r") do
      [pid, n] -> digits?(pid) and digits?(n)
      _ -> false
    end
  end

  defp shared_name?(_), do: false

  defp digits?(s), do: s != "" and s |> String.to_charlist() |> Enum.all?(&(&1 in ?0..?9))
end
