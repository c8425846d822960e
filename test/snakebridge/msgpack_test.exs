defmodule SnakeBridge.MsgpackTest do
  # SnakeBridge.Msgpack and its wire layer against the MessagePack specification
  # (https://github.com/msgpack/msgpack/blob/master/spec.md) and the spellings of
  # docs/protocol.md ("Values"): hand-written byte vectors for every format
  # family; requests as encode/2 spells them (it refuses nothing); replies as
  # decode/2 reads them; locate/2 resolving the port program's steps; and
  # malformed, truncated and hostile input. A request's bytes are turned into a
  # reply's by test/support/msgpack_reply.ex for the round trips. Properties
  # (PropEr) are in test/property/msgpack_property_test.exs.
  use ExUnit.Case, async: true

  import Bitwise

  alias SnakeBridge.Msgpack
  alias SnakeBridge.Msgpack.Wire
  alias SnakeBridge.Test.MsgpackReply

  doctest SnakeBridge.Msgpack
  doctest SnakeBridge.Msgpack.Wire

  defp enc(term, opts \\ []), do: term |> Msgpack.encode(opts) |> IO.iodata_to_binary()
  defp dec(binary, opts \\ []), do: Msgpack.decode(binary, opts)

  # Encodes to exactly `bytes`, and `bytes` decode to `back` (default: term).
  defp vector(term, bytes, back \\ :same) do
    assert enc(term) == bytes, "encoding #{inspect(term, limit: 8)}"
    expected = if back == :same, do: term, else: back
    assert {:ok, decoded} = dec(bytes)
    assert same?(decoded, expected), "decoding #{inspect(bytes, limit: 16)}: got #{inspect(decoded, limit: 8)}"
  end

  # === plus floats by bit pattern (-0.0 === 0.0 on OTP 25).
  defp same?(a, b), do: SnakeBridge.Test.PythonTerms.identical?(a, b)

  # The term sent, and read back as the program would reply with the same values.
  defp round_trip(term, opts \\ []), do: term |> enc(opts) |> MsgpackReply.reply() |> dec(opts)

  @tuple <<0xD4, 3, 0>>
  @set <<0xD4, 4, 0>>
  @struct <<0xD4, 12, 0>>
  @opaque_marker <<0xD4, 13, 0>>

  defp seq(n), do: Enum.to_list(1..n)
  defp nested_lists(0, leaf), do: leaf
  defp nested_lists(n, leaf), do: [nested_lists(n - 1, leaf)]

  describe "spec vectors: nil, bool" do
    test "nil, false, true" do
      vector(nil, <<0xC0>>)
      vector(false, <<0xC2>>)
      vector(true, <<0xC3>>)
    end
  end

  describe "spec vectors: int (smallest format)" do
    test "positive fixint" do
      vector(0, <<0x00>>)
      vector(1, <<0x01>>)
      vector(127, <<0x7F>>)
    end

    test "negative fixint" do
      vector(-1, <<0xFF>>)
      vector(-5, <<0xFB>>)
      vector(-32, <<0xE0>>)
    end

    test "uint 8/16/32/64" do
      vector(128, <<0xCC, 0x80>>)
      vector(255, <<0xCC, 0xFF>>)
      vector(256, <<0xCD, 0x01, 0x00>>)
      vector(65_535, <<0xCD, 0xFF, 0xFF>>)
      vector(65_536, <<0xCE, 0x00, 0x01, 0x00, 0x00>>)
      vector(0xFFFF_FFFF, <<0xCE, 0xFF, 0xFF, 0xFF, 0xFF>>)
      vector(0x1_0000_0000, <<0xCF, 0, 0, 0, 1, 0, 0, 0, 0>>)
      vector(1 <<< 60, <<0xCF, 0x10, 0, 0, 0, 0, 0, 0, 0>>)
      vector((1 <<< 64) - 1, <<0xCF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF>>)
    end

    test "int 8/16/32/64" do
      vector(-33, <<0xD0, 0xDF>>)
      vector(-128, <<0xD0, 0x80>>)
      vector(-129, <<0xD1, 0xFF, 0x7F>>)
      vector(-32_768, <<0xD1, 0x80, 0x00>>)
      vector(-32_769, <<0xD2, 0xFF, 0xFF, 0x7F, 0xFF>>)
      vector(-(1 <<< 31), <<0xD2, 0x80, 0, 0, 0>>)
      vector(-(1 <<< 31) - 1, <<0xD3, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF>>)
      vector(-(1 <<< 60), <<0xD3, 0xF0, 0, 0, 0, 0, 0, 0, 0>>)
      vector(-(1 <<< 63), <<0xD3, 0x80, 0, 0, 0, 0, 0, 0, 0>>)
    end

    test "the same integers inside a list and a tuple (both paths of Wire.items/2)" do
      some =
        [0, 127, -1, -32, 128, 255, 256, 65_535, 65_536, 0xFFFF_FFFF, 1 <<< 32, (1 <<< 64) - 1] ++
          [-33, -128, -129, -32_768, -32_769, -(1 <<< 31), -(1 <<< 31) - 1, -(1 <<< 63)]

      # 20 items: each its own piece; 40: appended to one binary.
      for ints <- [some, some ++ some] do
        one_by_one = Enum.map(ints, &enc/1)
        vector(ints, IO.iodata_to_binary([0xDC, <<length(ints)::16>> | one_by_one]))
        vector(List.to_tuple(ints), IO.iodata_to_binary([0xDC, <<length(ints) + 1::16>>, @tuple | one_by_one]))
      end
    end

    test "decoding accepts any int format, not only the smallest" do
      assert dec(<<0xCC, 0x05>>) == {:ok, 5}
      assert dec(<<0xCD, 0x00, 0x05>>) == {:ok, 5}
      assert dec(<<0xCE, 0, 0, 0, 5>>) == {:ok, 5}
      assert dec(<<0xCF, 0, 0, 0, 0, 0, 0, 0, 5>>) == {:ok, 5}
      assert dec(<<0xD0, 0x05>>) == {:ok, 5}
      assert dec(<<0xD1, 0xFF, 0xFF>>) == {:ok, -1}
      assert dec(<<0xD2, 0xFF, 0xFF, 0xFF, 0xFF>>) == {:ok, -1}
      assert dec(<<0xD3, 0, 0, 0, 0, 0, 0, 0, 5>>) == {:ok, 5}

      assert dec(<<0x93, 0xCC, 0x05, 0xD3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xD0, 0x05>>) ==
               {:ok, [5, -1, 5]}
    end
  end

  describe "spec vectors: float" do
    test "floats are always float64" do
      vector(1.5, <<0xCB, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0>>)
      vector(0.0, <<0xCB, 0, 0, 0, 0, 0, 0, 0, 0>>)
      vector(-2.0, <<0xCB, 0xC0, 0, 0, 0, 0, 0, 0, 0>>)
      vector(0.1, <<0xCB, 0x3F, 0xB9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A>>)
      vector(5.0e-324, <<0xCB, 0, 0, 0, 0, 0, 0, 0, 1>>)
      vector(1.7976931348623157e308, <<0xCB, 0x7F, 0xEF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF>>)
      vector([1.5, 0.5], <<0x92, 0xCB, 0x3F, 0xF8, 0::48, 0xCB, 0x3F, 0xE0, 0::48>>)
    end

    test "-0.0 keeps its sign" do
      <<negative_zero::float>> = <<0x80, 0::56>>
      vector(negative_zero, <<0xCB, 0x80, 0, 0, 0, 0, 0, 0, 0>>)
      vector([negative_zero], <<0x91, 0xCB, 0x80, 0, 0, 0, 0, 0, 0, 0>>)
    end

    test "a raw inf, -inf or nan decodes to :infinity, :neg_infinity, :nan" do
      assert dec(<<0xCB, 0x7F, 0xF0, 0, 0, 0, 0, 0, 0>>) == {:ok, :infinity}
      assert dec(<<0xCB, 0xFF, 0xF0, 0, 0, 0, 0, 0, 0>>) == {:ok, :neg_infinity}
      assert dec(<<0xCB, 0x7F, 0xF8, 0, 0, 0, 0, 0, 0>>) == {:ok, :nan}
      # Any NaN payload or sign is :nan; in a list too.
      assert dec(<<0xCB, 0xFF, 0xF8, 0, 0, 0, 0, 0, 1>>) == {:ok, :nan}
      assert dec(<<0x92, 0xCB, 0x7F, 0xF0, 0::48, 0x01>>) == {:ok, [:infinity, 1]}
    end

    test "float32 decodes (it is never encoded)" do
      assert dec(<<0xCA, 0x3F, 0xC0, 0, 0>>) == {:ok, 1.5}
      assert dec(<<0xCA, 0xC0, 0x20, 0, 0>>) == {:ok, -2.5}
      assert dec(<<0xCA, 0x7F, 0x80, 0, 0>>) == {:ok, :infinity}
      assert dec(<<0xCA, 0xFF, 0x80, 0, 0>>) == {:ok, :neg_infinity}
      assert dec(<<0xCA, 0x7F, 0xC0, 0, 0>>) == {:ok, :nan}
      assert dec(<<0xCA, 0x7F, 0x80, 0, 1>>) == {:ok, :nan}
      assert {:ok, f} = dec(<<0xCA, 0x80, 0, 0, 0>>)
      assert <<f::float>> == <<0x80, 0::56>>
    end
  end

  describe "spec vectors: str (decoded; requests send atoms only as str)" do
    test "fixstr, str8, str16, str32 decode to binaries" do
      assert dec(<<0xA0>>) == {:ok, ""}
      assert dec(<<0xA2, 0xC3, 0xA9>>) == {:ok, "é"}
      s31 = String.duplicate("x", 31)
      assert dec(<<0xBF, s31::binary>>) == {:ok, s31}
      s255 = String.duplicate("x", 255)
      assert dec(<<0xD9, 0xFF, s255::binary>>) == {:ok, s255}
      s256 = String.duplicate("x", 256)
      assert dec(<<0xDA, 0x01, 0x00, s256::binary>>) == {:ok, s256}
      s65536 = String.duplicate("é", 32_768)
      assert dec(<<0xDB, 0x00, 0x01, 0x00, 0x00, s65536::binary>>) == {:ok, s65536}
    end

    test "a str that is not UTF-8 decodes to the binary as it is" do
      assert dec(<<0xA2, 0xFF, 0xFE>>) == {:ok, <<0xFF, 0xFE>>}
      assert dec(<<0xD9, 1, 0x80>>) == {:ok, <<0x80>>}
    end

    test "Wire.str/1 writes each str format" do
      for {s, header} <- [
            {"", <<0xA0>>},
            {String.duplicate("x", 31), <<0xBF>>},
            {String.duplicate("x", 32), <<0xD9, 32>>},
            {String.duplicate("x", 255), <<0xD9, 255>>},
            {String.duplicate("x", 256), <<0xDA, 1, 0>>},
            {String.duplicate("x", 65_535), <<0xDA, 0xFF, 0xFF>>},
            {String.duplicate("x", 65_536), <<0xDB, 0, 1, 0, 0>>}
          ] do
        assert IO.iodata_to_binary(Wire.str(s)) == header <> s
      end
    end
  end

  describe "spec vectors: bin" do
    test "bin8, bin16, bin32" do
      vector(<<0xFF>>, <<0xC4, 1, 0xFF>>)
      vector("", <<0xC4, 0>>)
      b255 = :binary.copy(<<0xFF>>, 255)
      vector(b255, <<0xC4, 0xFF, b255::binary>>)
      b256 = :binary.copy(<<0xFE>>, 256)
      vector(b256, <<0xC5, 0x01, 0x00, b256::binary>>)
      b65535 = :binary.copy(<<0x80>>, 65_535)
      vector(b65535, <<0xC5, 0xFF, 0xFF, b65535::binary>>)
      b65536 = :binary.copy(<<0xC0>>, 65_536)
      vector(b65536, <<0xC6, 0x00, 0x01, 0x00, 0x00, b65536::binary>>)
    end

    test "every binary is bin, valid UTF-8 or not (the core tells str from bytes)" do
      for b <- ["a", "日本語", "😀", <<0xFF>>, <<0xED, 0xA0, 0x80>>, String.duplicate("é", 40), <<0xC3>>] do
        assert <<tag, _::binary>> = enc(b)
        assert tag in [0xC4, 0xC5, 0xC6], "#{inspect(b)} should be bin"
        assert <<0x91, ^tag, _::binary>> = enc([b])
      end
    end
  end

  describe "spec vectors: array" do
    test "fixarray" do
      vector([], <<0x90>>)
      vector([1, [2, []]], <<0x92, 0x01, 0x92, 0x02, 0x90>>)
      vector(seq(15), <<0x9F, :erlang.list_to_binary(seq(15))::binary>>)
    end

    test "array16, array32" do
      vector(seq(16), <<0xDC, 0x00, 0x10, :erlang.list_to_binary(seq(16))::binary>>)
      zeros = List.duplicate(0, 65_535)
      vector(zeros, <<0xDC, 0xFF, 0xFF, :binary.copy(<<0>>, 65_535)::binary>>)
      zeros = List.duplicate(0, 65_536)
      vector(zeros, <<0xDD, 0x00, 0x01, 0x00, 0x00, :binary.copy(<<0>>, 65_536)::binary>>)
    end

    test "mixed items, batched and not" do
      long = String.duplicate("s", 64)
      items = [1, "a", <<0xFF>>, nil, true, false, 2.5, [3], %{}, {}, :x, 1 <<< 70, long]

      expected =
        IO.iodata_to_binary(
          [0x9D, 1, 0xC4, 1, ?a, 0xC4, 1, 0xFF, 0xC0, 0xC3, 0xC2, enc(2.5), 0x91, 3, 0x80, 0x91, @tuple] ++
            [0xA1, ?x, enc(1 <<< 70), 0xC4, 64, long]
        )

      decoded = [1, "a", <<0xFF>>, nil, true, false, 2.5, [3], %{}, {}, "x", 1 <<< 70, long]
      vector(items, expected, decoded)

      # Three times over (39 items): the scalars' runs appended to binaries.
      <<0x9D, body::binary>> = expected
      vector(items ++ items ++ items, <<0xDC, 39::16>> <> body <> body <> body, decoded ++ decoded ++ decoded)
    end

    test "decoding array16/array32 with few items" do
      assert dec(<<0xDC, 0, 0>>) == {:ok, []}
      assert dec(<<0xDC, 0, 2, 1, 2>>) == {:ok, [1, 2]}
      assert dec(<<0xDD, 0, 0, 0, 1, 0xA1, ?z>>) == {:ok, ["z"]}
    end
  end

  describe "spec vectors: map" do
    test "fixmap" do
      vector(%{}, <<0x80>>)
      vector(%{"a" => 1}, <<0x81, 0xC4, 1, ?a, 0x01>>)
      map15 = Map.new(1..15, &{&1, nil})
      assert <<0x8F, _::binary>> = enc(map15)
      assert dec(enc(map15)) == {:ok, map15}
    end

    test "map16, map32" do
      map16 = Map.new(1..16, &{&1, &1})
      assert <<0xDE, 0x00, 0x10, _::binary>> = enc(map16)
      assert dec(enc(map16)) == {:ok, map16}
      map65536 = Map.new(0..65_535, &{&1, true})
      assert <<0xDF, 0x00, 0x01, 0x00, 0x00, _::binary>> = enc(map65536)
      assert dec(enc(map65536)) == {:ok, map65536}
    end

    test "decoding a map written out entry by entry" do
      assert dec(<<0x82, 0xA1, ?a, 0x01, 0xA1, ?b, 0x92, 0x02, 0x03>>) == {:ok, %{"a" => 1, "b" => [2, 3]}}
      assert dec(<<0xDE, 0, 1, 0x01, 0xC0>>) == {:ok, %{1 => nil}}
      assert dec(<<0xDF, 0, 0, 0, 1, 0xC3, 0xC2>>) == {:ok, %{true => false}}
      # Keys of any type.
      assert dec(<<0x81, 0x91, 0x01, 0x02>>) == {:ok, %{[1] => 2}}
    end
  end

  describe "spec vectors: ext" do
    test "fixext 1/2/4/8/16 and ext 8/16/32, by the size of a Bytes payload" do
      for {n, header} <- [
            {1, <<0xD4, 10>>},
            {2, <<0xD5, 10>>},
            {4, <<0xD6, 10>>},
            {8, <<0xD7, 10>>},
            {16, <<0xD8, 10>>},
            {0, <<0xC7, 0, 10>>},
            {3, <<0xC7, 3, 10>>},
            {255, <<0xC7, 255, 10>>},
            {256, <<0xC8, 1, 0, 10>>},
            {65_535, <<0xC8, 0xFF, 0xFF, 10>>},
            {65_536, <<0xC9, 0, 1, 0, 0, 10>>}
          ] do
        data = :binary.copy(<<7>>, n)
        assert enc(SnakeBridge.bytes(data)) == header <> data
      end
    end

    test "decoding reads every ext format" do
      assert dec(<<0xD4, 11, ?a>>) == {:ok, :a}
      assert dec(<<0xD5, 11, "ok">>) == {:ok, :ok}
      assert dec(<<0xD6, 11, "true">>) == {:ok, true}
      assert dec(<<0xD7, 1, 9::64>>) == {:ok, {:snakebridge_handle, 9, ""}}
      assert dec(<<0xD8, 2, 0, 1::120-little>>) == {:ok, 1}
      assert dec(<<0xC7, 4, 11, "cont">>) == {:ok, :cont}
      assert dec(<<0xC8, 0, 4, 11, "done">>) == {:ok, :done}
      assert dec(<<0xC9, 0, 0, 0, 6, 11, "python">>) == {:ok, :python}
    end
  end

  describe "requests: what encode/2 spells" do
    test "atoms other than nil/true/false are str of their name, whatever the name" do
      assert enc(:abc) == <<0xA3, "abc">>
      assert enc(:é) == <<0xA2, 0xC3, 0xA9>>
      assert enc(:日本語) == IO.iodata_to_binary(Wire.str("日本語"))
      assert enc(Enum) == <<0xAB, "Elixir.Enum">>
      # The core makes floats of these; the encoder does not.
      assert enc([:infinity, :neg_infinity, :nan]) == <<0x93, 0xA8, "infinity", 0xAC, "neg_infinity", 0xA3, "nan">>
      assert dec(enc([:a, :b])) == {:ok, ["a", "b"]}
    end

    test "integers beyond 64 bits are ext 2: sign byte, magnitude little-endian" do
      # 2^64: sign 0, magnitude 00 x 8, 01.
      vector(1 <<< 64, <<0xC7, 10, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x01>>)
      # -2^63 - 1: sign 1, magnitude 2^63 + 1.
      vector(-(1 <<< 63) - 1, <<0xC7, 9, 0x02, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0x80>>)
      vector(-(1 <<< 64), <<0xC7, 10, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x01>>)
      # A payload of 16 bytes: sign + 15-byte magnitude, fixext 16.
      vector(1 <<< 119, <<0xD8, 0x02, 0x00, 0::112, 0x80>>)
      big = Integer.pow(3, 5000)
      assert dec(enc([big, -big])) == {:ok, [big, -big]}
    end

    test "SnakeBridge.bytes/1 is ext 10 with the bytes" do
      assert enc(SnakeBridge.bytes("abc")) == <<0xC7, 3, 10, "abc">>
      assert enc([SnakeBridge.bytes("")]) == <<0x91, 0xC7, 0, 10>>
      big = String.duplicate("a", 70_000)
      assert enc(SnakeBridge.bytes(big)) == <<0xC9, 70_000::32, 10, big::binary>>
      assert round_trip(SnakeBridge.bytes("abc")) == {:ok, "abc"}
    end

    test "a tuple is an array of n + 1: the tuple marker, then the elements" do
      vector({}, <<0x91, @tuple::binary>>)
      vector({1, "a"}, <<0x93, @tuple::binary, 0x01, 0xC4, 1, ?a>>)
      vector({{}}, <<0x92, @tuple::binary, 0x91, @tuple::binary>>)
      t15 = List.to_tuple(seq(15))
      vector(t15, <<0xDC, 0, 16, @tuple::binary, :erlang.list_to_binary(seq(15))::binary>>)
      vector({[1], %{}}, <<0x93, @tuple::binary, 0x91, 0x01, 0x80>>)
    end

    test "a MapSet is an array of n + 1: the set marker, then the elements in MapSet.to_list/1 order" do
      vector(MapSet.new(), <<0x91, @set::binary>>)
      vector(MapSet.new([1]), <<0x92, @set::binary, 0x01>>)
      big = MapSet.new(1..100, &"e#{&1}")
      elements = big |> MapSet.to_list() |> Enum.map(&enc/1)
      vector(big, IO.iodata_to_binary([0xDC, <<101::16>>, @set | elements]))
      # Elements are spelled as anywhere else: a list stays a list.
      set = MapSet.new([[1], MapSet.new([2])])
      vector(set, enc_set(MapSet.to_list(set)))
    end

    test "a map's entries go in :maps.to_list/1 order, hash-ordered maps (more than 32 keys) too" do
      for map <- [%{b: 1, a: 2}, Map.new(1..40, &{"k#{&1}", &1}), Map.new(1..100, &{{&1}, [&1]})] do
        entries = Enum.map(:maps.to_list(map), fn {k, v} -> [enc(k), enc(v)] end)
        assert enc(map) == IO.iodata_to_binary([Wire.map_header(map_size(map)) | entries])
      end
    end

    test "keys are spelled as any value: lists stay lists, maps may be keys" do
      vector(%{[1] => 2}, <<0x81, 0x91, 0x01, 0x02>>)
      vector(%{%{} => MapSet.new([%{}])}, <<0x81, 0x80, 0x92, @set::binary, 0x80>>)
      assert enc(%{:k => :v}) == <<0x81, 0xA1, ?k, 0xA1, ?v>>
    end

    test "%SnakeBridge.Object{} is ext 1 with the id from :handle_id" do
      object = %SnakeBridge.Object{ref: make_ref(), type: "collections.Counter"}
      handle_id = fn %SnakeBridge.Object{} -> {:ok, 0x0102030405060708} end
      assert enc(object, handle_id: handle_id) == <<0xD7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8>>
      assert enc([object], handle_id: handle_id) == <<0x91, 0xD7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8>>

      assert enc(%{object => MapSet.new([object])}, handle_id: handle_id) ==
               <<0x81, 0xD7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x92, @set::binary, 0xD7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8>>
    end

    test "an Object without a handle id is the opaque marker (the program refuses it)" do
      object = %SnakeBridge.Object{ref: make_ref(), type: "x"}
      assert enc(object) == @opaque_marker
      assert enc([0, object], handle_id: fn _ -> :error end) == <<0x92, 0x00, @opaque_marker::binary>>
      # An answer out of the id's range is no id either.
      assert enc(object, handle_id: fn _ -> {:ok, -1} end) == @opaque_marker
      assert enc(object, handle_id: fn _ -> {:ok, 1 <<< 64} end) == @opaque_marker
    end

    test "any other struct is an array of 3: the struct marker, the module name, the fields as a map" do
      date = ~D[2024-02-29]
      fields = Map.from_struct(date)
      assert enc(date) == IO.iodata_to_binary([0x93, @struct, 0xAB, "Elixir.Date", enc(fields)])
      assert enc(fields) =~ <<0xA4, "year", 0xCD, 2024::16>>

      point = %SnakeBridge.Test.EncoderFixtures.Point{x: 1, y: 2}
      name = Atom.to_string(SnakeBridge.Test.EncoderFixtures.Point)
      assert enc(point) == IO.iodata_to_binary([0x93, @struct, Wire.str(name), 0x82, enc(:x), 1, enc(:y), 2])

      # Whatever the fields hold, spelled by the same rules.
      assert enc(%{~D[2020-01-01] | year: "2020"}) =~ <<0xA4, "year", 0xC4, 4, "2020">>
      assert enc(%{~U[2020-01-01 00:00:00Z] | time_zone: <<1::3>>}) =~ <<0xA9, "time_zone", @opaque_marker::binary>>
    end

    test "Date, Time, NaiveDateTime and DateTime come back from the program unchanged" do
      paris = %DateTime{
        year: 2024,
        month: 7,
        day: 1,
        hour: 12,
        minute: 0,
        second: 0,
        microsecond: {250_000, 3},
        time_zone: "Europe/Paris",
        zone_abbr: "CEST",
        utc_offset: 3600,
        std_offset: 3600
      }

      for term <- [
            ~D[2024-02-29],
            ~D[0001-01-01],
            ~T[10:20:30],
            ~T[23:59:59.999999],
            ~T[10:00:00.120],
            ~N[2020-01-02 03:04:05.5],
            ~U[2020-01-02 03:04:05Z],
            paris
          ] do
        assert round_trip(term) == {:ok, term}
      end
    end

    test "structs that are not what they claim are spelled as structs" do
      assert <<0x93, @struct::binary, _::binary>> = enc(%MapSet{map: :x})
      assert <<0x93, @struct::binary, _::binary>> = enc(%SnakeBridge.Bytes{data: 1})
      assert <<0x93, @struct::binary, _::binary>> = enc(Version.parse!("1.2.3"))
      assert <<0x93, @struct::binary, 0xAC, "not_a_module", _::binary>> = enc(%{__struct__: :not_a_module})
      # A map whose __struct__ is not an atom is a plain map.
      assert enc(%{__struct__: "x"}) == <<0x81, 0xAA, "__struct__", 0xC4, 1, ?x>>
    end

    test "pids, ports, references and functions are ext 14, their external term format, read back as themselves" do
      port = hd(Port.list())

      for term <- [self(), port, make_ref(), fn -> :ok end, &String.upcase/1] do
        etf = :erlang.term_to_binary(term)
        assert enc(term) == IO.iodata_to_binary(SnakeBridge.Msgpack.Wire.ext(14, etf))
        assert dec(enc([0, term])) == {:ok, [0, term]}
      end

      # A payload that is not a term is refused.
      assert dec(<<0xD5, 14, 131, 0>>) == {:error, {:invalid_ext, 14}}
    end

    test "improper lists and bitstrings are the opaque marker" do
      for bad <- [[1 | 2], [1, 2 | 3], <<1::3>>] do
        assert enc(bad) == @opaque_marker
        assert enc([0, bad]) == <<0x92, 0x00, @opaque_marker::binary>>
        assert enc({bad}) == <<0x92, @tuple::binary, @opaque_marker::binary>>
        assert enc(%{bad => bad}) == <<0x81, @opaque_marker::binary, @opaque_marker::binary>>
      end
    end

    test "nesting has no limit here (the program has one)" do
      deep = nested_lists(5000, 1)
      assert enc(deep) == :binary.copy(<<0x91>>, 5000) <> <<0x01>>
      deep_map = Enum.reduce(1..3000, 0, fn _, acc -> %{"k" => acc} end)
      assert byte_size(enc(deep_map)) == 3000 * 4 + 1
    end

    test "encode returns iodata (a lone byte is wrapped)" do
      for term <- [0, 5, -1, nil, true, false, "a", [1], %{1 => 2}, {1}, 1.5, 1 <<< 80, :a, self()] do
        iodata = Msgpack.encode(term)
        assert is_binary(iodata) or is_list(iodata)
        assert IO.iodata_length(iodata) == byte_size(IO.iodata_to_binary(iodata))
      end

      assert Msgpack.encode!([1, :a]) == Msgpack.encode([1, :a])
    end

    test "values concatenate into a larger message" do
      parts = [Msgpack.encode(7), Msgpack.encode("call"), Msgpack.encode([1, {2}])]
      assert dec(IO.iodata_to_binary([0x93 | parts])) == {:ok, [7, "call", [1, {2}]]}
    end

    test "options are checked" do
      assert_raise ArgumentError, ~r/:handle_id/, fn -> Msgpack.encode(1, handle: & &1) end
      assert_raise ArgumentError, ~r/:handle_id/, fn -> Msgpack.encode(1, handle_id: 1) end
      assert_raise ArgumentError, ~r/:handle/, fn -> Msgpack.decode(<<1>>, handle_id: & &1) end
    end
  end

  defp enc_set(elements), do: IO.iodata_to_binary([0x90 + length(elements) + 1, @set | Enum.map(elements, &enc/1)])

  describe "replies: what decode/2 reads" do
    test "an array that starts with the tuple marker is a tuple of the rest" do
      assert dec(<<0x91, @tuple::binary>>) == {:ok, {}}
      assert dec(<<0x93, @tuple::binary, 0x01, 0x92, @tuple::binary, 0xC0>>) == {:ok, {1, {nil}}}
      assert dec(<<0xDC, 0, 2, @tuple::binary, 0xA1, ?a>>) == {:ok, {"a"}}
      assert dec(<<0x81, 0x92, @tuple::binary, 0x01, 0x02>>) == {:ok, %{{1} => 2}}
    end

    test "an array that starts with the set marker is a MapSet of the rest" do
      assert dec(<<0x91, @set::binary>>) == {:ok, MapSet.new()}
      assert dec(<<0x93, @set::binary, 0x01, 0x92, @tuple::binary, 0x02>>) == {:ok, MapSet.new([1, {2}])}
    end

    test "a marker anywhere but first in an array is refused" do
      for bytes <- [
            @tuple,
            @set,
            <<0x92, 0x01, @tuple::binary>>,
            <<0x92, @tuple::binary, @tuple::binary>>,
            <<0x81, @tuple::binary, 0x01>>,
            <<0x81, 0x01, @set::binary>>,
            # The marker's value in another ext format is no marker.
            <<0x91, 0xC7, 1, 3, 0>>
          ] do
        assert dec(bytes) == {:error, :misplaced_marker}, inspect(bytes)
      end
    end

    test "a fixext 1 first in an array that is no marker is the list's first item" do
      assert dec(<<0x92, 0xD4, 11, ?a, 0x01>>) == {:ok, [:a, 1]}
      assert dec(<<0x91, 0xD4, 2, 0>>) == {:ok, [0]}
    end

    test "ext 1: handles, through :handle, with the type name copied out of the frame" do
      wire = <<0xC7, 8 + 19, 0x01, 0x0102030405060708::64, "collections.Counter">>
      assert dec(wire) == {:ok, {:snakebridge_handle, 0x0102030405060708, "collections.Counter"}}
      assert dec(<<0x91, 0xD7, 0x01, (1 <<< 64) - 1::64>>) == {:ok, [{:snakebridge_handle, (1 <<< 64) - 1, ""}]}
      handle = fn id, type -> {:obj, id, type} end

      assert dec(<<0x92, wire::binary, wire::binary>>, handle: handle) ==
               {:ok, List.duplicate({:obj, 0x0102030405060708, "collections.Counter"}, 2)}

      frame = <<0x92, wire::binary, 0xC6, 100_000::32, :binary.copy(<<0>>, 100_000)::binary>>
      {:ok, [{:snakebridge_handle, _, name}, _]} = dec(frame)
      assert :binary.referenced_byte_size(name) == byte_size(name)
    end

    test "ext 2: lenient about trailing zeros, a magnitude that fits 64 bits, an empty one" do
      assert dec(<<0xD6, 0x02, 0x00, 0x05, 0x00, 0x00>>) == {:ok, 5}
      assert dec(<<0xD6, 0x02, 0x01, 0x05, 0x00, 0x00>>) == {:ok, -5}
      assert dec(<<0xC7, 1, 0x02, 0x01>>) == {:ok, 0}
    end

    test "ext 6..9: calendar values with the precision the program chose" do
      assert dec(<<0xC7, 6, 6, 0x93, 0xCD, 2024::16, 2, 29>>) == {:ok, ~D[2024-02-29]}
      assert dec(<<0xC7, 6, 7, 0x95, 10, 20, 30, 0, 0>>) == {:ok, ~T[10:20:30]}
      assert dec(<<0xC7, 10, 7, 0x95, 10, 0, 0, 0xCE, 120_000::32, 3>>) == {:ok, ~T[10:00:00.120]}
      assert dec(<<0xC7, 10, 7, 0x95, 10, 0, 0, 0xCE, 120_000::32, 6>>) == {:ok, ~T[10:00:00.120000]}

      assert dec(<<0xC7, 11, 8, 0x98, 0xCD, 2020::16, 1, 2, 3, 4, 5, 0, 0>>) == {:ok, ~N[2020-01-02 03:04:05]}

      payload = <<0x9C, 0xCD, 2020::16, 1, 2, 3, 4, 5, 0, 0, 0xA7, "Etc/UTC", 0xA3, "UTC", 0, 0>>
      assert dec(<<0xC7, byte_size(payload), 9, payload::binary>>) == {:ok, ~U[2020-01-02 03:04:05Z]}

      # Negative offsets; zone names as bin; zone names copied out of the frame.
      payload =
        <<0x9C, 0xCD, 2020::16, 1, 2, 3, 4, 5, 0, 0, 0xC4, 16, "America/New_York", 0xA3, "EST", 0xD1, -18_000::16, 0>>

      ny = <<0xC7, byte_size(payload), 9, payload::binary>>

      assert {:ok, %DateTime{utc_offset: -18_000, std_offset: 0, time_zone: "America/New_York", zone_abbr: "EST"}} =
               dec(ny)

      {:ok, [%DateTime{time_zone: tz}, _]} =
        dec(<<0x92, ny::binary, 0xC6, 100_000::32, :binary.copy(<<0>>, 100_000)::binary>>)

      assert :binary.referenced_byte_size(tz) == byte_size(tz)
    end

    test "ext 11: an atom that exists; no new atom is made" do
      assert dec(<<0x93, @tuple::binary, 0xD6, 11, "cont", 0xC7, 8, 11, "infinity">>) == {:ok, {:cont, :infinity}}
      assert dec(<<0xC7, 3, 11, 0xC3, 0xA9, ?x>>) == {:error, {:invalid_ext, 11}}
      assert dec(<<0xC7, 33, 11, "snakebridge_no_such_atom_3f9a1c7e">>) == {:error, {:invalid_ext, 11}}
      assert dec(<<0xC7, 1, 11, 0xFF>>) == {:error, {:invalid_ext, 11}}
    end

    test "decoded strings share the input binary (no copy)" do
      big = String.duplicate("x", 1000)
      frame = enc(["a", big])
      assert {:ok, ["a", s]} = dec(frame)
      assert :binary.referenced_byte_size(s) == byte_size(frame)
    end

    test "duplicate keys (Python's 'a' and b'a') are reported, not merged" do
      assert dec(<<0x82, 0xA1, ?a, 0x01, 0xC4, 1, ?a, 0x02>>) == {:error, {:duplicate_key, "a"}}

      assert dec(<<0x83, 0x01, 0xC0, 0xA1, ?b, 0xC0, 0x91, @set::binary, 0xC0>>) ==
               {:ok, %{1 => nil, "b" => nil, MapSet.new() => nil}}

      assert dec(<<0x83, 0xC0, 0x01, 0xC3, 0x02, 0xC0, 0x03>>) == {:error, {:duplicate_key, nil}}
      nan = <<0xCB, 0x7F, 0xF8, 0::48>>
      assert dec(<<0x82, nan::binary, 1, nan::binary, 2>>) == {:error, {:duplicate_key, :nan}}
      # Sets likewise.
      assert dec(<<0x93, @set::binary, 0xA1, ?a, 0xC4, 1, ?a>>) == {:error, {:duplicate_key, "a"}}
      # A map inside a list inside a map.
      assert dec(<<0x81, 0x01, 0x91, 0x82, 0x02, 0x02, 0x02, 0x03>>) == {:error, {:duplicate_key, 2}}
    end

    test "decode! raises ArgumentError" do
      assert_raise ArgumentError, ~r/invalid MessagePack: :truncated/, fn -> Msgpack.decode!(<<0x92>>) end
      assert Msgpack.decode!(<<0x01>>) == 1
    end
  end

  describe "round trips through a reply" do
    test "every spelled type, nested" do
      <<negative_zero::float>> = <<0x80, 0::56>>
      object = %SnakeBridge.Object{ref: 7, type: "t"}

      term = %{
        "ints" => [0, -1, 127, 128, -33, 1 <<< 40, -(1 <<< 40), (1 <<< 64) - 1, -(1 <<< 63), 1 <<< 64, -(1 <<< 200)],
        "floats" => [0.0, negative_zero, 1.0e300, -5.0e-324],
        "text" => ["", "héllo", "日本語 😀", String.duplicate("ab", 40_000)],
        "bytes" => [<<0xFF, 0>>, :binary.copy(<<0x80>>, 70_000), SnakeBridge.bytes("b")],
        {1, "two", {3.0}} => MapSet.new([1, "a", {2, MapSet.new([nil])}]),
        MapSet.new([~D[2020-01-01], ~T[01:02:03]]) => [~N[2000-02-29 23:59:59.000001], ~U[1999-12-31 23:59:59Z]],
        [1, [2]] => %{%{} => {}},
        nil => true,
        false => object,
        -1.5 => [[[[]]], %{}, {{}}]
      }

      handle_id = fn %SnakeBridge.Object{ref: id} -> {:ok, id} end
      handle = fn id, _type -> %SnakeBridge.Object{ref: id, type: "t"} end
      assert {:ok, back} = term |> enc(handle_id: handle_id) |> MsgpackReply.reply() |> dec(handle: handle)
      assert same?(back, %{term | "bytes" => [<<0xFF, 0>>, :binary.copy(<<0x80>>, 70_000), "b"]})
    end

    test "atoms come back as their names: two keys may then be one" do
      assert round_trip(%{a: :b}) == {:ok, %{"a" => "b"}}
      assert round_trip(%{:a => 1, "a" => 2}) == {:error, {:duplicate_key, "a"}}
      assert round_trip(MapSet.new([:a, "a"])) == {:error, {:duplicate_key, "a"}}
    end
  end

  describe "locate/2: from the program's steps to the term and its in-process path" do
    test "list items, tuple elements (not counting the marker)" do
      pid = self()
      assert Msgpack.locate([0, [1, pid]], [1, 1]) == {:ok, pid, [1, 1]}
      assert Msgpack.locate({:a, {:b, pid}}, [1, 1]) == {:ok, pid, [1, 1]}
      assert Msgpack.locate({:a}, [0]) == {:ok, :a, [0]}
      assert Msgpack.locate([1, 2], []) == {:ok, [1, 2], []}
      assert Msgpack.locate(pid, []) == {:ok, pid, []}
    end

    test "a keyword list is a list of pairs: the pair, then its value" do
      pid = self()
      kw = [cls: pid, indent: 2]
      assert Msgpack.locate(kw, [0]) == {:ok, {:cls, pid}, [0]}
      assert Msgpack.locate(kw, [0, 1]) == {:ok, pid, [0, 1]}
      assert Msgpack.locate(kw, [1, 0]) == {:ok, :indent, [1, 0]}
      assert Msgpack.locate([1, [a: [b: pid]]], [1, 0, 1, 0, 1]) == {:ok, pid, [1, 0, 1, 0, 1]}
      assert Msgpack.locate(kw, [2]) == :error
    end

    test "map entries: {:entry, i} is the value, {:key, i} the key; the path names the key for both" do
      pid = self()
      map = %{"k" => {1, pid}, {2, pid} => :v}
      i = Enum.find_index(:maps.to_list(map), &match?({"k", _}, &1))
      assert Msgpack.locate(map, [{:entry, i}, 1]) == {:ok, pid, ["k", 1]}
      j = 1 - i
      assert Msgpack.locate(map, [{:key, j}]) == {:ok, {2, pid}, [{2, pid}]}
      assert Msgpack.locate(map, [{:key, j}, 1]) == {:ok, pid, [{2, pid}, 1]}
      assert Msgpack.locate(map, [{:entry, j}]) == {:ok, :v, [{2, pid}]}
      assert Msgpack.locate(%{pid => 1}, [{:key, 0}]) == {:ok, pid, [pid]}
    end

    test "maps of more than 32 keys (hash-ordered): the i-th entry as encode/2 wrote it" do
      pid = self()
      map = Map.new(1..50, &{"k#{&1}", &1}) |> Map.put("k37", [0, pid]) |> Map.put([pid], 0)

      for {steps, tree} <- MsgpackReply.positions(MsgpackReply.tree(enc(map))) do
        assert {:ok, term, path} = Msgpack.locate(map, steps)
        assert enc(term) == MsgpackReply.raw(tree), "at #{inspect(steps)}"
        assert length(path) == length(steps)
      end

      i = Enum.find_index(:maps.to_list(map), &match?({"k37", _}, &1))
      assert Msgpack.locate(map, [{:entry, i}, 1]) == {:ok, pid, ["k37", 1]}
      j = Enum.find_index(:maps.to_list(map), &match?({[_], _}, &1))
      assert Msgpack.locate(map, [{:key, j}, 0]) == {:ok, pid, [[pid], 0]}

      nested = %{"outer" => map}
      assert Msgpack.locate(nested, [{:entry, 0}, {:entry, i}, 1]) == {:ok, pid, ["outer", "k37", 1]}
    end

    test "MapSet elements in MapSet.to_list/1 order; the path gives the element itself" do
      pid = self()
      set = MapSet.new([1, {:x, pid}, "a"])
      i = Enum.find_index(MapSet.to_list(set), &is_tuple/1)
      assert Msgpack.locate(set, [i]) == {:ok, {:x, pid}, [{:x, pid}]}
      assert Msgpack.locate(set, [i, 1]) == {:ok, pid, [{:x, pid}, 1]}
      assert Msgpack.locate([set], [0, i, 1]) == {:ok, pid, [0, {:x, pid}, 1]}
      assert Msgpack.locate(set, [3]) == :error

      big = MapSet.new(1..100) |> MapSet.put([pid])
      k = Enum.find_index(MapSet.to_list(big), &is_list/1)
      assert Msgpack.locate(big, [k, 0]) == {:ok, pid, [[pid], 0]}
    end

    test "struct fields by name; the path gives the field's atom" do
      pid = self()
      bad_date = %{~D[2020-01-01] | year: pid}
      assert Msgpack.locate(bad_date, ["year"]) == {:ok, pid, [:year]}
      assert Msgpack.locate([0, %{"d" => bad_date}], [1, {:entry, 0}, "year"]) == {:ok, pid, [1, "d", :year]}
      assert Msgpack.locate(~T[10:00:00.5], ["microsecond", 0]) == {:ok, 500_000, [:microsecond, 0]}

      point = %SnakeBridge.Test.EncoderFixtures.Point{x: [1, pid], y: 2}
      assert Msgpack.locate(point, ["x", 1]) == {:ok, pid, [:x, 1]}
      # Structs that are not what they claim are structs too.
      assert Msgpack.locate(%MapSet{map: [pid]}, ["map", 0]) == {:ok, pid, [:map, 0]}
      assert Msgpack.locate(%SnakeBridge.Bytes{data: {pid}}, ["data", 0]) == {:ok, pid, [:data, 0]}
    end

    test "steps that do not fit the term are :error, never an exception" do
      object = %SnakeBridge.Object{ref: 1, type: "t"}

      for {term, steps} <- [
            {[1, 2], [2]},
            {[1, 2], [-1]},
            {[1, 2], [{:entry, 0}]},
            {[1 | 2], [0]},
            {[[1 | 2]], [0, 1]},
            {{1}, [1]},
            {{1}, ["x"]},
            {%{a: 1}, [0]},
            {%{a: 1}, [{:entry, 1}]},
            {%{a: 1}, [{:key, -1}]},
            {%{a: 1}, [{:value, 0}]},
            {%{a: 1}, ["a"]},
            {MapSet.new([1]), ["map"]},
            {MapSet.new([1]), [{:entry, 0}]},
            {~D[2020-01-01], [0]},
            {~D[2020-01-01], [{:entry, 0}]},
            {~D[2020-01-01], ["__struct__"]},
            {~D[2020-01-01], ["no_such_field"]},
            {~D[2020-01-01], ["snakebridge_no_such_atom_c0ffee"]},
            {~D[2020-01-01], [<<0xFF>>]},
            {object, ["ref"]},
            {object, [0]},
            {SnakeBridge.bytes("ab"), ["data"]},
            {SnakeBridge.bytes("ab"), [0]},
            {"ab", [0]},
            {self(), [0]},
            {[1], [0, 0]},
            {[1], :not_a_list},
            {[1], [0 | 1]},
            {[1], [1.0]}
          ] do
        assert Msgpack.locate(term, steps) == :error, "#{inspect(term, structs: false)} #{inspect(steps)}"
      end
    end
  end

  describe "decoding malformed and hostile input" do
    setup do
      rich = [
        nil,
        true,
        -1,
        200,
        -200,
        70_000,
        -70_000,
        1 <<< 40,
        -(1 <<< 40),
        1 <<< 70,
        1.5,
        :nan,
        "é",
        String.duplicate("s", 40),
        String.duplicate("s", 300),
        <<0xFF>>,
        :binary.copy(<<0xFF>>, 300),
        {1, {}},
        MapSet.new([1, {2}]),
        %{"a" => [1], [2] => %{}},
        Map.new(1..20, &{&1, &1}),
        Enum.to_list(1..20),
        ~D[2020-01-01],
        ~T[01:02:03.4],
        ~N[2020-01-01 00:00:00],
        ~U[2020-01-01 00:00:00Z],
        %SnakeBridge.Object{ref: 77, type: "t"}
      ]

      %{rich: rich |> enc(handle_id: fn o -> {:ok, o.ref} end) |> MsgpackReply.reply()}
    end

    test "every strict prefix of a valid encoding is :truncated", %{rich: rich} do
      for n <- 0..(byte_size(rich) - 1) do
        assert dec(binary_part(rich, 0, n)) == {:error, :truncated}, "prefix of #{n} bytes"
      end

      assert {:ok, _} = dec(rich)
    end

    test "trailing bytes", %{rich: rich} do
      assert dec(rich <> <<0>>) == {:error, {:trailing_bytes, 1}}
      assert dec(<<0xC0, 0xC0, 0xC0>>) == {:error, {:trailing_bytes, 2}}
      assert dec(<<>>) == {:error, :truncated}
    end

    test "lengths far beyond the data fail at once" do
      for header <- [
            <<0xDF, 0xFF, 0xFF, 0xFF, 0xFF>>,
            <<0xDD, 0xFF, 0xFF, 0xFF, 0xFF>>,
            <<0xDB, 0xFF, 0xFF, 0xFF, 0xFF>>,
            <<0xC6, 0xFF, 0xFF, 0xFF, 0xFF>>,
            <<0xC9, 0xFF, 0xFF, 0xFF, 0xFF, 0x03>>,
            <<0xDE, 0xFF, 0xFF>>,
            <<0xDC, 0xFF, 0xFF>>,
            <<0xDC, 0xFF, 0xFF, @tuple::binary>>
          ] do
        {micros, result} = :timer.tc(fn -> dec(header <> <<1, 2, 3>>) end)
        assert result == {:error, :truncated}
        assert micros < 50_000
      end

      assert dec(<<0xDF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x02>>) == {:error, :truncated}
      assert dec(<<0xDD, 0, 0, 0, 4, 1, 2, 3>>) == {:error, :truncated}
      assert dec(<<0x83, 1, 2, 3, 4, 5>>) == {:error, :truncated}
    end

    test "deep nesting: 1024 levels below the top one at most, tuples and sets included" do
      ok = :binary.copy(<<0x91>>, 1024) <> <<0x90>>
      assert {:ok, _} = dec(ok)
      assert dec(:binary.copy(<<0x91>>, 1025) <> <<0x90>>) == {:error, :too_deep}
      assert dec(:binary.copy(<<0x91>>, 100_000)) == {:error, :too_deep}
      assert dec(:binary.copy(<<0x81, 0xC0>>, 2000) <> <<0xC0>>) == {:error, :too_deep}
      tuples = :binary.copy(<<0x92, @tuple::binary>>, 1024) <> <<0x90>>
      assert {:ok, {_}} = dec(tuples)
      assert dec(<<0x92, @set::binary, tuples::binary>>) == {:error, :too_deep}
      assert dec(:binary.copy(<<0x92, @set::binary>>, 2000) <> <<0x01>>) == {:error, :too_deep}
    end

    test "the reserved byte 0xC1" do
      assert dec(<<0xC1>>) == {:error, {:invalid_byte, 0xC1}}
      assert dec(<<0x92, 0x01, 0xC1>>) == {:error, {:invalid_byte, 0xC1}}
    end

    test "extension types that are not in a reply" do
      # 5 (frozensets were), 10 (bytes are bin in a reply), 12 and 13 (request markers).
      for type <- [0, 5, 10, 12, 13, 16, 127, -1, -128] do
        assert dec(<<0xD4, type, 0>>) == {:error, {:unknown_ext, type}}
        assert dec(<<0x92, 0xD4, type, 0, 1>>) == {:error, {:unknown_ext, type}}
      end

      assert dec(<<0xC7, 0, 127>>) == {:error, {:unknown_ext, 127}}
    end

    test "ext 15 is a SnakeBridge.Array whose data is a sub-binary of the input; a payload that does not add up is invalid" do
      data = for x <- 1..24, into: <<>>, do: <<x * 0.5::float-64-native>>
      payload = <<?f, 64, 2, 3, 4::64, 6::64, 0, 0, 0, data::binary>>
      frame = <<0xC9, byte_size(payload)::32, 15, payload::binary>>

      assert {:ok, %SnakeBridge.Array{type: {:f, 64}, shape: {4, 6}, data: ^data} = a} = dec(frame)
      assert :binary.referenced_byte_size(a.data) == byte_size(frame)
      assert dec(<<0xC7, 5, 15, ?u, 8, 0, 0, 7>>) == {:ok, %SnakeBridge.Array{data: <<7>>, type: {:u, 8}, shape: {}}}

      for bad <- [
            <<?f, 64, 1, 0, 3::64, 0::64, 0::64>>,
            <<?f, 8, 1, 0, 1::64, 0>>,
            <<?x, 8, 1, 0, 1::64, 0>>,
            <<?s, 64, 2, 0, 1::64>>,
            <<?u, 8, 0>>,
            <<?u, 8, 0, 2, 7>>,
            <<?c, 64, 1, 0, 1::64, 0::32>>
          ] do
        assert dec(<<0xC7, byte_size(bad), 15, bad::binary>>) == {:error, {:invalid_ext, 15}}
      end
    end

    test "malformed extension payloads" do
      for {bytes, type} <- [
            {<<0xD6, 0x01, 0, 0, 0, 1>>, 1},
            {<<0xC7, 0, 0x02>>, 2},
            {<<0xD5, 0x02, 0x02, 0x01>>, 2},
            {<<0xD4, 0x03, 0x01>>, 3},
            {<<0x91, 0xD4, 0x03, 0x01>>, 3},
            {<<0xD5, 0x03, 0x90, 0x90>>, 3},
            {<<0xD4, 0x04, 0x80>>, 4},
            {<<0xC7, 6, 0x06, 0x93, 0xCD, 0x07, 0xE8, 0x0D, 0x01>>, 6},
            {<<0xD6, 0x06, 0x93, 0x01, 0x02, 0xC0>>, 6},
            {<<0xD5, 0x06, 0x92, 0x01>>, 6},
            {<<0xD6, 0x06, 0x94, 0x01, 0x01, 0x01>>, 6},
            {<<0xC7, 5, 0x06, 0x93, 0x01, 0x01, 0x91, 0x01>>, 6},
            {<<0xC7, 6, 0x07, 0x95, 24, 0, 0, 0, 0>>, 7},
            {<<0xC7, 6, 0x07, 0x95, 0, 0, 60, 0, 0>>, 7},
            {<<0xC7, 6, 0x07, 0x95, 0, 0, 0, 0xFF, 0>>, 7},
            {<<0xC7, 6, 0x07, 0x95, 0, 0, 0, 0, 7>>, 7},
            {<<0xC7, 5, 0x07, 0x94, 0, 0, 0, 0>>, 7},
            {<<0xC7, 9, 0x08, 0x98, 1, 0, 1, 0, 0, 0, 0, 0>>, 8},
            {<<0xC7, 9, 0x08, 0x98, 1, 1, 1, 0, 0, 0, 0, 0x91>>, 8},
            {<<0xC7, 13, 0x09, 0x9C, 1, 1, 1, 0, 0, 0, 0, 0, 0xC0, 0xA0, 0, 0>>, 9},
            {<<0xC7, 13, 0x09, 0x9C, 1, 1, 1, 0, 0, 0, 0, 0, 0xA0, 0xA0, 0xC0, 0>>, 9},
            {<<0xC7, 12, 0x09, 0x9B, 1, 1, 1, 0, 0, 0, 0, 0, 0xA0, 0xA0, 0>>, 9},
            {<<0xC7, 13, 0x09, 0x9C, 1, 1, 1, 0, 0, 0, 0, 9, 0xA0, 0xA0, 0, 0>>, 9}
          ] do
        assert dec(bytes) == {:error, {:invalid_ext, type}}, inspect(bytes)
      end
    end

    test "calendar payloads are read flat: a handle inside one is just invalid" do
      parent = self()
      handle = fn id, type -> send(parent, {:handle, id}) && {id, type} end
      assert dec(<<0x92, 0xD7, 0x01, 5::64, 0xC1>>, handle: handle) == {:error, {:invalid_byte, 0xC1}}
      assert dec(<<0xC7, 13, 0x06, 0x93, 0xD7, 0x01, 1::64, 1, 1>>, handle: handle) == {:error, {:invalid_ext, 6}}
      assert_received {:handle, 5}
      refute_received {:handle, 1}
    end

    test "random bytes never raise" do
      :rand.seed(:exsss, {1, 2, 3})

      for _ <- 1..5000 do
        bytes = :rand.bytes(:rand.uniform(64))
        result = dec(bytes)
        assert match?({:ok, _}, result) or match?({:error, _}, result)
      end
    end
  end

  test "encode_each/2 spells each term as encode/2 does, with the same handle ids" do
    obj = %SnakeBridge.Object{ref: make_ref(), type: "x.Y", owner: {:port, self()}}
    handle_id = fn %SnakeBridge.Object{} = o -> if o == obj, do: {:ok, 7}, else: :error end

    terms = [
      0,
      127,
      255,
      -1,
      Integer.pow(2, 70),
      1.5,
      nil,
      true,
      :atom,
      "text",
      <<255>>,
      [1, [2, {3, obj}]],
      %{"k" => MapSet.new([:x])},
      obj,
      %SnakeBridge.Object{ref: make_ref(), type: "other", owner: {:port, self()}}
    ]

    expected = Enum.map(terms, &IO.iodata_to_binary(SnakeBridge.Msgpack.encode(&1, handle_id: handle_id)))
    assert Enum.map(SnakeBridge.Msgpack.encode_each(terms, handle_id), &IO.iodata_to_binary/1) == expected

    assert Enum.map(SnakeBridge.Msgpack.encode_each(terms, nil), &IO.iodata_to_binary/1) ==
             Enum.map(terms, &IO.iodata_to_binary(SnakeBridge.Msgpack.encode(&1)))
  end
end
