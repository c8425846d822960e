# Generated at compile time of this file, from the real libraries (mix test
# starts the application before loading test files).
defmodule SnakeBridge.SigTest.Np do
  use SnakeBridge,
    python: "numpy",
    only: ~w(array zeros arange add sqrt modf divmod concatenate where busday_count ndarray)
end

defmodule SnakeBridge.SigTest.Builtins do
  use SnakeBridge,
    python: "builtins",
    only: ~w(range slice min max iter next getattr int str bytes dict type filter sorted ValueError)
end

defmodule SnakeBridge.SigTest.Itertools do
  use SnakeBridge, python: "itertools", only: ~w(islice count zip_longest repeat)
end

defmodule SnakeBridge.SigTest.Math do
  use SnakeBridge, python: "math"
end

defmodule SnakeBridge.SigTest.Collections do
  use SnakeBridge, python: "collections", only: ["deque"]
end

defmodule SnakeBridge.Generation.DocumentedSignaturesTest do
  # Callables that inspect gives no signature (C functions and types) take
  # natural arguments from the signatures their docstrings document: on several
  # lines, as overloads (one Elixir head, the number of arguments picks the
  # form), with a leading optional part, for ufuncs. What still has none takes
  # its positional arguments as `args: [...]` (docs/generated_modules.md,
  # "Arguments"). Expected values come from Python in the same run.
  use ExUnit.Case, async: true

  alias SnakeBridge.SigTest.{Np, Builtins, Itertools, Math, Collections}

  @moduletag timeout: 120_000

  defp py(expression), do: SnakeBridge.eval!(expression)
  defp list(iterable), do: SnakeBridge.call!("builtins", "list", [iterable])

  describe "numpy" do
    test "array/1 takes the data: a nested list is one argument, not the argument list" do
      a = Np.array!([[1, 2], [3, 4]])
      assert %SnakeBridge.Object{} = a
      assert SnakeBridge.getattr!(a, "shape") == py("__import__('numpy').array([[1, 2], [3, 4]]).shape")
      assert SnakeBridge.getattr!(a, "shape") == {2, 2}
      assert SnakeBridge.to_elixir!(a) == [[1, 2], [3, 4]]

      # the signature is read over its two lines: dtype positionally or by name, keyword-only copy
      assert Np.array!([1, 2], "float64") |> SnakeBridge.to_elixir!() == [1.0, 2.0]
      f = Np.array!([1, 2], dtype: "float64", copy: true, ndmin: 2)
      assert SnakeBridge.getattr!(f, "shape") == py("__import__('numpy').array([1, 2], dtype='float64', ndmin=2).shape")
      assert Np.array({1, 2}) |> elem(1) |> SnakeBridge.to_elixir!() == [1, 2]
    end

    test "zeros, arange (a leading optional start), concatenate (a tuple of arrays), where" do
      assert Np.zeros!({2, 3}) |> SnakeBridge.getattr!("shape") == {2, 3}
      assert Np.zeros!(3, "int64") |> SnakeBridge.to_elixir!() == [0, 0, 0]

      for {args, expr} <- [
            {[5], "arange(5)"},
            {[2, 5], "arange(2, 5)"},
            {[1, 10, 3], "arange(1, 10, 3)"}
          ] do
        assert apply(Np, :arange!, args) |> SnakeBridge.to_elixir!() ==
                 py("__import__('numpy').#{expr}.tolist()")
      end

      assert Np.arange!(5, dtype: "float64") |> SnakeBridge.to_elixir!() == [0.0, 1.0, 2.0, 3.0, 4.0]

      assert Np.arange!(1, 10, step: 4) |> SnakeBridge.to_elixir!() ==
               py("__import__('numpy').arange(1, 10, 4).tolist()")

      assert Np.concatenate!([[1, 2], [3]]) |> SnakeBridge.to_elixir!() == [1, 2, 3]
      assert Np.concatenate!([[[1], [2]], [[3], [4]]], axis: 1) |> SnakeBridge.to_elixir!() == [[1, 3], [2, 4]]

      assert Np.where!([true, false, true], [1, 2, 3], [7, 8, 9]) |> SnakeBridge.to_elixir!() == [1, 8, 3]

      assert Np.busday_count!("2024-01-01", "2024-01-08") ==
               py("int(__import__('numpy').busday_count('2024-01-01', '2024-01-08'))")
    end

    test "ufuncs take their nin inputs as arguments, the rest by name" do
      assert Np.add!(1, 2) == py("__import__('numpy').add(1, 2)")
      assert Np.add!(1, 2) == 3
      assert Np.sqrt!(4.0) == py("__import__('numpy').sqrt(4.0)")
      assert Np.sqrt!(4.0) == 2.0
      assert Np.add!(1, 2, dtype: "float64") == 3.0
      assert Np.add!([1, 2], [10, 20]) |> SnakeBridge.to_elixir!() == [11, 22]
      assert Np.modf!(2.5) == py("tuple(float(x) for x in __import__('numpy').modf(2.5))")
      assert Np.divmod!(7, 2) == {3, 1}

      # the arity is the ufunc's nin
      assert function_exported?(Np, :add!, 2) and not function_exported?(Np, :add!, 1)
      assert function_exported?(Np, :sqrt!, 1)
    end

    test "a ufunc's parameters from nin/nout agree with its documented signature" do
      %{"result" => result} =
        SnakeBridge.exec!("""
        import numpy as np, snakebridge_introspect as h
        def required(ps):
            return [p["name"] for p in ps if p["default"] is None and p["kind"] == "positional_only"]
        result = {n: [required(h._Describer(False).function(getattr(np, n), n, n)["parameters"]),
                      required(h._ufunc_parameters(getattr(np, n))[1])]
                  for n in ["add", "sqrt", "modf", "divmod"]}
        """)

      assert result["add"] == [["x1", "x2"], ["x1", "x2"]]
      for {name, [documented, from_nin]} <- result, do: assert(documented == from_nin, name)
    end

    test "methods documented as a.reshape(shape, order='C') take their arguments" do
      a = Np.arange!(6)
      b = Np.Ndarray.reshape!(a, {2, 3})
      assert SnakeBridge.getattr!(b, "shape") == {2, 3}

      assert Np.Ndarray.reshape!(a, {3, 2}, order: "F") |> SnakeBridge.to_elixir!() ==
               py("__import__('numpy').arange(6).reshape((3, 2), order='F').tolist()")

      assert Np.Ndarray.all!(Np.array!([1, 1])) == true
      assert Np.Ndarray.astype!(a, "float64") |> SnakeBridge.to_elixir!() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    end
  end

  describe "builtins" do
    test "range and slice: range(stop) and range(start, stop[, step]) as one function" do
      for {args, expr} <- [{[5], "range(5)"}, {[2, 5], "range(2, 5)"}, {[1, 10, 3], "range(1, 10, 3)"}] do
        assert list(apply(Builtins.Range, :new!, args)) == py("list(#{expr})")
      end

      assert SnakeBridge.getattr!(Builtins.Slice.new!(5), "stop") == 5
      assert SnakeBridge.getattr!(Builtins.Slice.new!(1, 5), "start") == 1
      assert SnakeBridge.eval!("[0, 1, 2, 3, 4, 5][s]", %{"s" => Builtins.Slice.new!(1, 5, 2)}) == [1, 3]
    end

    test "min and max: an iterable, or two or more values; default and key by name" do
      assert Builtins.max!([3, 1, 2]) == py("max([3, 1, 2])")
      assert Builtins.max!(3, 7) == py("max(3, 7)")
      assert Builtins.max!(3, 7, args: [9, 4]) == py("max(3, 7, 9, 4)")
      assert Builtins.min!([], default: :none) == "none"
      len = SnakeBridge.getattr!("builtins", "len")
      assert Builtins.max!(["a", "ccc", "bb"], key: len) == py("max(['a', 'ccc', 'bb'], key=len)")
      assert Builtins.min!(3, 1) == 1
      assert {:error, %SnakeBridge.PythonError{type: "ValueError"}} = Builtins.max([])
    end

    test "getattr, next and iter: optional positional parts in brackets" do
      obj = Builtins.Int.new!(5)
      assert Builtins.getattr!(obj, "real") == 5
      assert Builtins.getattr!(obj, "nothing", 42) == 42
      assert {:error, %SnakeBridge.PythonError{type: "AttributeError"}} = Builtins.getattr(obj, "nothing")

      it = Builtins.iter!([1])
      assert Builtins.next!(it) == 1
      assert Builtins.next!(it, :done) == "done"
    end

    test "int, str, bytes and dict: every documented form" do
      assert Builtins.Int.new!() |> SnakeBridge.to_elixir!() == py("int()")
      assert Builtins.Int.new!("12") |> SnakeBridge.to_elixir!() == 12
      assert Builtins.Int.new!("ff", 16) |> SnakeBridge.to_elixir!() == py("int('ff', 16)")
      assert Builtins.Str.new!(12) |> SnakeBridge.to_elixir!() == "12"
      assert Builtins.Bytes.new!("h\u00e9", "utf-8") |> SnakeBridge.to_elixir!() == py("bytes('h\u00e9', 'utf-8')")
      assert Builtins.Bytes.new!(3) |> SnakeBridge.to_elixir!() == <<0, 0, 0>>
      assert Builtins.Dict.new!() |> SnakeBridge.to_elixir!() == %{}
      assert Builtins.Dict.new!([{"a", 1}]) |> SnakeBridge.to_elixir!() == %{"a" => 1}
      assert Builtins.Dict.new!(b: 2) |> SnakeBridge.to_elixir!() == %{"b" => 2}
    end

    test "dict methods: get(key, default=None, /) and pop(k[,d])" do
      d = Builtins.Dict.new!([{"a", 1}])
      assert Builtins.Dict.get!(d, "a") == 1
      assert Builtins.Dict.get!(d, "x", 0) == 0
      assert Builtins.Dict.pop!(d, "x", :gone) == "gone"
      assert Builtins.Dict.pop!(d, "a") == 1
      assert {:error, %SnakeBridge.PythonError{type: "KeyError"}} = Builtins.Dict.pop(d, "a")
    end

    test "filter(function or None, iterable) and sorted(iterable, /, *, key=None, reverse=False)" do
      assert list(Builtins.Filter.new!(nil, [0, 1, 2])) == [1, 2]
      assert Builtins.sorted!([3, 1, 2], reverse: true) == [3, 2, 1]
    end

    test "a number of arguments no documented form takes is an ArgumentError, not an exception" do
      # type(object) and type(name, bases, dict, **kwds)
      assert Builtins.Type.new!(1) |> SnakeBridge.getattr!("__name__") == "int"

      assert {:error, %ArgumentError{message: message}} = Builtins.Type.new("X", {})
      assert message =~ "type(object) | type(name, bases, dict, **kwds)"
      assert message =~ "no documented form takes 2 positional arguments"

      # a third value where the keyword list goes: the error says how *args is given
      assert {:error, %ArgumentError{message: message}} = Builtins.max(3, 7, [9])
      assert message =~ "max(iterable, * [, default=obj, key=func]) | max(arg1, arg2, *args, * [, key=func])"
      assert message =~ "*args is given by name, as `args: [...]`"
    end
  end

  describe "itertools and math" do
    test "islice(iterable, stop) and islice(iterable, start, stop[, step])" do
      assert list(Itertools.Islice.new!(Itertools.Count.new!(), 4)) ==
               py("list(__import__('itertools').islice(__import__('itertools').count(), 4))")

      assert list(Itertools.Islice.new!(Enum.to_list(0..9), 2, 8, 2)) == [2, 4, 6]
      assert list(Itertools.Islice.new!(Enum.to_list(0..9), 2, 4)) == [2, 3]
    end

    test "zip_longest(iter1 [,iter2 [...]], [fillvalue=None]) and repeat(object [,times])" do
      assert list(Itertools.ZipLongest.new!([1, 2], [3], fillvalue: 0)) == [{1, 3}, {2, 0}]
      assert list(Itertools.ZipLongest.new!([1], [2], iters: [[3]])) == [{1, 2, 3}]
      assert list(Itertools.Repeat.new!("x", 3)) == ["x", "x", "x"]
    end

    test "math's documented arities" do
      assert Math.log!(8, 2) == py("__import__('math').log(8, 2)")
      assert Math.log!(1) == 0.0
      assert Math.hypot!(coordinates: [3, 4]) == 5.0
      assert Math.perm!(5, 2) == py("__import__('math').perm(5, 2)")
      assert Math.perm!(3) == 6
    end
  end

  describe "methods and properties given an Elixir value instead of an object" do
    test "are looked up on the class and called with the value" do
      # str.upper("abc"), not a module named "abc"
      assert Builtins.Str.upper!("abc") == py("str.upper('abc')")
      assert Builtins.Dict.get!(%{"a" => 1}, "a") == 1
      assert Builtins.Int.real!(5) == 5
      assert {:error, %SnakeBridge.PythonError{type: "TypeError"}} = Np.Ndarray.reshape([1, 2, 3, 4], {2, 2})
      assert {:error, %ArgumentError{message: message}} = Builtins.Int.real(5, [:nope])
      assert message =~ "options must be a keyword list"
    end
  end

  describe "non-bang wrappers never raise for user input" do
    test "any arguments give {:ok, _} or {:error, _}" do
      junk = [1, -1, [1, 2], [[1], [2]], %{1 => 2}, {:a}, "x", [a: 1], [args: 5], nil, 2.5]
      :rand.seed(:exsss, {13, 1, 6})

      for module <- [
            Np,
            Np.Ndarray,
            Builtins,
            Builtins.Range,
            Builtins.Dict,
            Builtins.Type,
            Itertools.Islice,
            Math,
            Collections.Deque
          ],
          {name, arity} <- module.__info__(:functions),
          not String.ends_with?(Atom.to_string(name), "!"),
          arity > 0,
          not String.starts_with?(Atom.to_string(name), "__"),
          _ <- 1..4 do
        args = for _ <- 1..arity, do: Enum.random(junk)
        result = apply(module, name, args)

        assert match?({:ok, _}, result) or match?({:error, %{__exception__: true}}, result),
               "#{inspect(module)}.#{name}#{inspect(List.to_tuple(args))} gave #{inspect(result)}"
      end
    end
  end

  describe "callables without any signature" do
    test "take positional arguments as args: [...]; a list given alone is refused, never spread" do
      q = Collections.Deque.new!()
      # deque.append documents no signature
      assert {:error, %ArgumentError{message: message}} = Collections.Deque.append(q, [1, 2])
      assert message =~ "no signature for append"
      assert message =~ "args: [[1, 2]]"
      assert_raise ArgumentError, fn -> Collections.Deque.append!(q, [1, 2]) end

      assert Collections.Deque.append!(q, args: [[1, 2]]) == nil
      assert Collections.Deque.append!(q, %{"args" => [3]}) == nil
      assert list(q) == [[1, 2], 3]
      assert Collections.Deque.pop!(q) == 3
      assert {:error, %ArgumentError{}} = Collections.Deque.append(q, args: 5)
    end

    test "the constructor of a C exception class" do
      e = Builtins.ValueError.new!(args: ["bad", 2])
      assert SnakeBridge.getattr!(e, "args") == {"bad", 2}
    end
  end
end
