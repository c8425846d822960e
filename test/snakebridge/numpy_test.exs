defmodule SnakeBridge.NumpyTest do
  # numpy (Debian's python3-numpy) through the embedded interpreter.
  use ExUnit.Case, async: true

  alias SnakeBridge.Object

  test "arange, reshape, shape and to_elixir" do
    a = SnakeBridge.call!("numpy", "arange", [12])
    assert %Object{type: "numpy.ndarray"} = a
    assert SnakeBridge.getattr!(a, "shape") == {12}
    assert SnakeBridge.to_elixir!(a) == Enum.to_list(0..11)

    m = SnakeBridge.method!(a, "reshape", [3, 4])
    assert %Object{type: "numpy.ndarray"} = m
    # shape is a Python tuple, so an Elixir tuple
    assert SnakeBridge.getattr!(m, "shape") == {3, 4}
    assert SnakeBridge.getattr!(m, "ndim") == 2
    assert SnakeBridge.getattr!(m, "size") == 12
    assert SnakeBridge.to_elixir!(m) == Enum.chunk_every(0..11, 4)
  end

  test "sum with and without the axis keyword" do
    rows = Enum.chunk_every(0..11, 4)
    m = SnakeBridge.call!("numpy", "arange", [12]) |> SnakeBridge.method!("reshape", [3, 4])

    # a full reduction is a numpy integer scalar: an Elixir integer in :auto mode
    total = SnakeBridge.method!(m, "sum")
    assert is_integer(total)
    assert total == Enum.sum(0..11)

    col_sums = SnakeBridge.method!(m, "sum", [], axis: 0)
    assert %Object{type: "numpy.ndarray"} = col_sums
    assert SnakeBridge.to_elixir!(col_sums) == rows |> Enum.zip_with(&Enum.sum/1)

    row_sums = SnakeBridge.method!(m, "sum", [], axis: 1)
    assert SnakeBridge.to_elixir!(row_sums) == Enum.map(rows, &Enum.sum/1)

    # the module function with the array object as an argument
    assert SnakeBridge.call!("numpy", "sum", [m], axis: 1) |> SnakeBridge.to_elixir!() ==
             Enum.map(rows, &Enum.sum/1)
  end

  test "return: :value converts an array to nested lists directly" do
    assert SnakeBridge.call!("numpy", "arange", [6], [], return: :value) == Enum.to_list(0..5)

    assert SnakeBridge.call!("numpy", "ones", [{2, 3}], [dtype: "int32"], return: :value) ==
             List.duplicate(List.duplicate(1, 3), 2)
  end

  test "float arrays: dtype, mean, linspace" do
    data = [[1.5, 2.0], [3.0, 4.5]]
    a = SnakeBridge.call!("numpy", "array", [data])
    assert SnakeBridge.getattr!(a, "dtype.name") == "float64"
    assert %Object{type: "numpy.dtype" <> _} = SnakeBridge.getattr!(a, "dtype")

    flat = List.flatten(data)
    mean = SnakeBridge.method!(a, "mean")
    assert is_float(mean)
    assert mean == Enum.sum(flat) / length(flat)

    assert SnakeBridge.call!("numpy", "linspace", [0, 1, 5]) |> SnakeBridge.to_elixir!() ==
             Enum.map(0..4, &(&1 / 4))

    ints = SnakeBridge.call!("numpy", "array", [[1, 2, 3]])
    assert SnakeBridge.getattr!(ints, "dtype.name") == "int64"
  end

  test "an array built from an Elixir list; matmul and transpose match Elixir arithmetic" do
    m = [[1, 2, 3], [4, 5, 6]]
    a = SnakeBridge.call!("numpy", "array", [m])
    assert SnakeBridge.getattr!(a, "shape") == {2, 3}
    assert SnakeBridge.to_elixir!(a) == m

    transpose = Enum.zip_with(m, & &1)
    t = SnakeBridge.getattr!(a, "T")
    assert SnakeBridge.to_elixir!(t) == transpose

    # a @ a.T: entry (i, j) is the dot product of rows i and j of m
    dot = fn u, v -> u |> Enum.zip(v) |> Enum.map(fn {x, y} -> x * y end) |> Enum.sum() end
    product = for r1 <- m, do: for(r2 <- m, do: dot.(r1, r2))

    assert SnakeBridge.call!("numpy", "matmul", [a, t]) |> SnakeBridge.to_elixir!() == product

    # elementwise arithmetic via numpy.add on two objects
    doubled = SnakeBridge.call!("numpy", "add", [a, a])
    assert SnakeBridge.to_elixir!(doubled) == Enum.map(m, fn row -> Enum.map(row, &(&1 * 2)) end)
  end

  test "numpy scalars come back as Elixir numbers and booleans in :auto mode" do
    i = SnakeBridge.call!("numpy", "int64", [5])
    assert is_integer(i) and i == 5

    f = SnakeBridge.call!("numpy", "float64", [2.5])
    assert is_float(f) and f == 2.5

    assert SnakeBridge.call!("numpy", "bool_", [true]) === true
    assert SnakeBridge.call!("numpy", "bool_", [false]) === false

    assert SnakeBridge.call!("numpy", "uint64", [2 ** 64 - 1]) == 2 ** 64 - 1
    assert SnakeBridge.call!("numpy", "float64", [:infinity]) == :infinity
    assert SnakeBridge.call!("numpy", "float64", [:nan]) == :nan

    # float32 widens exactly as Python's float() does
    np = SnakeBridge.call!("importlib", "import_module", ["numpy"])

    assert SnakeBridge.call!("numpy", "float32", [0.1]) ==
             SnakeBridge.eval!("float(np.float32(0.1))", %{"np" => np})

    # a comparison result is a numpy bool
    a = SnakeBridge.call!("numpy", "array", [[1, 2, 3]])

    assert SnakeBridge.call!("numpy", "all", [SnakeBridge.call!("numpy", "greater", [a, 0])]) ===
             true

    assert SnakeBridge.call!("numpy", "greater", [a, 1]) |> SnakeBridge.to_elixir!() == [
             false,
             true,
             true
           ]
  end

  test "a 0-d array converts to a scalar; complex has no Elixir equivalent" do
    assert SnakeBridge.call!("numpy", "array", [7]) |> SnakeBridge.to_elixir!() == 7

    c = SnakeBridge.call!("numpy", "complex128", [1.5])
    assert %Object{type: "numpy.complex128"} = c
    assert {:error, %SnakeBridge.ConversionError{}} = SnakeBridge.to_elixir(c)
  end

  test "frombuffer reads an Elixir binary passed as bytes" do
    ints = [1, 2, -3, 2_000_000_000]
    bin = for i <- ints, into: <<>>, do: <<i::little-signed-32>>

    assert SnakeBridge.call!("numpy", "frombuffer", [SnakeBridge.bytes(bin)], dtype: "<i4")
           |> SnakeBridge.to_elixir!() ==
             ints

    # and tobytes gives it back
    a = SnakeBridge.call!("numpy", "array", [ints], dtype: "<i4")
    assert SnakeBridge.method!(a, "tobytes") == bin
  end
end
