defmodule SnakeBridge.Test.PythonTerms do
  @moduledoc false
  # PropEr generators for Elixir terms that cross into Python, and the rules that
  # say which of them must come back unchanged (docs/type_mapping.md, "Round trips").
  #
  # Generated on purpose: only terms whose Python value maps back to the very same
  # Elixir term. Left out, because their round trip changes them by design:
  #
  #   * atoms other than nil/true/false/:infinity/:neg_infinity/:nan (become `str`,
  #     come back as binaries);
  #   * lists inside map keys or MapSets (become tuples, come back as tuples);
  #   * maps as map keys or MapSet elements (dicts are unhashable: ArgumentError);
  #   * maps/MapSets with two keys equal in Python (1 and 1.0, 1 and true, 0 and
  #     false, 0 and -0.0, "a" and :a): refused with ArgumentError, so keys are
  #     de-duplicated by `py_key/1` as they are generated;
  #   * `SnakeBridge.bytes(b)` (comes back as `b`);
  #   * calendar values whose microsecond is not in Python's canonical form. Python
  #     keeps microseconds but no precision, so a time comes back as `{0, 0}` when
  #     its microsecond is 0 and `{us, 6}` otherwise; only that form is generated.
  #     Also only years 1..9999 (Python's range), seconds 0..59 (no leap second),
  #     `Calendar.ISO`, and DateTime in "Etc/UTC".
  #
  # Containers nest to @max_depth levels with up to @max_len items each; both grow
  # with PropEr's size, so early tests are small and shrinking has somewhere to go.

  alias :proper_types, as: PT

  @max_depth 4
  @max_len 10

  # ------------------------------------------------------------------ top level

  @doc "Any term that must round-trip through a Python identity function unchanged."
  def mappable do
    PT.sized(fn size -> value(depth(size)) end)
    |> PT.add_constraint(&collision_free?/1, true)
  end

  @doc "A term of the JSON subset: nil, booleans, integers, finite floats, UTF-8 strings, lists, string-keyed maps."
  def json do
    PT.sized(fn size -> json(depth(size)) end)
  end

  @doc """
  `{term, bad, steps}`: a mappable term with exactly one `bad` item (one of
  `unconvertible/0`) somewhere inside, and the path to it as the NIF reports it:
  list and tuple indexes, and for maps and MapSets the key or element itself.
  """
  def poisoned do
    bad = PT.oneof(Enum.map(unconvertible(), &PT.exactly/1))

    PT.sized(fn size ->
      let(PT.tuple([poisoned(depth(size), :value), bad]), fn {hole, bad} ->
        {term, steps} = fill(hole, bad)
        {term, bad, steps}
      end)
    end)
  end

  @doc """
  A map or MapSet (maybe inside a list) whose keys come from a small pool full of
  values that are distinct in Elixir but equal in Python, so that about a quarter
  of them collide. `collision_free?/1` says which ones the NIF must refuse.
  """
  def maybe_colliding do
    scalar = PT.oneof(Enum.map(collision_pool(), &PT.exactly/1))

    key =
      PT.frequency([
        {4, scalar},
        {1, tuple_of(scalar)},
        {1, let(bounded_list(scalar), &MapSet.new/1)},
        # A list in a key becomes a tuple: [1] and {1} are the same key in Python.
        {1, bounded_list(scalar)}
      ])

    keys = PT.resize(8, PT.list(key))

    PT.oneof([
      let(keys, fn ks -> Map.new(ks, &{&1, 0}) end),
      let(keys, &MapSet.new/1),
      let(keys, fn ks -> [1, %{"k" => MapSet.new(ks)}] end)
    ])
  end

  defp collision_pool do
    negative_zero = from_bits(0x8000000000000000)

    [
      0,
      1,
      -1,
      0.0,
      negative_zero,
      1.0,
      -1.0,
      0.5,
      true,
      false,
      nil,
      "a",
      "b",
      :a,
      :b,
      <<0xFF>>,
      "é",
      :é,
      Integer.pow(2, 53),
      Integer.pow(2, 53) + 1,
      9_007_199_254_740_992.0,
      Integer.pow(2, 64),
      18_446_744_073_709_551_616.0,
      :nan,
      :infinity,
      :neg_infinity,
      {},
      [],
      MapSet.new(),
      ~D[2020-01-01],
      ~N[2020-01-01 00:00:00],
      ~U[2020-01-01 00:00:00Z],
      ~T[10:00:00],
      ~T[10:00:00.000000],
      ~T[10:00:00.5],
      ~T[10:00:00.500000]
    ]
  end

  @doc "Terms with no Python equivalent (docs/type_mapping.md, \"Cannot cross\")."
  def unconvertible do
    # (Pids, references, ports and functions cross: Python holds them.)
    [
      <<1::3>>,
      <<5::7>>,
      [1 | 2],
      Version.parse!("1.2.3")
    ]
  end

  defp depth(size), do: min(@max_depth, div(size, 4))

  # ------------------------------------------------------------------ leaves

  def leaf do
    PT.frequency([
      {1, PT.oneof([PT.exactly(nil), PT.exactly(true), PT.exactly(false)])},
      {4, integer()},
      {4, float()},
      {1, PT.oneof([PT.exactly(:infinity), PT.exactly(:neg_infinity), PT.exactly(:nan)])},
      {4, utf8()},
      {2, non_utf8()},
      {2, calendar()}
    ])
  end

  # 2^e - 1, 2^e, 2^e + 1 and their negatives around the sizes that change the
  # representation: BEAM small ints (60 bits), int64/uint64, and the external
  # term format's SMALL_BIG_EXT/LARGE_BIG_EXT switch at 256 bytes of magnitude.
  @int_edges for e <- [31, 32, 53, 59, 60, 62, 63, 64, 65, 127, 128, 2040, 2047, 2048, 2049, 4096],
                 d <- [-1, 0, 1],
                 s <- [1, -1],
                 do: s * (Integer.pow(2, e) + d)

  def integer do
    PT.frequency([
      {4, PT.integer()},
      {2, PT.oneof(Enum.map(@int_edges, &PT.exactly/1))},
      {2,
       let(PT.tuple([PT.boolean(), PT.binary()]), fn {neg, bytes} -> signed(neg, :binary.decode_unsigned(bytes)) end)},
      # Magnitudes of 240..300 bytes straddle the SMALL/LARGE_BIG_EXT boundary.
      {1,
       let(PT.tuple([PT.boolean(), PT.choose(240, 300), PT.integer(0, 1_000_000)]), fn {neg, n, seed} ->
         signed(neg, :binary.decode_unsigned(seeded_bytes(n, seed)))
       end)}
    ])
  end

  defp signed(true, n), do: -n
  defp signed(false, n), do: n

  # -0.0 is made at run time: the compiler may share one literal for 0.0 and -0.0
  # (they are =:= on OTP 25), which would lose the sign.
  @float_edges [
    0.0,
    1.0,
    -1.0,
    0.1,
    1 / 3,
    # smallest subnormal, largest subnormal, smallest normal, largest
    5.0e-324,
    -5.0e-324,
    2.225073858507201e-308,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    # 2^53, 2^63, 2^64
    9_007_199_254_740_992.0,
    9_223_372_036_854_775_808.0,
    18_446_744_073_709_551_616.0,
    1.0e300
  ]

  def float do
    PT.frequency([
      {3, PT.float()},
      {2, PT.oneof(Enum.map(@float_edges, &PT.exactly/1))},
      {1, let(PT.exactly(0x8000000000000000), &from_bits/1)},
      # Any bit pattern; NaN and infinities have no Erlang float, so fall back.
      {3, let(PT.binary(8), fn <<bits::64>> -> from_bits(bits) end)}
    ])
  end

  defp from_bits(bits) do
    case <<bits::64>> do
      <<f::float-64>> -> f
      _ -> 0.5
    end
  end

  @text_edges [
    "",
    "\0",
    "a\0b",
    "é",
    "日本語",
    "😀",
    "👨‍👩‍👧‍👦",
    "🇫🇷",
    "e\u0301",
    "\uFEFFbom",
    "\uFFFE\uFFFF",
    <<0x10FFFF::utf8>>,
    <<0xD7FF::utf8, 0xE000::utf8>>
  ]

  def utf8 do
    PT.frequency([
      {3, let(PT.list(PT.choose(0, 0x7F)), &List.to_string/1)},
      {3, let(PT.list(codepoint()), &List.to_string/1)},
      {1, PT.oneof(Enum.map(@text_edges, &PT.exactly/1))},
      # From 4 KiB up, a Python str's UTF-8 buffer is shared, not copied.
      {1,
       PT.oneof([
         let(PT.choose(4094, 4098), &String.duplicate("a", &1)),
         let(PT.choose(600, 1500), &String.duplicate("aé日😀", &1))
       ])}
    ])
  end

  # Any Unicode scalar value (surrogates have no UTF-8 form). PropEr's choose/2
  # favours the low end of wide ranges, so also draw uniformly from random bits.
  @scalar_ranges [{0, 0x7F}, {0x80, 0x7FF}, {0x800, 0xD7FF}, {0xE000, 0xFFFF}, {0x10000, 0x10FFFF}, {0x1F300, 0x1FAFF}]

  defp codepoint do
    PT.oneof([
      PT.oneof(Enum.map(@scalar_ranges, fn {lo, hi} -> PT.choose(lo, hi) end)),
      let(PT.tuple([PT.oneof(Enum.map(@scalar_ranges, &PT.exactly/1)), PT.binary(3)]), fn {{lo, hi}, <<r::24>>} ->
        lo + rem(r, hi - lo + 1)
      end)
    ])
  end

  # Bytes that are never valid UTF-8, whatever surrounds them: 0xFF, an overlong
  # NUL, an encoded surrogate, a code point past U+10FFFF. And some that are only
  # invalid in context: a truncated sequence, a lone continuation byte.
  @invalid_utf8 [<<0xFF>>, <<0xC0, 0x80>>, <<0xED, 0xA0, 0x80>>, <<0xF4, 0x90, 0x80, 0x80>>, <<0xE2, 0x82>>, <<0x80>>]

  def non_utf8 do
    PT.frequency([
      {4,
       let(PT.tuple([PT.binary(), PT.oneof(Enum.map(@invalid_utf8, &PT.exactly/1)), PT.binary()]), fn {a, bad, b} ->
         a <> bad <> b
       end)
       |> PT.add_constraint(&(not String.valid?(&1)), true)},
      # From 4 KiB up, Python bytes are shared, not copied.
      {1,
       let(PT.tuple([PT.choose(4094, 9000), PT.integer(0, 1_000_000)]), fn {n, seed} ->
         <<0xFF>> <> seeded_bytes(n, seed)
       end)}
    ])
  end

  defp seeded_bytes(n, seed) do
    {bytes, _} = :rand.bytes_s(n, :rand.seed_s(:exsss, seed))
    bytes
  end

  def calendar do
    PT.oneof([
      date(),
      time(),
      let(PT.tuple([date(), time()]), fn {d, t} -> NaiveDateTime.new!(d, t) end),
      let(PT.tuple([date(), time()]), fn {d, t} -> DateTime.new!(d, t, "Etc/UTC") end),
      PT.oneof(
        Enum.map(
          [
            ~D[0001-01-01],
            ~D[9999-12-31],
            ~D[2024-02-29],
            ~T[00:00:00],
            ~T[23:59:59.999999],
            ~N[0001-01-01 00:00:00],
            ~N[9999-12-31 23:59:59.999999],
            ~U[1970-01-01 00:00:00Z],
            ~U[9999-12-31 23:59:59.999999Z]
          ],
          &PT.exactly/1
        )
      )
    ])
  end

  defp date do
    let(PT.tuple([PT.choose(1, 9999), PT.choose(1, 12), PT.choose(1, 31)]), fn {y, m, d} ->
      Date.new!(y, m, min(d, Calendar.ISO.days_in_month(y, m)))
    end)
  end

  defp time do
    microsecond = PT.frequency([{1, PT.exactly({0, 0})}, {2, let(PT.choose(1, 999_999), &{&1, 6})}])

    let(PT.tuple([PT.choose(0, 23), PT.choose(0, 59), PT.choose(0, 59), microsecond]), fn {h, m, s, us} ->
      Time.new!(h, m, s, us)
    end)
  end

  # ------------------------------------------------------------------ containers

  defp value(0), do: leaf()

  defp value(d) do
    PT.frequency([
      {3, leaf()},
      {1, PT.lazy(fn -> bounded_list(value(d - 1)) end)},
      {1, PT.lazy(fn -> tuple_of(value(d - 1)) end)},
      {1, PT.lazy(fn -> map_of(hashable(d - 1), value(d - 1)) end)},
      {1, PT.lazy(fn -> mapset_of(hashable(d - 1)) end)}
    ])
  end

  # What may be a dict key or set element and come back unchanged: no lists (they
  # would come back as tuples), no maps (unhashable).
  defp hashable(0), do: leaf()

  defp hashable(d) do
    PT.frequency([
      {4, leaf()},
      {1, PT.lazy(fn -> tuple_of(hashable(d - 1)) end)},
      {1, PT.lazy(fn -> mapset_of(hashable(d - 1)) end)}
    ])
  end

  defp json(0) do
    PT.frequency([
      {1, PT.oneof([PT.exactly(nil), PT.exactly(true), PT.exactly(false)])},
      {3, integer()},
      {3, float()},
      {3, utf8()}
    ])
  end

  defp json(d) do
    PT.frequency([
      {3, json(0)},
      {1, PT.lazy(fn -> bounded_list(json(d - 1)) end)},
      {1, PT.lazy(fn -> map_of(utf8(), json(d - 1)) end)}
    ])
  end

  # A list of up to @max_len items (fewer while PropEr's size is small); the
  # items themselves are generated at the full size.
  defp bounded_list(gen) do
    PT.sized(fn size -> PT.resize(min(size, @max_len), PT.list(PT.resize(size, gen))) end)
  end

  defp tuple_of(gen), do: let(bounded_list(gen), &List.to_tuple/1)

  defp map_of(key, value) do
    let(bounded_list(PT.tuple([key, value])), fn pairs -> pairs |> Enum.uniq_by(&py_key(elem(&1, 0))) |> Map.new() end)
  end

  defp mapset_of(gen), do: let(bounded_list(gen), fn items -> items |> Enum.uniq_by(&py_key/1) |> MapSet.new() end)

  # ?LET whose body is a plain term, never cooked into a PropEr type.
  defp let(gen, fun), do: PT.bind(gen, fn x -> PT.exactly(fun.(x)) end, false)

  # ------------------------------------------------------------------ one bad item

  # A "hole" is a term with a single :__hole__ marker and the path to it; `fill/2`
  # puts the bad term there. Keeping the bad term out of generation keeps pids and
  # funs out of the dedup and shrinking machinery.
  defp poisoned(0, _), do: PT.exactly({:__hole__, []})

  defp poisoned(d, :value) do
    PT.frequency([
      {1, poisoned(0, :value)},
      {2, PT.lazy(fn -> in_sequence(value(d - 1), poisoned(d - 1, :value), & &1) end)},
      {1, PT.lazy(fn -> in_sequence(value(d - 1), poisoned(d - 1, :value), &List.to_tuple/1) end)},
      {2,
       PT.lazy(fn ->
         let(PT.tuple([map_of(hashable(d - 1), value(d - 1)), hashable(d - 1), poisoned(d - 1, :value)]), fn
           {map, key, {hole, steps}} ->
             map = map |> Enum.reject(fn {k, _} -> py_key(k) === py_key(key) end) |> Map.new()
             {Map.put(map, key, hole), [key | steps]}
         end)
       end)},
      {1,
       PT.lazy(fn ->
         let(PT.tuple([map_of(hashable(d - 1), value(d - 1)), poisoned(d - 1, :hashable), value(d - 1)]), fn
           {map, {hole, steps}, v} -> {Map.put(map, hole, v), [{:__key__, hole} | steps]}
         end)
       end)},
      {1, PT.lazy(fn -> in_mapset(d) end)}
    ])
  end

  defp poisoned(d, :hashable) do
    PT.frequency([
      {2, poisoned(0, :hashable)},
      {1, PT.lazy(fn -> in_sequence(hashable(d - 1), poisoned(d - 1, :hashable), &List.to_tuple/1) end)},
      {1, PT.lazy(fn -> in_mapset(d) end)}
    ])
  end

  defp in_sequence(item, hole, build) do
    let(PT.tuple([bounded_list(item), hole, bounded_list(item)]), fn {before, {h, steps}, rest} ->
      {build.(before ++ [h | rest]), [length(before) | steps]}
    end)
  end

  defp in_mapset(d) do
    let(PT.tuple([mapset_of(hashable(d - 1)), poisoned(d - 1, :hashable)]), fn {set, {hole, steps}} ->
      {MapSet.put(set, hole), [{:__key__, hole} | steps]}
    end)
  end

  # Replaces the marker with `bad`; map-key and set-element steps are the key or
  # element itself, so they get the bad term too.
  defp fill({term, steps}, bad) do
    steps =
      Enum.map(steps, fn
        {:__key__, key} -> replace(key, bad)
        step -> step
      end)

    {replace(term, bad), steps}
  end

  defp replace(:__hole__, bad), do: bad
  defp replace(%MapSet{} = s, bad), do: MapSet.new(s, &replace(&1, bad))
  defp replace(%_{} = struct, _bad), do: struct
  defp replace(map, bad) when is_map(map), do: Map.new(map, fn {k, v} -> {replace(k, bad), replace(v, bad)} end)
  defp replace(list, bad) when is_list(list), do: Enum.map(list, &replace(&1, bad))
  defp replace(tuple, bad) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> replace(bad) |> List.to_tuple()
  defp replace(other, _bad), do: other

  # ------------------------------------------------------------------ Python equality

  @doc """
  A term equal (`===`) to `py_key(b)` exactly when the Python values of `a` and `b`
  are equal as dict keys or set elements.

  Python compares numbers by value across types (True == 1 == 1.0, False == 0 ==
  0.0 == -0.0, 2**53 == 2.0**53 but 2**53 + 1 != 2.0**53), an atom is the str of
  its name, a list in a key is a tuple, a frozenset compares as a set, NaN is equal
  to nothing (not even another NaN object), date != datetime and naive != aware
  datetimes, aware datetimes compare as instants, and times/datetimes ignore
  Elixir's microsecond precision. A str never equals bytes, so binaries stay as they
  are (equal Python values come from equal binaries).
  """
  def py_key(true), do: 1
  def py_key(false), do: 0
  def py_key(nil), do: nil
  def py_key(:nan), do: {:nan, make_ref()}
  def py_key(:infinity), do: {:float, :infinity}
  def py_key(:neg_infinity), do: {:float, :neg_infinity}
  def py_key(atom) when is_atom(atom), do: Atom.to_string(atom)
  def py_key(n) when is_integer(n), do: n
  def py_key(f) when is_float(f), do: if(Float.floor(f) == f, do: trunc(f), else: f)
  def py_key(%MapSet{} = s), do: {:set, MapSet.new(s, &py_key/1)}
  def py_key(%Date{} = d), do: {:date, Date.to_erl(d)}
  def py_key(%Time{} = t), do: {:time, Time.to_erl(t), elem(t.microsecond, 0)}
  def py_key(%NaiveDateTime{} = n), do: {:naive, NaiveDateTime.to_erl(n), elem(n.microsecond, 0)}
  def py_key(%DateTime{} = dt), do: {:aware, DateTime.to_unix(dt, :microsecond)}
  def py_key(list) when is_list(list), do: py_key(List.to_tuple(list))
  def py_key(tuple) when is_tuple(tuple), do: {:tuple, tuple |> Tuple.to_list() |> Enum.map(&py_key/1)}
  def py_key(other), do: other

  @doc "True when no map or MapSet anywhere in `term` has two keys equal in Python."
  def collision_free?(%MapSet{} = s), do: distinct_in_python?(MapSet.to_list(s)) and Enum.all?(s, &collision_free?/1)
  def collision_free?(%_{}), do: true

  def collision_free?(map) when is_map(map) do
    distinct_in_python?(Map.keys(map)) and Enum.all?(map, fn {k, v} -> collision_free?(k) and collision_free?(v) end)
  end

  def collision_free?(list) when is_list(list), do: Enum.all?(list, &collision_free?/1)
  def collision_free?(tuple) when is_tuple(tuple), do: tuple |> Tuple.to_list() |> collision_free?()
  def collision_free?(_), do: true

  defp distinct_in_python?(keys), do: keys |> Enum.uniq_by(&py_key/1) |> length() == length(keys)

  # ------------------------------------------------------------------ comparison

  @doc """
  `===`, and floats also by bit pattern: on OTP 25 `-0.0 === 0.0`, but a round trip
  must keep the sign.
  """
  def identical?(a, b) when is_float(a) and is_float(b), do: <<a::float>> == <<b::float>>
  def identical?([a | as], [b | bs]), do: identical?(a, b) and identical?(as, bs)
  def identical?(a, b) when is_tuple(a) and is_tuple(b), do: identical?(Tuple.to_list(a), Tuple.to_list(b))

  def identical?(a, b) when is_map(a) and is_map(b) do
    map_size(a) == map_size(b) and identical?(Enum.sort(Map.to_list(a)), Enum.sort(Map.to_list(b)))
  end

  def identical?(a, b), do: a === b
end
