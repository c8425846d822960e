defmodule SnakeBridge.Array do
  @moduledoc """
  A numeric array's bytes, element type and shape: what `SnakeBridge.to_array/2`
  makes of a numpy array (or anything with Python's buffer protocol), and what
  crosses to Python as a read-only numpy array when passed as an argument.

    * `data` — the elements, row-major (C order), in this machine's byte order;
    * `type` — the element type as Nx spells it: `{:s, 8 | 16 | 32 | 64}`,
      `{:u, 8 | 16 | 32 | 64}`, `{:f, 16 | 32 | 64}`, `{:c, 64 | 128}` (numpy's
      bool is `{:u, 8}`);
    * `shape` — a tuple of dimensions, `{}` for a single number.

  So `Nx.from_binary(a.data, a.type) |> Nx.reshape(a.shape)` makes a tensor of
  it, and `%SnakeBridge.Array{data: Nx.to_binary(t), type: Nx.type(t), shape:
  Nx.shape(t)}` an array of a tensor (Nx is not a dependency of SnakeBridge).
  See `docs/arrays.md` for what is copied when.

      iex> a = %SnakeBridge.Array{data: <<1.5::float-64-native, 2.5::float-64-native>>, type: {:f, 64}, shape: {2}}
      iex> SnakeBridge.call!("numpy", "sum", [a])
      4.0
      iex> SnakeBridge.Array.to_flat_list(a)
      [1.5, 2.5]
  """

  @enforce_keys [:data, :type, :shape]
  defstruct [:data, :type, :shape]

  @type element_type ::
          {:s, 8 | 16 | 32 | 64} | {:u, 8 | 16 | 32 | 64} | {:f, 16 | 32 | 64} | {:c, 64 | 128}
  @type t :: %__MODULE__{data: binary(), type: element_type(), shape: tuple()}

  @typedoc "An element: a number, `:nan`, `:infinity` or `:neg_infinity`; `{re, im}` for complex types."
  @type element :: number() | :nan | :infinity | :neg_infinity | {number() | atom(), number() | atom()}

  @doc """
  The elements of `array` in row-major order, at most `limit` of them (floats
  that Erlang has no value for as `:nan`, `:infinity`, `:neg_infinity`;
  complex numbers as `{re, im}`).

      iex> a = %SnakeBridge.Array{data: <<1, 0, 2, 0, 3, 0>>, type: {:s, 16}, shape: {3}}
      iex> SnakeBridge.Array.to_flat_list(a)
      [1, 2, 3]
      iex> SnakeBridge.Array.to_flat_list(a, 2)
      [1, 2]
  """
  @spec to_flat_list(t(), non_neg_integer() | :infinity) :: [element()]
  def to_flat_list(%__MODULE__{data: data, type: type}, limit \\ :infinity) do
    {_kind, bits} = type
    size = div(bits, 8)
    count = div(byte_size(data), size)
    count = if limit == :infinity, do: count, else: min(count, limit)
    for i <- 0..(count - 1)//1, do: element(type, binary_part(data, i * size, size))
  end

  defp element({:s, bits}, chunk) do
    <<x::signed-native-size(bits)>> = chunk
    x
  end

  defp element({:u, bits}, chunk) do
    <<x::unsigned-native-size(bits)>> = chunk
    x
  end

  defp element({:f, bits}, chunk), do: float(bits, chunk)

  defp element({:c, bits}, chunk) do
    half = div(bits, 2)
    <<re::binary-size(div(half, 8)), im::binary>> = chunk
    {float(half, re), float(half, im)}
  end

  defp float(bits, chunk) do
    case chunk do
      <<x::float-native-size(bits)>> -> x
      # inf and nan, which the binary syntax does not read: all exponent bits set.
      <<u::unsigned-native-size(bits)>> -> special_float(bits, u)
    end
  end

  defp special_float(bits, u) do
    mantissa_bits = %{16 => 10, 32 => 23, 64 => 52}[bits]

    cond do
      Bitwise.band(u, Bitwise.bsl(1, mantissa_bits) - 1) != 0 -> :nan
      Bitwise.bsr(u, bits - 1) == 1 -> :neg_infinity
      true -> :infinity
    end
  end

  defimpl Inspect do
    import Inspect.Algebra

    @shown 10

    def inspect(%{data: data, type: {kind, bits} = type, shape: shape} = array, opts)
        when is_binary(data) and is_atom(kind) and is_integer(bits) and bits > 0 do
      dims = if is_tuple(shape), do: shape |> Tuple.to_list() |> Enum.map_join(&"[#{&1}]"), else: inspect(shape)
      head = "#{kind}#{bits}#{dims}"
      count = byte_size(data) * 8 / bits

      body =
        if valid?(type, shape, data) do
          shown = SnakeBridge.Array.to_flat_list(array, @shown)
          more = if count > @shown, do: [:more], else: []
          container_doc("[", shown ++ more, "]", opts, &element_doc/2, separator: ",")
        else
          "(#{byte_size(data)} bytes, not a valid array)"
        end

      concat(["#SnakeBridge.Array<", head, " ", body, ">"]) |> group()
    end

    def inspect(array, opts), do: Inspect.Any.inspect(array, opts)

    defp element_doc(:more, _opts), do: "..."
    defp element_doc(x, opts), do: to_doc(x, opts)

    defp valid?({kind, bits}, shape, data) when is_tuple(shape) do
      types = %{s: [8, 16, 32, 64], u: [8, 16, 32, 64], f: [16, 32, 64], c: [64, 128]}
      dims = Tuple.to_list(shape)

      bits in Map.get(types, kind, []) and Enum.all?(dims, &(is_integer(&1) and &1 >= 0)) and
        Enum.product(dims) * div(bits, 8) == byte_size(data)
    end

    defp valid?(_type, _shape, _data), do: false
  end
end
