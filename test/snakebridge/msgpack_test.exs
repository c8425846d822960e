defmodule SnakeBridge.MsgpackTest do
  # SnakeBridge.Msgpack against the MessagePack specification
  # (https://github.com/msgpack/msgpack/blob/master/spec.md): hand-written byte
  # vectors for every format family, both ways; the extension types and the
  # type mapping of docs/protocol.md ("Values"); refusals with the NIF's paths;
  # and malformed, truncated and hostile input. Properties (PropEr) are in
  # test/property/msgpack_property_test.exs.
  use ExUnit.Case, async: true

  import Bitwise

  alias SnakeBridge.Msgpack

  doctest SnakeBridge.Msgpack

  defp enc(term, opts \\ []), do: term |> Msgpack.encode!(opts) |> IO.iodata_to_binary()
  defp dec(binary, opts \\ []), do: Msgpack.decode(binary, opts)

  # Encodes to exactly `bytes`, and `bytes` decodes to `back` (default: term).
  defp vector(term, bytes, back \\ :same) do
    assert enc(term) == bytes, "encoding #{inspect(term, limit: 8)}"
    expected = if back == :same, do: term, else: back
    assert {:ok, decoded} = dec(bytes)
    assert same?(decoded, expected), "decoding #{inspect(bytes, limit: 16)}: got #{inspect(decoded, limit: 8)}"
  end

  # === plus floats by bit pattern (-0.0 === 0.0 on OTP 25).
  defp same?(a, b), do: SnakeBridge.Test.PythonTerms.identical?(a, b)

  defp error(term, opts \\ []) do
    assert {:error, {:unconvertible, reason, bad, path}} = Msgpack.encode(term, opts)
    {reason, bad, path}
  end

  defp nested_lists(0, leaf), do: leaf
  defp nested_lists(n, leaf), do: [nested_lists(n - 1, leaf)]

  defp seq(n), do: Enum.to_list(1..n)

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

    test "the same integers inside a list (the encoder's batched path)" do
      ints =
        [0, 127, -1, -32, 128, 255, 256, 65_535, 65_536, 0xFFFF_FFFF, 1 <<< 32, (1 <<< 64) - 1] ++
          [-33, -128, -129, -32_768, -32_769, -(1 <<< 31), -(1 <<< 31) - 1, -(1 <<< 63)]

      expected = IO.iodata_to_binary([0xDC, <<length(ints)::16>> | Enum.map(ints, &enc/1)])
      vector(ints, expected)
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

    test "inf, -inf and nan are the atoms :infinity, :neg_infinity, :nan" do
      vector(:infinity, <<0xCB, 0x7F, 0xF0, 0, 0, 0, 0, 0, 0>>)
      vector(:neg_infinity, <<0xCB, 0xFF, 0xF0, 0, 0, 0, 0, 0, 0>>)
      vector(:nan, <<0xCB, 0x7F, 0xF8, 0, 0, 0, 0, 0, 0>>)
      # Any NaN payload or sign is :nan.
      assert dec(<<0xCB, 0xFF, 0xF8, 0, 0, 0, 0, 0, 1>>) == {:ok, :nan}
      assert dec(<<0xCB, 0x7F, 0xF0, 0, 0, 0, 0, 0, 1>>) == {:ok, :nan}
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

  describe "spec vectors: str" do
    test "fixstr" do
      vector("", <<0xA0>>)
      vector("a", <<0xA1, ?a>>)
      vector("é", <<0xA2, 0xC3, 0xA9>>)
      s31 = String.duplicate("x", 31)
      vector(s31, <<0xBF, s31::binary>>)
    end

    test "str8, str16, str32" do
      s32 = String.duplicate("x", 32)
      vector(s32, <<0xD9, 32, s32::binary>>)
      s255 = String.duplicate("x", 255)
      vector(s255, <<0xD9, 0xFF, s255::binary>>)
      s256 = String.duplicate("x", 256)
      vector(s256, <<0xDA, 0x01, 0x00, s256::binary>>)
      s65535 = String.duplicate("x", 65_535)
      vector(s65535, <<0xDA, 0xFF, 0xFF, s65535::binary>>)
      s65536 = String.duplicate("é", 32_768)
      vector(s65536, <<0xDB, 0x00, 0x01, 0x00, 0x00, s65536::binary>>)
    end

    test "a binary is str exactly when String.valid?/1 says so" do
      for b <- ["日本語", "😀", "a\0b", <<0xEF, 0xBB, 0xBF>>, String.duplicate("abcdefghijklmnop", 20) <> "é"] do
        assert String.valid?(b)
        assert <<tag, _::binary>> = enc(b)
        assert tag in 0xA0..0xBF or tag in [0xD9, 0xDA, 0xDB]
      end

      # Surrogates, overlong forms, beyond U+10FFFF, truncated, lone continuation,
      # and invalid bytes after a long ASCII run (the chunked check).
      invalid = [
        <<0xED, 0xA0, 0x80>>,
        <<0xC0, 0x80>>,
        <<0xF4, 0x90, 0x80, 0x80>>,
        <<0xE2, 0x82>>,
        <<0x80>>,
        <<0xFF>>,
        String.duplicate("a", 100) <> <<0xFF>>,
        String.duplicate("aé", 40) <> <<0xC3>>
      ]

      for b <- invalid do
        refute String.valid?(b)
        assert <<tag, _::binary>> = enc(b)
        assert tag in [0xC4, 0xC5, 0xC6], "#{inspect(b)} should be bin"
      end
    end

    test "atoms are str of their name (Latin-1 names); nil/true/false/inf/nan excepted" do
      vector(:abc, <<0xA3, ?a, ?b, ?c>>, "abc")
      vector(:é, <<0xA2, 0xC3, 0xA9>>, "é")
      vector(Enum, <<0xAB, "Elixir.Enum">>, "Elixir.Enum")
      vector([:a, :b], <<0x92, 0xA1, ?a, 0xA1, ?b>>, ["a", "b"])
    end

    test "a str that is not UTF-8 decodes to the binary as it is" do
      assert dec(<<0xA2, 0xFF, 0xFE>>) == {:ok, <<0xFF, 0xFE>>}
      assert dec(<<0xD9, 1, 0x80>>) == {:ok, <<0x80>>}
    end
  end

  describe "spec vectors: bin" do
    test "bin8, bin16, bin32" do
      vector(<<0xFF>>, <<0xC4, 1, 0xFF>>)
      b255 = :binary.copy(<<0xFF>>, 255)
      vector(b255, <<0xC4, 0xFF, b255::binary>>)
      b256 = :binary.copy(<<0xFE>>, 256)
      vector(b256, <<0xC5, 0x01, 0x00, b256::binary>>)
      b65535 = :binary.copy(<<0x80>>, 65_535)
      vector(b65535, <<0xC5, 0xFF, 0xFF, b65535::binary>>)
      b65536 = :binary.copy(<<0xC0>>, 65_536)
      vector(b65536, <<0xC6, 0x00, 0x01, 0x00, 0x00, b65536::binary>>)
    end

    test "SnakeBridge.bytes/1 is bin even when it is valid UTF-8" do
      vector(SnakeBridge.bytes(""), <<0xC4, 0>>, "")
      vector(SnakeBridge.bytes("abc"), <<0xC4, 3, "abc">>, "abc")
      big = String.duplicate("a", 70_000)
      vector(SnakeBridge.bytes(big), <<0xC6, 70_000::32, big::binary>>, big)
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
      items = [1, "a", <<0xFF>>, nil, true, false, 2.5, [3], %{}, {}, :x, 1 <<< 70, String.duplicate("s", 40)]

      expected =
        IO.iodata_to_binary(
          [0x9D, 1, 0xA1, ?a, 0xC4, 1, 0xFF, 0xC0, 0xC3, 0xC2, enc(2.5), 0x91, 3, 0x80] ++
            [0xD4, 3, 0x90, 0xA1, ?x, enc(1 <<< 70), enc(String.duplicate("s", 40))]
        )

      vector(items, expected, [
        1,
        "a",
        <<0xFF>>,
        nil,
        true,
        false,
        2.5,
        [3],
        %{},
        {},
        "x",
        1 <<< 70,
        String.duplicate("s", 40)
      ])
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
      vector(%{"a" => 1}, <<0x81, 0xA1, ?a, 0x01>>)
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
      # Keys of any type (a msgpack array as a key decodes to a list).
      assert dec(<<0x81, 0x91, 0x01, 0x02>>) == {:ok, %{[1] => 2}}
    end

    test "keys are encoded in hashable form" do
      # A list key is a tuple (ext 3), a MapSet key a frozenset (ext 5).
      vector(%{[1] => 2}, <<0x81, 0xD5, 0x03, 0x91, 0x01, 0x02>>, %{{1} => 2})
      vector(%{MapSet.new([1]) => 2}, <<0x81, 0xD5, 0x05, 0x91, 0x01, 0x02>>)
      vector(%{{[1]} => 0}, <<0x81, 0xC7, 5, 0x03, 0x91, 0xD5, 0x03, 0x91, 0x01, 0x00>>, %{{{1}} => 0})
      vector(%{:k => :v}, <<0x81, 0xA1, ?k, 0xA1, ?v>>, %{"k" => "v"})
      # Values are not in key position.
      vector(%{1 => [2]}, <<0x81, 0x01, 0x91, 0x02>>)
    end
  end

  describe "spec vectors: ext" do
    test "fixext 1/2/4/8/16" do
      vector({}, <<0xD4, 0x03, 0x90>>)
      vector({1}, <<0xD5, 0x03, 0x91, 0x01>>)
      vector({1, 2, 3}, <<0xD6, 0x03, 0x93, 0x01, 0x02, 0x03>>)
      vector({1, 2, 3, 4, 5, 6, 7}, <<0xD7, 0x03, 0x97, 1, 2, 3, 4, 5, 6, 7>>)
      t15 = List.to_tuple(seq(15))
      vector(t15, <<0xD8, 0x03, 0x9F, :erlang.list_to_binary(seq(15))::binary>>)
      # A bigint whose payload is 16 bytes: sign + 15-byte magnitude.
      n = 1 <<< 119
      vector(n, <<0xD8, 0x02, 0x00, 0::112, 0x80>>)
    end

    test "ext 8/16/32" do
      t16 = List.to_tuple(seq(16))
      vector(t16, <<0xC7, 19, 0x03, 0xDC, 0, 16, :erlang.list_to_binary(seq(16))::binary>>)
      t300 = List.to_tuple(List.duplicate(0, 300))
      vector(t300, <<0xC8, 303::16, 0x03, 0xDC, 300::16, :binary.copy(<<0>>, 300)::binary>>)
      t70000 = List.to_tuple(List.duplicate(1, 70_000))
      vector(t70000, <<0xC9, 70_005::32, 0x03, 0xDD, 70_000::32, :binary.copy(<<1>>, 70_000)::binary>>)
    end

    test "decoding accepts an ext of any size format" do
      assert dec(<<0xC7, 1, 0x03, 0x90>>) == {:ok, {}}
      assert dec(<<0xC8, 0, 2, 0x03, 0x91, 0x07>>) == {:ok, {7}}
      assert dec(<<0xC9, 0, 0, 0, 2, 0x04, 0x91, 0x07>>) == {:ok, MapSet.new([7])}
    end
  end

  describe "ext types of docs/protocol.md" do
    test "1: handles, out with the id from :handle_id, in through :handle" do
      object = %SnakeBridge.Object{ref: make_ref(), type: "collections.Counter"}
      handle_id = fn %SnakeBridge.Object{} -> {:ok, 0x0102030405060708} end
      assert enc(object, handle_id: handle_id) == <<0xD7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8>>
      assert enc([object], handle_id: handle_id) == <<0x91, 0xD7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8>>

      assert enc(%{object => MapSet.new([object])}, handle_id: handle_id) ==
               <<0x81, 0xD7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0xC7, 11, 0x04, 0x91, 0xD7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8>>

      # From the program: the id, then the type name.
      wire = <<0xC7, 8 + 19, 0x01, 0x0102030405060708::64, "collections.Counter">>
      assert dec(wire) == {:ok, {:snakebridge_handle, 0x0102030405060708, "collections.Counter"}}
      assert dec(<<0xD7, 0x01, 42::64>>) == {:ok, {:snakebridge_handle, 42, ""}}
      assert dec(<<0x91, 0xD7, 0x01, (1 <<< 64) - 1::64>>) == {:ok, [{:snakebridge_handle, (1 <<< 64) - 1, ""}]}
      handle = fn id, type -> {:obj, id, type} end

      assert dec(<<0x92, wire::binary, wire::binary>>, handle: handle) ==
               {:ok,
                [{:obj, 0x0102030405060708, "collections.Counter"}, {:obj, 0x0102030405060708, "collections.Counter"}]}

      # The type name is a copy, not a piece of the (possibly large) frame.
      frame = <<0x92, wire::binary, 0xC6, 100_000::32, :binary.copy(<<0>>, 100_000)::binary>>
      {:ok, [{:snakebridge_handle, _, name}, _]} = dec(frame)
      assert :binary.referenced_byte_size(name) == byte_size(name)
    end

    test "1: an Object with no id is unconvertible" do
      object = %SnakeBridge.Object{ref: make_ref(), type: "x"}
      assert {:unconvertible, ^object, []} = error(object)
      assert {:unconvertible, ^object, [1]} = error([0, object], handle_id: fn _ -> :error end)

      assert_raise ArgumentError, ~r/handle_id returned/, fn ->
        Msgpack.encode(object, handle_id: fn _ -> {:ok, -1} end)
      end
    end

    test "2: integers beyond 64 bits" do
      # 2^64: sign 0, magnitude 00 x 8, 01 (little-endian).
      vector(1 <<< 64, <<0xC7, 10, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x01>>)
      # -2^63 - 1: sign 1, magnitude 2^63 + 1.
      vector(-(1 <<< 63) - 1, <<0xC7, 9, 0x02, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0x80>>)
      vector(-(1 <<< 64), <<0xC7, 10, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x01>>)
      big = Integer.pow(3, 5000)
      assert {:ok, ^big} = dec(enc(big))
      assert {:ok, [n]} = dec(enc([-big]))
      assert n == -big
      # Lenient: trailing zero bytes, a magnitude that fits 64 bits, an empty one.
      assert dec(<<0xD6, 0x02, 0x00, 0x05, 0x00, 0x00>>) == {:ok, 5}
      assert dec(<<0xD4, 0x02, 0x01>>) == {:ok, 0}
    end

    test "3: tuples" do
      vector({1, "a", {}}, <<0xC7, 7, 0x03, 0x93, 0x01, 0xA1, ?a, 0xD4, 0x03, 0x90>>)
      # A list in a tuple (not in a key) stays an array.
      vector({[1], %{}}, <<0xD6, 0x03, 0x92, 0x91, 0x01, 0x80>>)
    end

    test "4 and 5: MapSets, set in value position and frozenset in hashable position" do
      vector(MapSet.new(), <<0xD4, 0x04, 0x90>>)
      vector(MapSet.new([1]), <<0xD5, 0x04, 0x91, 0x01>>)
      # Elements are hashable: a list element is a tuple, a MapSet element a frozenset.
      vector(MapSet.new([[1]]), <<0xC7, 5, 0x04, 0x91, 0xD5, 0x03, 0x91, 0x01>>, MapSet.new([{1}]))
      vector(MapSet.new([MapSet.new([2])]), <<0xC7, 5, 0x04, 0x91, 0xD5, 0x05, 0x91, 0x02>>)
      assert dec(<<0xD5, 0x05, 0x91, 0x01>>) == {:ok, MapSet.new([1])}
    end

    test "6: Date" do
      vector(~D[2024-02-29], <<0xC7, 6, 0x06, 0x93, 0xCD, 0x07, 0xE8, 0x02, 0x1D>>)
      vector(~D[0001-01-01], <<0xD6, 0x06, 0x93, 0x01, 0x01, 0x01>>)
      vector(~D[9999-12-31], <<0xC7, 6, 0x06, 0x93, 0xCD, 0x27, 0x0F, 0x0C, 0x1F>>)
    end

    test "7: Time, microsecond precision canonical on the way back" do
      vector(~T[10:20:30], <<0xC7, 5, 0x07, 0x94, 10, 20, 30, 0>>)
      vector(~T[23:59:59.999999], <<0xC7, 9, 0x07, 0x94, 23, 59, 59, 0xCE, 999_999::32>>)
      # Precision is not sent; it comes back as {0, 0} or {us, 6}.
      vector(~T[10:00:00.120], <<0xC7, 9, 0x07, 0x94, 10, 0, 0, 0xCE, 120_000::32>>, ~T[10:00:00.120000])
      vector(~T[10:00:00.000], <<0xC7, 5, 0x07, 0x94, 10, 0, 0, 0>>, ~T[10:00:00])
      assert {:ok, %Time{microsecond: {5, 6}}} = dec(enc(~T[00:00:00.000005]))
    end

    test "8: NaiveDateTime" do
      vector(~N[2020-01-02 03:04:05], <<0xC7, 10, 0x08, 0x97, 0xCD, 0x07, 0xE4, 1, 2, 3, 4, 5, 0>>)
      vector(~N[2020-01-02 03:04:05.5], enc(~N[2020-01-02 03:04:05.500000]), ~N[2020-01-02 03:04:05.500000])
    end

    test "9: DateTime with its zone fields" do
      payload = <<0x9B, 0xCD, 0x07, 0xE4, 1, 2, 3, 4, 5, 0, 0xA7, "Etc/UTC", 0xA3, "UTC", 0, 0>>
      vector(~U[2020-01-02 03:04:05Z], <<0xC7, byte_size(payload), 0x09, payload::binary>>)

      paris = %DateTime{
        year: 2024,
        month: 7,
        day: 1,
        hour: 12,
        minute: 0,
        second: 0,
        microsecond: {250_000, 6},
        time_zone: "Europe/Paris",
        zone_abbr: "CEST",
        utc_offset: 3600,
        std_offset: 3600
      }

      payload =
        <<0x9B, 0xCD, 0x07, 0xE8, 7, 1, 12, 0, 0, 0xCE, 250_000::32, 0xAC, "Europe/Paris", 0xA4, "CEST", 0xCD, 3600::16,
          0xCD, 3600::16>>

      vector(paris, <<0xC7, byte_size(payload), 0x09, payload::binary>>)
      # Negative offsets, and zone names that are bin rather than str on the wire.
      assert {:ok, %DateTime{utc_offset: -18_000, std_offset: 0, time_zone: "America/New_York", zone_abbr: "EST"}} =
               dec(
                 <<0xC7, 36, 0x09, 0x9B, 0xCD, 0x07, 0xE4, 1, 2, 3, 4, 5, 0, 0xC4, 16, "America/New_York", 0xA3, "EST",
                   0xD1, -18_000::16, 0>>
               )

      # Zone names are copies, not pieces of the frame.
      {:ok, [%DateTime{time_zone: tz}, _]} =
        dec(<<0x92, enc(paris)::binary, 0xC6, 100_000::32, :binary.copy(<<0>>, 100_000)::binary>>)

      assert :binary.referenced_byte_size(tz) == byte_size(tz)
    end
  end

  describe "round trips" do
    test "every mapped type, nested" do
      <<negative_zero::float>> = <<0x80, 0::56>>

      term = %{
        "ints" => [0, -1, 127, 128, -33, 1 <<< 40, -(1 <<< 40), (1 <<< 64) - 1, -(1 <<< 63), 1 <<< 64, -(1 <<< 200)],
        "floats" => [0.0, negative_zero, 1.0e300, -5.0e-324, :infinity, :neg_infinity, :nan],
        "text" => ["", "héllo", "日本語 😀", String.duplicate("ab", 40_000)],
        "bytes" => [<<0xFF, 0>>, :binary.copy(<<0x80>>, 70_000)],
        {1, "two", {3.0}} => MapSet.new([1, "a", {2, MapSet.new([nil])}]),
        MapSet.new([~D[2020-01-01], ~T[01:02:03]]) => [~N[2000-02-29 23:59:59.000001], ~U[1999-12-31 23:59:59Z]],
        nil => true,
        false => {},
        -1.5 => [[[[]]], %{}, {{}}]
      }

      assert {:ok, back} = dec(enc(term))
      assert same?(back, term)
    end

    test "the documented changes: atoms become binaries, lists in keys tuples, bytes binaries" do
      term = %{[1, [2]] => :atom, :key => [SnakeBridge.bytes("b")], MapSet.new([[3]]) => %{{[4]} => :x}}
      expected = %{{1, {2}} => "atom", "key" => ["b"], MapSet.new([{3}]) => %{{{4}} => "x"}}
      assert dec(enc(term)) == {:ok, expected}
    end

    test "encode returns iodata (a lone byte is wrapped)" do
      for term <- [0, 5, -1, nil, true, false, "a", [1], %{1 => 2}, {1}, 1.5, 1 <<< 80] do
        assert {:ok, iodata} = Msgpack.encode(term)
        assert is_binary(iodata) or is_list(iodata)
        assert IO.iodata_length(iodata) == byte_size(IO.iodata_to_binary(iodata))
      end
    end

    test "decoded strings share the input binary (no copy)" do
      big = String.duplicate("x", 1000)
      frame = enc(["a", big])
      assert {:ok, ["a", s]} = dec(frame)
      assert :binary.referenced_byte_size(s) == byte_size(frame)
    end

    test "values concatenate into a larger message" do
      parts = [Msgpack.encode!(7), Msgpack.encode!("call"), Msgpack.encode!([1, {2}])]
      assert dec(IO.iodata_to_binary([0x93 | parts])) == {:ok, [7, "call", [1, {2}]]}
    end
  end

  describe "refused terms and their paths (the NIF's convention)" do
    test "pids, refs, funs, ports, bitstrings" do
      pid = self()
      ref = make_ref()
      fun = fn -> :ok end
      port = hd(Port.list())

      for bad <- [pid, ref, fun, &String.upcase/1, port, <<1::3>>] do
        assert {:unconvertible, ^bad, []} = error(bad)
        assert {:unconvertible, ^bad, [1]} = error([0, bad])
        assert {:unconvertible, ^bad, [2]} = error({0, 1, bad})
      end
    end

    test "paths through lists, tuples, map values and keys, MapSet elements" do
      pid = self()
      assert {:unconvertible, ^pid, [1, 1]} = error([1, [2, pid]])
      assert {:unconvertible, ^pid, ["k", 1]} = error(%{"k" => {1, pid}})
      assert {:unconvertible, ^pid, [:k, 0, "x"]} = error(%{:k => [%{"x" => pid}]})
      # In a key: the step is the key itself, then the way into it.
      assert {:unconvertible, ^pid, [^pid]} = error(%{pid => 1})
      assert {:unconvertible, ^pid, [{1, ^pid}, 1]} = error(%{{1, pid} => 1})
      assert {:unconvertible, ^pid, [[0, [^pid]], 1, 0]} = error(%{[0, [pid]] => 1})
      # A MapSet element: the element itself.
      assert {:unconvertible, ^pid, [^pid]} = error(MapSet.new([pid]))
      assert {:unconvertible, ^pid, [0, {^pid}, 0]} = error([MapSet.new([{pid}])])
      # The first refused item in order wins.
      assert {:unconvertible, ^pid, [0]} = error([pid, make_ref()])
    end

    test "improper lists are refused whole, before their items" do
      assert {:unconvertible, [1 | 2], []} = error([1 | 2])
      assert {:unconvertible, [3 | 4], [1, 1]} = error({1, [2, [3 | 4]]})
      pid = self()
      assert {:unconvertible, [^pid | :tail], [0]} = error([[pid | :tail]])
    end

    test "maps are unhashable as keys and set elements" do
      assert {:unhashable, %{}, [%{}]} = error(%{%{} => 1})
      assert {:unhashable, %{a: 1}, [[1, %{a: 1}], 1]} = error(%{[1, %{a: 1}] => 2})
      assert {:unhashable, %{}, [%{}]} = error(MapSet.new([%{}]))
      assert {:unhashable, %{}, ["k", {%{}}, 0]} = error(%{"k" => MapSet.new([{%{}}])})
      # Structs in key position are not maps.
      assert {:ok, _} = Msgpack.encode(%{~D[2020-01-01] => 1, SnakeBridge.bytes("x") => 2})
    end

    test "other structs (Encoder implementations too: the caller applies them)" do
      v = Version.parse!("1.2.3")
      assert {:unconvertible, ^v, []} = error(v)
      point = %SnakeBridge.Test.EncoderFixtures.Point{x: 1, y: 2}
      assert SnakeBridge.Encoder.impl_for(point)
      assert {:unconvertible, ^point, ["p"]} = error(%{"p" => point})
      assert {:unconvertible, %SnakeBridge.Bytes{data: 1}, []} = error(%SnakeBridge.Bytes{data: 1})
      assert {:unconvertible, %MapSet{map: :x}, []} = error(%MapSet{map: :x})
      # A map whose __struct__ is not an atom is a plain map.
      assert dec(enc(%{__struct__: "x"})) == {:ok, %{"__struct__" => "x"}}
    end

    test "atoms whose name is not Latin-1" do
      assert {:unconvertible, :日本語, [0]} = error([:日本語])
      assert {:ok, _} = Msgpack.encode(:ÿ)
      assert {:unconvertible, :ÿĀ, []} = error(:ÿĀ)
    end

    test "calendar values: Calendar.ISO only, Python's ranges, C-int fields" do
      for bad <- [
            %{~D[2020-01-01] | calendar: Calendar.Julian},
            %{~D[2020-01-01] | year: 10_000},
            %{~D[2020-01-01] | year: 0},
            %{~D[2020-02-01] | day: 30},
            %{~T[10:00:00] | second: 60},
            %{~T[10:00:00] | microsecond: {1_000_000, 6}},
            %{~T[10:00:00] | microsecond: :x},
            %{~N[2020-01-01 00:00:00] | hour: 24},
            %{~U[2020-01-01 00:00:00Z] | time_zone: nil},
            %{~U[2020-01-01 00:00:00Z] | zone_abbr: :utc},
            %{~U[2020-01-01 00:00:00Z] | utc_offset: 86_400}
          ] do
        assert {:unconvertible, ^bad, [0]} = error([bad])
      end

      # Zone names go as str with their bytes as they are (the NIF uses the
      # abbreviation only for a zone Python does not know).
      odd = %{~U[2020-01-01 00:00:00Z] | zone_abbr: <<0xFF>>}
      assert {:ok, ^odd} = dec(enc(odd))

      # A field that is not a C int: the field's name ends the path, as in-process.
      bad = %{~D[2020-01-01] | year: "2020"}
      assert {:unconvertible, ^bad, [0, :year]} = error([bad])
      bad = %{~U[2020-01-01 00:00:00Z] | std_offset: 1 <<< 40}
      assert {:unconvertible, ^bad, [:std_offset]} = error(bad)
      bad = Map.delete(~T[10:00:00], :minute)
      assert {:unconvertible, ^bad, ["t", :minute]} = error(%{"t" => bad})
    end

    test "nesting: 1024 levels below the encoded term at most" do
      ok = nested_lists(1024, 1)
      assert {:ok, back} = dec(enc(ok))
      assert back == ok
      assert {:too_deep, 1, path} = error(nested_lists(1025, 1))
      assert path == List.duplicate(0, 1025)
      # Empty containers at the limit are fine; through tuples and maps too.
      assert {:ok, _} = Msgpack.encode(nested_lists(1024, []))
      deep_tuple = Enum.reduce(1..1025, :leaf, fn _, acc -> {acc} end)
      assert {:too_deep, :leaf, path} = error(deep_tuple)
      assert length(path) == 1025
      deep_map = Enum.reduce(1..1024, 0, fn _, acc -> %{"k" => acc} end)
      assert {:ok, _} = Msgpack.encode(deep_map)
      # The key is checked before the value, as in-process.
      assert {:too_deep, "k", path} = error(%{"k" => deep_map})
      assert path == List.duplicate("k", 1025)
    end

    test "encode! raises ArgumentError naming the term and path" do
      assert_raise ArgumentError, ~r/cannot encode #PID<.*> at \[1\]/, fn -> Msgpack.encode!([0, self()]) end
    end
  end

  describe "decoding malformed and hostile input" do
    setup do
      object = %SnakeBridge.Object{ref: make_ref(), type: "t"}

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
        object
      ]

      %{rich: enc(rich, handle_id: fn _ -> {:ok, 77} end)}
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
            <<0xDC, 0xFF, 0xFF>>
          ] do
        {micros, result} = :timer.tc(fn -> dec(header <> <<1, 2, 3>>) end)
        assert result == {:error, :truncated}
        assert micros < 50_000
      end

      # A map32 of 2^32 - 1 entries with one entry present.
      assert dec(<<0xDF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x02>>) == {:error, :truncated}
      # Items that each take a byte: the count must fit what is left.
      assert dec(<<0xDD, 0, 0, 0, 4, 1, 2, 3>>) == {:error, :truncated}
      assert dec(<<0x83, 1, 2, 3, 4, 5>>) == {:error, :truncated}
    end

    test "deep nesting" do
      ok = :binary.copy(<<0x91>>, 1024) <> <<0x90>>
      assert {:ok, _} = dec(ok)
      assert dec(:binary.copy(<<0x91>>, 1025) <> <<0x90>>) == {:error, :too_deep}
      assert dec(:binary.copy(<<0x91>>, 2000) <> <<0x90>>) == {:error, :too_deep}
      assert dec(:binary.copy(<<0x91>>, 100_000)) == {:error, :too_deep}
      assert dec(:binary.copy(<<0x81, 0xC0>>, 2000) <> <<0xC0>>) == {:error, :too_deep}
      # Through ext 3 (each tuple is one level, its array the same level).
      deep =
        Enum.reduce(1..2000, <<0x90>>, fn _, inner ->
          IO.iodata_to_binary([0xC9, <<byte_size(inner) + 1::32>>, 0x03, 0x91, inner])
        end)

      assert dec(deep) == {:error, :too_deep}

      just =
        Enum.reduce(1..1024, <<0x90>>, fn _, inner ->
          IO.iodata_to_binary([0xC9, <<byte_size(inner) + 1::32>>, 0x03, 0x91, inner])
        end)

      assert {:ok, {_}} = dec(just)
    end

    test "the reserved byte 0xC1" do
      assert dec(<<0xC1>>) == {:error, {:invalid_byte, 0xC1}}
      assert dec(<<0x92, 0x01, 0xC1>>) == {:error, {:invalid_byte, 0xC1}}
    end

    test "unknown extension types" do
      assert dec(<<0xD4, 10, 0>>) == {:error, {:unknown_ext, 10}}
      assert dec(<<0xD4, 0, 0>>) == {:error, {:unknown_ext, 0}}
      # -1 is msgpack's timestamp, not part of the protocol.
      assert dec(<<0xD6, 0xFF, 0, 0, 0, 0>>) == {:error, {:unknown_ext, -1}}
      assert dec(<<0xC7, 0, 127>>) == {:error, {:unknown_ext, 127}}
    end

    test "malformed extension payloads" do
      for {bytes, type} <- [
            {<<0xD6, 0x01, 0, 0, 0, 1>>, 1},
            {<<0xC7, 0, 0x02>>, 2},
            {<<0xD5, 0x02, 0x02, 0x01>>, 2},
            {<<0xD4, 0x03, 0x01>>, 3},
            {<<0xD5, 0x03, 0x90, 0x90>>, 3},
            {<<0xD5, 0x03, 0x92, 0x01>>, 3},
            {<<0xD4, 0x04, 0x80>>, 4},
            {<<0xC7, 0, 0x05>>, 5},
            {<<0xC7, 6, 0x06, 0x93, 0xCD, 0x07, 0xE8, 0x0D, 0x01>>, 6},
            {<<0xD6, 0x06, 0x93, 0x01, 0x02, 0xC0>>, 6},
            {<<0xD5, 0x06, 0x92, 0x01>>, 6},
            {<<0xD6, 0x06, 0x94, 0x01, 0x01, 0x01>>, 6},
            {<<0xC7, 5, 0x07, 0x94, 24, 0, 0, 0>>, 7},
            {<<0xC7, 5, 0x07, 0x94, 0, 0, 60, 0>>, 7},
            {<<0xC7, 5, 0x07, 0x94, 0, 0, 0, 0xFF>>, 7},
            {<<0xC7, 6, 0x07, 0x94, 0, 0, 0, 0, 0>>, 7},
            {<<0xC7, 8, 0x08, 0x97, 0, 1, 1, 0, 0, 0, 0>>, 8},
            {<<0xC7, 8, 0x08, 0x97, 1, 1, 1, 0, 0, 0, 0x91>>, 8},
            {<<0xC7, 12, 0x09, 0x9B, 1, 1, 1, 0, 0, 0, 0, 0xC0, 0xA0, 0, 0>>, 9},
            {<<0xC7, 12, 0x09, 0x9B, 1, 1, 1, 0, 0, 0, 0, 0xA0, 0xA0, 0xC0, 0>>, 9},
            {<<0xC7, 11, 0x09, 0x9A, 1, 1, 1, 0, 0, 0, 0, 0xA0, 0xA0, 0>>, 9}
          ] do
        assert dec(bytes) == {:error, {:invalid_ext, type}}, inspect(bytes)
      end
    end

    test "the handle callback is not called for a malformed payload elsewhere" do
      parent = self()
      handle = fn id, type -> send(parent, {:handle, id}) && {id, type} end
      assert dec(<<0x92, 0xD7, 0x01, 5::64, 0xC1>>, handle: handle) == {:error, {:invalid_byte, 0xC1}}
      # Calendar payloads are read flat: a handle inside one is just invalid.
      assert dec(<<0xC7, 13, 0x06, 0x93, 0xD7, 0x01, 1::64, 1, 1>>, handle: handle) == {:error, {:invalid_ext, 6}}
      assert_received {:handle, 5}
      refute_received {:handle, 1}
    end

    test "duplicate keys (Python's 'a' and b'a') are reported, not merged" do
      assert dec(<<0x82, 0xA1, ?a, 0x01, 0xC4, 1, ?a, 0x02>>) == {:error, {:duplicate_key, "a"}}

      assert dec(<<0x83, 0x01, 0xC0, 0xA1, ?b, 0xC0, 0xD4, 0x04, 0x90, 0xC0>>) ==
               {:ok, %{1 => nil, "b" => nil, MapSet.new() => nil}}

      assert dec(<<0x83, 0xC0, 0x01, 0xC3, 0x02, 0xC0, 0x03>>) == {:error, {:duplicate_key, nil}}
      # Two NaN keys (distinct objects in Python) are the same atom here.
      nan = <<0xCB, 0x7F, 0xF8, 0::48>>
      assert dec(<<0x82, nan::binary, 1, nan::binary, 2>>) == {:error, {:duplicate_key, :nan}}
      # Sets likewise.
      assert dec(<<0xC7, 6, 0x04, 0x92, 0xA1, ?a, 0xC4, 1, ?a>>) == {:error, {:duplicate_key, "a"}}
      # A map inside a list inside a map.
      assert dec(<<0x81, 0x01, 0x91, 0x82, 0x02, 0x02, 0x02, 0x03>>) == {:error, {:duplicate_key, 2}}
    end

    test "decode! raises ArgumentError" do
      assert_raise ArgumentError, ~r/invalid MessagePack: :truncated/, fn -> Msgpack.decode!(<<0x92>>) end
      assert Msgpack.decode!(<<0x01>>) == 1
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
end
