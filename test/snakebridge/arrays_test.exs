defmodule SnakeBridge.ArraysTest do
  # SnakeBridge.to_array/2, %SnakeBridge.Array{} arguments and pandas columns
  # (docs/arrays.md), on both backends, against real numpy and pandas. Every
  # expectation comes from Python (tobytes, tolist, shape, dtype) or from the
  # Elixir input, never from the code under test.
  use ExUnit.Case, async: true

  import SnakeBridge.Test.Helpers, only: [wait_until: 2]

  alias SnakeBridge.{Array, TestBackends}

  # The Nx kind of a numpy dtype kind: numpy's bool is {:u, 8}.
  @kinds %{"b" => :u, "i" => :s, "u" => :u, "f" => :f, "c" => :c}

  # `expr` evaluated in Python with numpy (np), array, pandas (pd) and the
  # given variables, as a reference.
  defp py(expr, backend, vars \\ %{}) do
    code = "import numpy as np, array, pandas as pd\nresult = " <> expr
    SnakeBridge.exec!(code, vars, backend: backend, return: :ref)["result"]
  end

  # The same, converted to Elixir.
  defp value(expr, backend, vars) do
    SnakeBridge.eval!(expr, Map.put(vars, "np", py("np", backend)), backend: backend)
  end

  # What Python says an array-like `x` holds: {type, shape, C-order bytes in
  # native byte order, flat values}.
  defp expected(x, backend) do
    {kind, bits, shape, bytes, flat} =
      value(
        "(lambda a: (a.dtype.kind, a.dtype.itemsize * 8, a.shape, a.tobytes(), " <>
          "[[v.real, v.imag] if a.dtype.kind == 'c' else v for v in a.ravel().tolist()]))" <>
          "((lambda b: b.astype(b.dtype.newbyteorder('=')))" <>
          "(np.asarray(memoryview(x)) if isinstance(x, (bytes, bytearray)) else np.asarray(x)))",
        backend,
        %{"x" => x}
      )

    flat = if kind == "b", do: Enum.map(flat, &if(&1, do: 1, else: 0)), else: flat
    {{@kinds[kind], bits}, shape, bytes, flat}
  end

  defp flat(%Array{type: {:c, _}} = a), do: a |> Array.to_flat_list() |> Enum.map(&Tuple.to_list/1)
  defp flat(a), do: Array.to_flat_list(a)

  defp assert_matches_python(x, backend) do
    {type, shape, bytes, values} = expected(x, backend)
    assert {:ok, %Array{} = a} = SnakeBridge.to_array(x, backend: backend)
    assert a.type == type
    assert a.shape == shape
    assert a.data == bytes
    assert flat(a) == values
    a
  end

  defp floats(list), do: for(x <- list, into: <<>>, do: <<x::float-64-native>>)

  for backend <- TestBackends.all() do
    describe "to_array (#{TestBackends.name(backend)})" do
      @backend backend

      for dtype <-
            ~w(int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 complex64 complex128 bool) do
        @dtype dtype
        test "a #{dtype} array has its Nx type, its bytes and its values" do
          x =
            py(
              """
              (lambda rng, d: (rng.integers(0, 3, 12) if d.kind == 'b'
                 else rng.integers(0, 250, 12) if d.kind in 'ui'
                 else rng.standard_normal(12) * 100 + 1j * rng.standard_normal(12) if d.kind == 'c'
                 else rng.standard_normal(12) * 100).astype(d))(np.random.default_rng(12), np.dtype('#{@dtype}'))
              """,
              @backend
            )

          assert_matches_python(x, @backend)
        end
      end

      test "negative integers and special floats keep their values" do
        assert_matches_python(py("np.arange(-6, 6, dtype='int16')", @backend), @backend)

        a = assert_matches_python(py("np.array([np.nan, np.inf, -np.inf, -0.0], dtype='float32')", @backend), @backend)
        assert Array.to_flat_list(a) |> Enum.take(3) == [:nan, :infinity, :neg_infinity]
      end

      test "0-d, 1-d, 3-d and empty shapes" do
        for expr <-
              ["np.float64(2.5)", "np.array(7, dtype='int32')", "np.arange(5.0)", "np.arange(24).reshape(2, 3, 4)"] ++
                ["np.zeros((0, 3))", "np.zeros(0, dtype='uint8')", "np.ones((2, 0, 4), dtype='complex64')"] do
          x = py(expr, @backend)
          a = assert_matches_python(x, @backend)
          assert tuple_size(a.shape) == value("np.ndim(x)", @backend, %{"x" => x})
        end
      end

      test "transposed, strided, reversed and byte-swapped arrays arrive C-contiguous in native order" do
        for expr <- [
              "np.arange(24.0).reshape(4, 6).T",
              "np.arange(100, dtype='int32').reshape(10, 10)[::3, ::-2]",
              "np.arange(10)[::-1]",
              "np.arange(12, dtype='>i4').reshape(3, 4)",
              "np.arange(6, dtype='>c16')",
              "memoryview(bytes(range(20))).cast('B', (4, 5))[::2]"
            ] do
          x = py(expr, @backend)
          a = assert_matches_python(x, @backend)
          # tobytes() is C order and expected/2 read the array through numpy in
          # native order; the swapped dtype reads the same values.
          assert a.shape == value("np.asarray(x).shape", @backend, %{"x" => x})
        end
      end

      test "memoryview, array.array, bytes and bytearray" do
        for expr <- [
              "memoryview(array.array('h', range(-5, 5)))",
              "array.array('d', [0.5, -1.25, 3.0])",
              "array.array('Q', [2**64 - 1, 0, 7])",
              "memoryview(array.array('f', [1.5, 2.5, 3.5, 4.5])).cast('B').cast('f', (2, 2))",
              "b'bytes'",
              "bytearray(b'bytearray')"
            ] do
          assert_matches_python(py(expr, @backend), @backend)
        end
      end

      test "objects with __array__ (a pandas Series)" do
        assert_matches_python(py("pd.Series([1.5, 2.5, 4.0])", @backend), @backend)
      end

      test "copy: true gives the same array" do
        x = py("np.arange(10000.0)", @backend)
        assert SnakeBridge.to_array!(x, backend: @backend, copy: true) == SnakeBridge.to_array!(x, backend: @backend)
        assert_raise ArgumentError, ~r/:copy/, fn -> SnakeBridge.to_array(x, backend: @backend, copy: :yes) end
      end

      test "arrays of objects, text, datetimes and records are an ArgumentError naming their dtype" do
        for expr <- [
              "np.array([1, 'a'], dtype=object)",
              "np.array(['ab', 'c'])",
              "np.array(['2024-01-01'], dtype='datetime64[ns]')",
              "np.zeros(2, dtype=[('a', 'i4'), ('b', 'f8')])",
              "np.zeros(3, dtype=np.longdouble)"
            ] do
          x = py(expr, @backend)
          dtype = value("str(x.dtype)", @backend, %{"x" => x})
          assert {:error, %ArgumentError{message: message}} = SnakeBridge.to_array(x, backend: @backend)
          assert message =~ "numpy.ndarray of dtype #{dtype} has no SnakeBridge.Array type"
        end

        assert {:error, %ArgumentError{message: message}} =
                 SnakeBridge.to_array(py("object()", @backend), backend: @backend)

        assert message =~ "neither the buffer protocol nor __array__"

        assert_raise ArgumentError, fn ->
          SnakeBridge.to_array!(py("array.array('u', 'ab')", @backend), backend: @backend)
        end
      end

      test "a 64 MiB array crosses whole and comes back equal" do
        x = py("np.random.default_rng(7).standard_normal(8 * 1024 * 1024)", @backend)
        a = SnakeBridge.to_array!(x, backend: @backend)
        assert a.shape == {8 * 1024 * 1024}
        assert byte_size(a.data) == 64 * 1024 * 1024

        assert :crypto.hash(:sha256, a.data) ==
                 value("__import__('hashlib').sha256(x.tobytes()).digest()", @backend, %{"x" => x})

        assert value("bool(np.array_equal(x, a)) and a.flags.writeable == False", @backend, %{"x" => x, "a" => a})
      end
    end

    describe "arrays as arguments (#{TestBackends.name(backend)})" do
      @backend backend

      test "numpy sums an Array along each axis as Elixir does" do
        rows = [[1.5, 2.0, -3.25, 8.0], [4.0, 0.5, 6.0, -1.0], [0.25, 0.125, 9.5, 3.0]]
        a = %Array{data: floats(List.flatten(rows)), type: {:f, 64}, shape: {3, 4}}
        o = [backend: @backend]

        assert SnakeBridge.call!("numpy", "sum", [a], [axis: 1], o) |> SnakeBridge.to_elixir!(o) ==
                 Enum.map(rows, &Enum.sum/1)

        assert SnakeBridge.call!("numpy", "sum", [a], [axis: 0], o) |> SnakeBridge.to_elixir!(o) ==
                 rows |> Enum.zip_with(&Enum.sum/1)
      end

      test "every type becomes the numpy dtype of its kind and size, with the same values" do
        for {type, values} <- [
              {{:s, 8}, [-128, 0, 127]},
              {{:s, 16}, [-32768, 5, 32767]},
              {{:s, 32}, [-(2 ** 31), 6, 2 ** 31 - 1]},
              {{:s, 64}, [-(2 ** 63), 7, 2 ** 63 - 1]},
              {{:u, 8}, [0, 1, 255]},
              {{:u, 16}, [0, 2, 65535]},
              {{:u, 32}, [0, 3, 2 ** 32 - 1]},
              {{:u, 64}, [0, 4, 2 ** 64 - 1]},
              {{:f, 16}, [0.5, -2.0, 65504.0]},
              {{:f, 32}, [0.5, -2.25, 1_048_576.5]},
              {{:f, 64}, [0.1, -2.5, 1.0e300]},
              {{:c, 64}, [1.5, -2.0, 0.25, 4.0]},
              {{:c, 128}, [0.1, 0.2, -0.3, 0.4]}
            ] do
          {kind, bits} = type

          data =
            for v <- values, into: <<>> do
              case kind do
                :s -> <<v::signed-native-size(bits)>>
                :u -> <<v::unsigned-native-size(bits)>>
                :f -> <<v::float-native-size(bits)>>
                :c -> <<v::float-native-size(div(bits, 2))>>
              end
            end

          shape = if kind == :c, do: {2}, else: {3}
          a = %Array{data: data, type: type, shape: shape}

          {dtype_kind, size, flat} =
            value(
              "(a.dtype.kind, a.dtype.itemsize * 8, [[v.real, v.imag] if a.dtype.kind == 'c' else v for v in a.tolist()])",
              @backend,
              %{"a" => a}
            )

          assert {@kinds[dtype_kind], size} == type
          expected = if kind == :c, do: Enum.chunk_every(values, 2), else: values
          assert flat == expected
          assert Array.to_flat_list(a) |> Enum.map(&if(is_tuple(&1), do: Tuple.to_list(&1), else: &1)) == expected
        end
      end

      test "arrays inside lists, maps and tuples are read-only numpy arrays of their shape" do
        a = %Array{data: floats([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), type: {:f, 64}, shape: {3, 2}}
        scalar = %Array{data: <<42::signed-native-32>>, type: {:s, 32}, shape: {}}
        empty = %Array{data: <<>>, type: {:u, 8}, shape: {0, 5}}

        described =
          value(
            "[(type(v).__name__, v.dtype.str[1:], v.shape, v.flags.writeable) for v in (l[1], d['k'], t[0], s, e)]",
            @backend,
            %{"l" => [1, a], "d" => %{"k" => a}, "t" => {a}, "s" => scalar, "e" => empty}
          )

        assert described ==
                 List.duplicate({"ndarray", "f8", {3, 2}, false}, 3) ++
                   [{"ndarray", "i4", {}, false}, {"ndarray", "u1", {0, 5}, false}]

        assert {:error, %SnakeBridge.PythonError{type: "ValueError"}} =
                 SnakeBridge.exec("a[0, 0] = 9.0", %{"a" => a}, backend: @backend)
      end

      test "an array made by to_array goes back as an equal numpy array" do
        x = py("np.arange(60, dtype='float32').reshape(3, 4, 5).transpose(2, 0, 1)", @backend)
        a = SnakeBridge.to_array!(x, backend: @backend)
        assert value("bool(np.array_equal(x, a)) and a.dtype == x.dtype", @backend, %{"x" => x, "a" => a})
      end

      test "a malformed Array is an ArgumentError that names it and where it is" do
        for bad <- [
              %Array{data: <<1, 2, 3>>, type: {:f, 64}, shape: {1}},
              %Array{data: <<0::64>>, type: {:f, 8}, shape: {1}},
              %Array{data: <<0::64>>, type: {:x, 64}, shape: {1}},
              %Array{data: <<0::64>>, type: {:f, 64}, shape: [1]},
              %Array{data: <<0::64>>, type: {:f, 64}, shape: {-1}},
              %Array{data: [0], type: {:f, 64}, shape: {1}},
              %Array{data: <<0::60>>, type: {:u, 8}, shape: {1}}
            ] do
          assert {:error, %ArgumentError{message: message}} =
                   SnakeBridge.call("builtins", "len", [[1, bad]], [], backend: @backend)

          assert message =~ "(argument 0[1])"
          assert message =~ "a SnakeBridge.Array needs a type"
        end
      end
    end

    describe "pandas columns (#{TestBackends.name(backend)})" do
      @backend backend

      setup do
        df =
          py(
            """
            pd.DataFrame({
                'price': [1.5, np.nan, -2.25, 1e10],
                'count': np.array([3, -1, 0, 2**40], dtype='int64'),
                'name': ['a', None, 'ç', ''],
                'when': pd.to_datetime(['2024-01-31 10:00:00.123456', None, '1999-12-31', '2024-02-29 23:59:59']),
                'zoned': pd.to_datetime(['2024-01-31 10:00', '2024-06-01', '2000-01-01', '2024-12-24']).tz_localize('UTC'),
            }, index=pd.Index(['w', 'x', 'y', 'z'], name='key'))
            """,
            @backend
          )

        %{df: df}
      end

      test "numeric columns are arrays, the others lists of Elixir values", %{df: df} do
        o = [backend: @backend]
        columns = SnakeBridge.to_columns!(df, o)
        assert columns |> Map.keys() |> Enum.sort() == ~w(count name price when zoned)

        for name <- ~w(price count) do
          assert_matches_python(SnakeBridge.call!(df, "__getitem__", [name], [], o), @backend)
          {type, _shape, bytes, _values} = expected(SnakeBridge.call!(df, "__getitem__", [name], [], o), @backend)
          assert %Array{type: ^type, data: ^bytes} = columns[name]
        end

        assert columns["name"] == value("[None if v is None else v for v in df['name']]", @backend, %{"df" => df})

        assert Enum.map(columns["when"], &(&1 && NaiveDateTime.to_iso8601(&1))) ==
                 value("[None if v is pd.NaT else v.isoformat() for v in df['when']]", @backend, %{
                   "df" => df,
                   "pd" => py("pd", @backend)
                 })

        assert Enum.map(columns["zoned"], &DateTime.to_unix(&1, :microsecond)) ==
                 value("[v.value // 1000 for v in df['zoned']]", @backend, %{"df" => df})
      end

      test "the index is a column only with index: true", %{df: df} do
        o = [backend: @backend]
        assert Map.has_key?(SnakeBridge.to_columns!(df, o), "key") == false
        assert SnakeBridge.to_columns!(df, [index: true] ++ o)["key"] == ~w(w x y z)
      end

      test "the columns passed to pandas.DataFrame build the same frame back", %{df: df} do
        o = [backend: @backend]
        columns = SnakeBridge.to_columns!(df, o)
        back = SnakeBridge.call!("pandas", "DataFrame", [columns], [], o)

        assert value(
                 "[str(back[c].dtype) == str(df[c].dtype) for c in df.columns] + " <>
                   "[back[list(df.columns)].set_axis(df.index).equals(df)]",
                 @backend,
                 %{"df" => df, "back" => back}
               ) == List.duplicate(true, 6)
      end

      test "anything but a DataFrame is a TypeError", %{df: _} do
        assert {:error, %SnakeBridge.PythonError{type: "TypeError", message: message}} =
                 SnakeBridge.to_columns(py("np.arange(3)", @backend), backend: @backend)

        assert message =~ "needs a pandas.DataFrame, got a numpy.ndarray"
      end
    end
  end

  describe "in-process: the binary and the Python array share memory" do
    test "the array lives while only the binary is referenced, and is freed once it is gone" do
      parent = self()

      holder =
        spawn(fn ->
          x = py("np.arange(1_000_000, dtype='float64') * 3", :nif)
          ref = SnakeBridge.call!("weakref", "ref", [x])
          sha = value("__import__('hashlib').sha256(x.tobytes()).digest()", :nif, %{"x" => x})
          data = SnakeBridge.to_array!(x).data
          send(parent, {:made, ref, sha})

          receive do
            :read -> send(parent, {:read, :crypto.hash(:sha256, data)})
          end

          receive do: (:stop -> :ok)
        end)

      assert_receive {:made, ref, sha}, 10_000
      # The holder dropped its handle of the array: only the binary is left.
      :erlang.garbage_collect(holder)
      SnakeBridge.eval!("0")
      Process.sleep(50)
      assert SnakeBridge.eval!("r() is not None", %{"r" => ref})
      send(holder, :read)
      assert_receive {:read, ^sha}, 5_000

      monitor = Process.monitor(holder)
      send(holder, :stop)
      assert_receive {:DOWN, ^monitor, :process, ^holder, :normal}
      :erlang.garbage_collect()
      assert wait_until(5_000, fn -> SnakeBridge.eval!("r() is None", %{"r" => ref}) end)
    end

    test "converting takes as long for 64 MiB as for 1 KiB" do
      small = py("np.ones(128)", :nif)
      large = py("np.ones(8 * 1024 * 1024)", :nif)
      time = fn x -> for(_ <- 1..20, do: elem(:timer.tc(fn -> SnakeBridge.to_array!(x) end), 0)) |> Enum.min() end
      # A copy of 64 MiB alone takes milliseconds.
      assert time.(large) < max(10 * time.(small), 1_000)
    end
  end

  describe "through a port worker" do
    test "the worker releases the array when the handle is dropped, while the binary stays readable" do
      pool = {:pool, TestBackends.pool()}
      o = [backend: pool]

      {ref, data, sha} =
        Task.async(fn ->
          x = py("np.arange(100_000, dtype='int32')", pool)
          ref = SnakeBridge.call!("weakref", "ref", [x], [], o)
          sha = value("__import__('hashlib').sha256(x.tobytes()).digest()", pool, %{"x" => x})
          {ref, SnakeBridge.to_array!(x, o).data, sha}
        end)
        |> Task.await()

      :erlang.garbage_collect()
      assert wait_until(5_000, fn -> SnakeBridge.eval!("r() is None", %{"r" => ref}, o) end)
      assert :crypto.hash(:sha256, data) == sha
    end
  end

  test "Inspect shows the type, the shape and the first elements" do
    a = %Array{data: floats(Enum.map(1..12, &(&1 * 1.0))), type: {:f, 64}, shape: {3, 4}}
    assert inspect(a) =~ "#SnakeBridge.Array<f64[3][4] [1.0, 2.0, 3.0"
    assert inspect(a) =~ "10.0, ...]>"
    assert inspect(%Array{data: <<7::signed-native-64>>, type: {:s, 64}, shape: {}}) == "#SnakeBridge.Array<s64 [7]>"
    assert inspect(%Array{data: <<1, 2>>, type: {:f, 64}, shape: {1}}) =~ "not a valid array"
  end

  doctest SnakeBridge.Array
end
