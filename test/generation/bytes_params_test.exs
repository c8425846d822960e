# Generated at compile time of this file, with no `binaries:` option: the
# schema knows which parameters take bytes.
defmodule SnakeBridge.BytesParamsTest.Zlib do
  use SnakeBridge, python: "zlib"
end

defmodule SnakeBridge.BytesParamsTest.Hashlib do
  use SnakeBridge, python: "hashlib", only: ["sha256", "md5", "new", "pbkdf2_hmac", "blake2b"]
end

defmodule SnakeBridge.BytesParamsTest.Hmac do
  use SnakeBridge, python: "hmac", only: ["new", "digest", "compare_digest", "HMAC"]
end

defmodule SnakeBridge.BytesParamsTest.Base64 do
  use SnakeBridge, python: "base64", only: ["b64encode", "b64decode", "urlsafe_b64encode", "b32encode"]
end

defmodule SnakeBridge.BytesParamsTest.Struct do
  use SnakeBridge, python: "struct", only: ["unpack", "calcsize", "Struct"]
end

defmodule SnakeBridge.BytesParamsTest.Textwrap do
  use SnakeBridge, python: "textwrap", only: ["fill", "dedent"]
end

defmodule SnakeBridge.Generation.BytesParamsTest do
  # Typed argument mapping without an option (docs/generated_modules.md, "Typed
  # argument mapping"): a parameter annotated bytes-like, documented as bytes
  # in its docstring, or listed among the stdlib C functions whose text
  # signatures carry no types (priv/python/snakebridge_introspect.py,
  # _KNOWN_BYTES), gets Elixir binaries as Python bytes; everything else still
  # gets a str.
  use ExUnit.Case, async: true

  import SnakeBridge.Test.Helpers, only: [on_python_path: 1]

  alias SnakeBridge.BytesParamsTest.{Zlib, Hashlib, Hmac, Base64, Struct, Textwrap}

  @moduletag timeout: 120_000

  @compile {:no_warn_undefined, [SnakeBridge.BytesParamsTest.Probe]}

  @data String.duplicate("snakebridge bytes ", 40)

  @probe ~S'''
  import collections.abc
  from typing import Optional, Union

  def _kind(*values):
      return [type(v).__name__ for v in values]

  def annotated(a: bytes, b: bytearray, c: "collections.abc.Buffer", d: "ReadableBuffer", e: memoryview):
      return _kind(a, b, c, d, e)

  def optional(a: "bytes | None" = None, b: Optional[bytes] = None, c: "bytes | bytearray | None" = None):
      return _kind(a, b, c)

  def textual(a: str, b: "str | bytes", c: Union[str, bytes], d=None):
      return _kind(a, b, c, d)

  def numpydoc(payload, label):
      """Hash a payload.

      Parameters
      ----------
      payload : bytes-like object
          The data.
      label : str
          A name.
      """
      return _kind(payload, label)

  def google(key, msg=None, encoding="utf-8"):
      """Sign msg.

      Args:
          key (bytes): The key.
          msg (bytes, optional): The message.
          encoding (str): How to decode.
      """
      return _kind(key, msg, encoding)

  def prose(s, t):
      """Encode the bytes-like object s; t is a bytes-like object or ASCII string."""
      return _kind(s, t)

  def either(data):
      """data : str or bytes
          Anything.
      """
      return _kind(data)

  def c_like(*args):
      return _kind(*args)

  # No signature inspect can read: the one documented on the docstring is used.
  c_like.__signature__ = "none"
  c_like.__doc__ = "c_like(data: bytes, /, name)\n\nA C-style function."
  '''

  setup_all do
    dir = Path.join(System.tmp_dir!(), "sbtest_bytes_#{System.os_time()}_#{:rand.uniform(1_000_000)}")
    File.mkdir_p!(dir)
    File.write!(Path.join(dir, "sbtest_bytes_probe.py"), @probe)
    on_python_path(dir)

    on_exit(fn ->
      File.rm_rf!(dir)
      for file <- Path.wildcard(Path.join(SnakeBridge.SchemaCache.dir(), "sbtest_bytes_probe-*")), do: File.rm(file)
    end)

    Code.compile_string("""
    defmodule SnakeBridge.BytesParamsTest.Probe do
      use SnakeBridge, python: "sbtest_bytes_probe"
    end
    """)

    :ok
  end

  describe "stdlib binary APIs take plain Elixir binaries" do
    test "zlib: compress and decompress round-trip, checksums agree with Erlang's" do
      compressed = Zlib.compress!(@data)
      assert byte_size(compressed) < byte_size(@data)
      assert Zlib.decompress!(compressed) == @data
      assert Zlib.compress!(@data, 9) |> Zlib.decompress!() == @data
      assert Zlib.crc32!(@data) == :erlang.crc32(@data)
      assert Zlib.adler32!(@data) == :erlang.adler32(@data)
      # Not UTF-8 either way.
      assert Zlib.compress!(<<0, 255, 1>>) |> Zlib.decompress!() == <<0, 255, 1>>
      # The conversion is the wrapper's: port workers get bytes too.
      pool = [backend: {:pool, SnakeBridge.TestBackends.pool()}]
      assert Zlib.compress!(@data, [], pool) |> Zlib.decompress!([], pool) == @data
      assert Zlib.crc32!(@data, [], pool) == :erlang.crc32(@data)
    end

    test "hashlib: digests equal :crypto's" do
      expected = :crypto.hash(:sha256, @data) |> Base.encode16(case: :lower)
      assert Hashlib.sha256!(@data) |> SnakeBridge.method!("hexdigest") == expected
      assert Hashlib.sha256!(string: @data) |> SnakeBridge.method!("hexdigest") == expected
      assert Hashlib.new!("sha256", @data) |> SnakeBridge.method!("hexdigest") == expected

      assert Hashlib.md5!("abc") |> SnakeBridge.method!("digest") == :crypto.hash(:md5, "abc")
      assert Hashlib.Blake2b.new!(@data) |> SnakeBridge.method!("digest") == :crypto.hash(:blake2b, @data)

      assert Hashlib.pbkdf2_hmac!("sha256", "secret", "salt", 1000) ==
               :crypto.pbkdf2_hmac(:sha256, "secret", "salt", 1000, 32)
    end

    test "hmac: new, digest, the HMAC class and its update" do
      expected = :crypto.mac(:hmac, :sha256, "key", @data)
      assert Hmac.new!("key", @data, "sha256") |> SnakeBridge.method!("digest") == expected
      assert Hmac.new!("key", msg: @data, digestmod: "sha256") |> SnakeBridge.method!("digest") == expected
      assert Hmac.digest!("key", @data, "sha256") == expected
      assert Hmac.HMAC.new!("key", @data, "sha256") |> SnakeBridge.method!("digest") == expected
      h = Hmac.HMAC.new!("key", digestmod: "sha256")
      assert Hmac.HMAC.update!(h, @data) == nil
      assert Hmac.HMAC.digest!(h) == expected
    end

    test "base64: encoders take binaries; decoders, which also take text, keep it" do
      assert Base64.b64encode!(@data) == Base.encode64(@data)
      assert Base64.urlsafe_b64encode!(<<251, 255>>) == Base.url_encode64(<<251, 255>>)
      assert Base64.b32encode!("hello") == Base.encode32("hello")
      assert Base64.b64decode!(Base.encode64(@data)) == @data
    end

    test "struct: the buffer is bytes, the format stays text" do
      # <<1, 0, 0, 0>> is valid UTF-8: without the schema it would be a str.
      assert Struct.unpack!("<I", <<1, 0, 0, 0>>) == {1}
      assert Struct.calcsize!("<I") == 4
      assert Struct.Struct.new!("<HH") |> Struct.Struct.unpack!(<<1, 0, 2, 0>>) == {1, 2}
    end

    test "the generated docs and specs say so" do
      [{_, source}] = SnakeBridge.Generator.files(SnakeBridge.describe_library!("zlib", depth: 0), module: Z)
      assert source =~ "Binaries given for `data` are sent as Python `bytes`, valid UTF-8 or not."
      assert source =~ ~r/@spec compress\(binary\(\), term\(\), term\(\),/
    end
  end

  test "text parameters are not affected" do
    text = "The quick brown fox jumps over the lazy dog"
    assert Textwrap.fill!(text, 20) == SnakeBridge.call!("textwrap", "fill", [text, 20])
    assert is_binary(Textwrap.fill!(text, 20))
    assert Textwrap.dedent!("  a\n  b") == "a\nb"
    # str-only parameters of the binary modules too: hashlib.new's name, hmac's digestmod.
    assert Hashlib.new!("md5") |> SnakeBridge.getattr!("name") == "md5"
  end

  test "every parameter of the table of known C signatures refuses a str in Python" do
    # The table is a claim about CPython; check it against this interpreter, so a
    # parameter that also accepts text never gets listed.
    code = ~S"""
    import importlib, inspect, snakebridge_introspect as si
    samples = {"format": "<I", "digestmod": "sha256", "digest": "sha256", "name": "sha256",
               "hash_name": "sha256", "iterations": 1, "crc": 0}
    instances = {"_struct.Struct": lambda cls: cls("<I"), "hmac.HMAC": lambda cls: cls(b"k", digestmod="sha256")}
    accepted = []
    for qual, names in sorted(si._KNOWN_BYTES.items()):
        parts = qual.split(".")
        fn = importlib.import_module(parts[0])
        for part in parts[1:]:
            fn = getattr(fn, part)
        method = len(parts) == 3
        params = list(inspect.signature(fn).parameters.values())[1 if method else 0:]
        if method:
            cls = getattr(importlib.import_module(parts[0]), parts[1])
            fn = getattr(instances[parts[0] + "." + parts[1]](cls), parts[2])
        for target in names:
            args, kw = [], {}
            later = [p.name for p in params]
            for i, p in enumerate(params):
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                if p.name == target:
                    v = "-_" if target == "altchars" else "text"
                elif p.name in names:
                    v = b"bytes"
                elif p.default is not p.empty:
                    if p.kind == p.POSITIONAL_ONLY and target in later[i:]:
                        v = p.default
                    else:
                        continue
                else:
                    v = samples[p.name]
                if p.kind == p.KEYWORD_ONLY or (kw and p.kind != p.POSITIONAL_ONLY):
                    kw[p.name] = v
                else:
                    args.append(v)
            try:
                fn(*args, **kw)
                accepted.append(qual + ":" + target)
            except TypeError:
                pass
    """

    assert %{"accepted" => []} = SnakeBridge.exec!(code)
  end

  describe "annotations and docstrings of a Python module" do
    alias SnakeBridge.BytesParamsTest.Probe

    test "bytes-like annotations, alone or with None" do
      assert Probe.annotated!("a", "b", "c", "d", "e") == List.duplicate("bytes", 5)
      assert Probe.optional!("a", "b", "c") == ["bytes", "bytes", "bytes"]
      assert Probe.optional!() == ["NoneType", "NoneType", "NoneType"]
    end

    test "annotations that admit text, and no annotation, keep str" do
      assert Probe.textual!("a", "b", "c", "d") == ["str", "str", "str", "str"]
      assert Probe.textual!("a", <<255>>, "c") == ["str", "bytes", "str", "NoneType"]
    end

    test "docstrings: numpydoc and Google fields, prose; alternatives with text keep str" do
      assert Probe.numpydoc!("p", "l") == ["bytes", "str"]
      assert Probe.google!("k", "m", "e") == ["bytes", "bytes", "str"]
      assert Probe.google!("k", msg: "m") == ["bytes", "bytes", "str"]
      assert Probe.prose!("s", "t") == ["bytes", "str"]
      assert Probe.either!("d") == ["str"]
    end

    test "an annotation in a signature documented on the docstring" do
      assert Probe.c_like!("d", "n") == ["bytes", "str"]
    end

    test "the schema marks the parameters" do
      schema = SnakeBridge.describe_library!("sbtest_bytes_probe")
      google = Enum.find(schema.functions, &(&1.name == "google"))

      assert Enum.map(google.parameters, &{&1.name, &1.bytes_like}) == [
               {"key", true},
               {"msg", true},
               {"encoding", false}
             ]

      annotated = Enum.find(schema.functions, &(&1.name == "annotated"))
      # Annotated parameters are decided by their annotation (Types.coercion/1).
      assert Enum.all?(annotated.parameters, &(&1.bytes_like == false))
    end
  end
end
