defmodule SnakeBridge.BinariesTest do
  # binaries: :bytes — for binary APIs (zlib, hashlib, base64...), every
  # binary sent becomes Python bytes; names (map keys, keyword names) stay text.
  use ExUnit.Case, async: true

  alias SnakeBridge.TestBackends

  for backend <- TestBackends.all() do
    describe "binaries: :bytes (#{TestBackends.name(backend)})" do
      @backend backend

      test "zlib and hashlib take Elixir binaries, valid UTF-8 or not" do
        o = [backend: @backend, binaries: :bytes]
        data = String.duplicate("hello snakebridge ", 20)

        assert {:error, %SnakeBridge.PythonError{type: "TypeError"}} =
                 SnakeBridge.call("zlib", "compress", [data], [], backend: @backend)

        compressed = SnakeBridge.call!("zlib", "compress", [data], [], o)
        assert byte_size(compressed) < byte_size(data)
        assert SnakeBridge.call!("zlib", "decompress", [compressed], [], o) == data
        assert SnakeBridge.call!("zlib", "crc32", [data], [], o) == :erlang.crc32(data)

        digest = SnakeBridge.call!("hashlib", "sha256", ["abc"], [], o) |> SnakeBridge.method!("hexdigest", [], [], o)
        assert digest == Base.encode16(:crypto.hash(:sha256, "abc"), case: :lower)
      end

      test "inside containers and globals too; keys and keyword names stay text" do
        o = [backend: @backend, binaries: :bytes]

        assert SnakeBridge.eval!("[type(v).__name__ for v in x]", %{"x" => ["a", {"b"}, [<<255>>]]}, o) ==
                 ["bytes", "tuple", "list"]

        assert SnakeBridge.eval!(
                 "{type(k).__name__: type(v).__name__ for k, v in x.items()}",
                 %{"x" => %{"k" => "v"}},
                 o
               ) ==
                 %{"str" => "bytes"}

        assert SnakeBridge.call!("builtins", "dict", [], [name: "v"], o) == %{"name" => "v"}
        assert SnakeBridge.call!("builtins", "type", ["s"], [], o) |> SnakeBridge.getattr!("__name__", o) == "bytes"
      end

      test "an unknown value is an invalid option" do
        assert_raise ArgumentError, ~r/invalid SnakeBridge option/, fn ->
          SnakeBridge.call("zlib", "crc32", ["a"], [], backend: @backend, binaries: :latin1)
        end
      end
    end
  end
end
