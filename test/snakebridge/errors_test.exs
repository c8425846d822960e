defmodule SnakeBridge.ErrorsTest do
  # Python exceptions, terms that cannot cross, and the interpreter's health after
  # each failure, on each backend (the embedded interpreter and a pool of port
  # workers).
  use ExUnit.Case, async: true

  alias SnakeBridge.{PythonError, TestBackends}
  alias SnakeBridge.Test.EncoderFixtures.{Opaque, Point, Segment, Temperature, Wrapper}

  # The interpreter keeps answering after a failure.
  defp assert_alive(backend) do
    assert SnakeBridge.call!("math", "sqrt", [49.0], [], backend: backend) == 7.0
    assert SnakeBridge.eval!("x + 1", %{"x" => 41}, backend: backend) == 42
  end

  # module.qualname of a Python class, as Python itself spells it
  defp qualified(class, backend) do
    SnakeBridge.eval!("c.__module__ + '.' + c.__qualname__", %{"c" => class}, backend: backend)
  end

  for backend <- TestBackends.all() do
    describe "Python exceptions (#{TestBackends.name(backend)})" do
      @backend backend

      setup do
        ns =
          SnakeBridge.exec!(
            """
            class MyError(Exception):
                pass

            class Outer:
                class Inner(Exception):
                    pass

            def boom(a):
                raise ValueError('bad ' + str(a))

            def raise_custom(msg):
                raise MyError(msg)

            def raise_nested():
                raise Outer.Inner('deep')

            def chained():
                try:
                    1 / 0
                except ZeroDivisionError as e:
                    raise RuntimeError('wrapped') from e
            """,
            %{"__name__" => "sb_errors_fixture"},
            backend: @backend
          )

        {:ok, ns: ns}
      end

      test "a ValueError raised by a function defined with exec", %{ns: ns} do
        assert %SnakeBridge.Object{} = boom = ns["boom"]

        assert {:error, %PythonError{} = e} = SnakeBridge.call(boom, nil, [5])
        assert e.type == "ValueError"
        assert e.python_type == "builtins.ValueError"
        assert e.message == "bad 5"
        assert e.traceback =~ "Traceback (most recent call last):"
        assert e.traceback =~ ~r/line \d+, in boom/
        assert e.traceback =~ "ValueError: bad 5"
        assert Exception.message(e) == "ValueError: bad 5"

        # "" as the function name also calls the object itself
        assert {:error, %PythonError{type: "ValueError", message: "bad x"}} = SnakeBridge.call(boom, "", ["x"])

        assert_alive(@backend)
      end

      test "a custom exception class is reported with its module-qualified name", %{ns: ns} do
        assert {:error, %PythonError{} = e} = SnakeBridge.call(ns["raise_custom"], nil, ["custom message"])

        assert e.type == "MyError"
        assert e.python_type == qualified(ns["MyError"], @backend)
        assert e.python_type == "sb_errors_fixture.MyError"
        assert e.message == "custom message"
        assert e.traceback =~ "in raise_custom"
        assert_alive(@backend)
      end

      test "a nested exception class's python_type uses its __qualname__", %{ns: ns} do
        assert {:error, %PythonError{} = e} = SnakeBridge.call(ns["raise_nested"], nil, [])
        assert e.type == "Inner"
        # Python's own traceback names it sb_errors_fixture.Outer.Inner
        assert e.traceback =~ "sb_errors_fixture.Outer.Inner: deep"
        outer = ns["Outer"]
        expected = qualified(SnakeBridge.getattr!(outer, "Inner"), @backend)
        assert expected == "sb_errors_fixture.Outer.Inner"
        assert e.python_type == expected
      end

      test "an exception from a library module keeps its module path" do
        assert {:error, %PythonError{} = e} = SnakeBridge.call("json", "loads", ["{bad json"], [], backend: @backend)
        assert e.type == "JSONDecodeError"

        assert e.python_type ==
                 qualified(SnakeBridge.getattr!("json", "JSONDecodeError", backend: @backend), @backend)

        assert e.python_type == "json.decoder.JSONDecodeError"
        assert e.traceback =~ "in loads"
        assert_alive(@backend)
      end

      test "chained exceptions show both tracebacks", %{ns: ns} do
        assert {:error, %PythonError{type: "RuntimeError", message: "wrapped"} = e} =
                 SnakeBridge.call(ns["chained"], nil, [])

        assert e.traceback =~ "ZeroDivisionError"
        assert e.traceback =~ "The above exception was the direct cause of the following exception"
        assert_alive(@backend)
      end

      test "the message is str() of the exception, as Python defines it" do
        assert {:error, %PythonError{type: "KeyError"} = e} = SnakeBridge.eval("{}['missing']", %{}, backend: @backend)
        # str(KeyError) is the repr of the key
        assert e.message == SnakeBridge.eval!("str(KeyError('missing'))", %{}, backend: @backend)

        assert {:error, %PythonError{type: "ZeroDivisionError"} = e} =
                 SnakeBridge.eval("1 // 0", %{}, backend: @backend)

        %{"m" => caught} =
          SnakeBridge.exec!("try:\n    1 // 0\nexcept ZeroDivisionError as e:\n    m = str(e)", %{}, backend: @backend)

        assert e.message == caught
        assert_alive(@backend)
      end

      test "a syntax error in eval/exec code" do
        assert {:error, %PythonError{type: "SyntaxError"}} = SnakeBridge.eval("1 +", %{}, backend: @backend)

        assert {:error, %PythonError{type: "IndentationError"}} =
                 SnakeBridge.exec("if True:\npass", %{}, backend: @backend)

        assert_alive(@backend)
      end

      test "an exception whose __str__ fails still reports its type" do
        assert {:error, %PythonError{type: "Unprintable", message: message}} =
                 SnakeBridge.exec(
                   """
                   class Unprintable(Exception):
                       def __str__(self):
                           raise RuntimeError('no str for you')
                   raise Unprintable()
                   """,
                   %{},
                   backend: @backend
                 )

        assert is_binary(message)
        assert_alive(@backend)
      end

      test "a message that is not valid UTF-8 (lone surrogate) keeps the rest of the error" do
        assert {:error, %PythonError{type: "ValueError"} = e} =
                 SnakeBridge.exec("raise ValueError('bad \\ud800 surrogate')", %{}, backend: @backend)

        # What Python shows for it (sys.stderr uses backslashreplace)
        shown =
          SnakeBridge.eval!("'bad \\ud800 surrogate'.encode('utf-8', 'backslashreplace').decode()", %{},
            backend: @backend
          )

        assert shown == "bad \\ud800 surrogate"
        assert e.message == shown
        assert e.traceback =~ "Traceback (most recent call last):"
        assert e.traceback =~ "ValueError: " <> shown
      end

      test "SystemExit and KeyboardInterrupt are errors, not exits" do
        assert {:error, %PythonError{type: "SystemExit", message: "3"}} =
                 SnakeBridge.call("sys", "exit", [3], [], backend: @backend)

        assert {:error, %PythonError{type: "KeyboardInterrupt"}} =
                 SnakeBridge.exec("raise KeyboardInterrupt('x')", %{}, backend: @backend)

        assert_alive(@backend)
      end

      test "RecursionError from unbounded recursion" do
        assert {:error, %PythonError{type: "RecursionError"}} =
                 SnakeBridge.exec("def f(n):\n    return f(n + 1)\nf(0)", %{}, backend: @backend)

        assert_alive(@backend)
      end

      test "call! raises the PythonError", %{ns: ns} do
        error = assert_raise PythonError, fn -> SnakeBridge.call!(ns["boom"], nil, [7]) end
        assert error.type == "ValueError"
        assert error.message == "bad 7"
        assert Exception.message(error) == "ValueError: bad 7"

        assert_raise PythonError, ~r/^ZeroDivisionError: /, fn -> SnakeBridge.eval!("1 / 0", %{}, backend: @backend) end

        assert_raise PythonError, ~r/^AttributeError: /, fn ->
          SnakeBridge.getattr!("math", "nope", backend: @backend)
        end

        assert_alive(@backend)
      end
    end

    describe "missing modules and attributes (#{TestBackends.name(backend)})" do
      @backend backend

      test "an unknown module is ModuleNotFoundError naming the module" do
        assert {:error, %PythonError{} = e} = SnakeBridge.call("sb_no_such_module_xyz", "f", [], [], backend: @backend)

        assert e.type == "ModuleNotFoundError"
        assert e.python_type == "builtins.ModuleNotFoundError"
        assert e.message =~ "sb_no_such_module_xyz"

        assert {:error, %PythonError{type: "ModuleNotFoundError", message: msg}} =
                 SnakeBridge.getattr("sb_no_such_pkg.sub", "x", backend: @backend)

        assert msg =~ "sb_no_such_pkg"
        assert_alive(@backend)
      end

      test "an unknown function or attribute is AttributeError" do
        assert {:error, %PythonError{type: "AttributeError", message: msg}} =
                 SnakeBridge.call("math", "no_such_function", [], [], backend: @backend)

        assert msg =~ "no_such_function"

        assert {:error, %PythonError{type: "AttributeError"}} =
                 SnakeBridge.getattr("sys", "version_info.nope", backend: @backend)

        ns = SnakeBridge.call!("types", "SimpleNamespace", [], [a: 1], backend: @backend)

        assert {:error, %PythonError{type: "AttributeError", message: msg}} = SnakeBridge.getattr(ns, "zz")

        assert msg =~ "zz"

        assert {:error, %PythonError{type: "AttributeError"}} = SnakeBridge.method(ns, "missing_method")

        assert_alive(@backend)
      end

      test "calling something that is not callable is TypeError" do
        assert {:error, %PythonError{type: "TypeError"}} = SnakeBridge.call("math", "pi", [], [], backend: @backend)
        assert_alive(@backend)
      end
    end

    describe "Elixir terms that cannot cross (#{TestBackends.name(backend)})" do
      @backend backend

      # (Pids, references, ports and functions cross: test/snakebridge/callbacks_test.exs.)
      test "bitstring, improper list, plain struct" do
        cases = [
          {<<1::3>>, "bitstring"},
          {[1 | 2], "improper list"},
          {%Opaque{secret: 1}, "does not implement SnakeBridge.Encoder"},
          {URI.parse("http://example.com"), "URI does not implement SnakeBridge.Encoder"}
        ]

        for {term, why} <- cases do
          assert {:error, %ArgumentError{message: message}} =
                   SnakeBridge.call("json", "dumps", [term], [], backend: @backend)

          assert message =~ inspect(term, limit: 10, printable_limit: 60)
          assert message =~ "(argument 0)"
          assert message =~ why
        end

        assert_alive(@backend)
      end

      test "the message gives the path to a term nested in lists, maps and tuples" do
        pid = <<1::3>>

        assert {:error, %ArgumentError{message: message}} =
                 SnakeBridge.call("json", "dumps", [1, [%{"k" => [0, {:a, pid}]}]], [], backend: @backend)

        assert message =~ inspect(pid)
        assert message =~ ~s{(argument 1[0]["k"][1][1])}

        # inside eval globals the path starts at the variable name
        assert {:error, %ArgumentError{message: message}} =
                 SnakeBridge.eval("x", %{"x" => %{"a" => [<<5::4>>]}}, backend: @backend)

        assert message =~ ~s{(at "x"["a"][0])}

        # inside keyword arguments it starts at the keyword
        assert {:error, %ArgumentError{message: message}} =
                 SnakeBridge.call("json", "dumps", [[]], [cls: pid], backend: @backend)

        assert message =~ inspect(pid)
        assert message =~ "(at :cls)"

        # setattr value
        ns = SnakeBridge.call!("types", "SimpleNamespace", [], [], backend: @backend)

        assert {:error, %ArgumentError{message: message}} = SnakeBridge.setattr(ns, "f", [<<1::1>>])

        assert message =~ "bitstring"
        assert_alive(@backend)
      end

      test "map keys that collide in Python are refused" do
        for map <- [
              %{1 => :a, 1.0 => :b},
              %{:a => 1, "a" => 2},
              %{1 => :x, true => :y},
              %{0 => :x, false => :y}
            ] do
          assert {:error, %ArgumentError{message: message}} = SnakeBridge.eval("x", %{"x" => map}, backend: @backend)
          assert message =~ "equal in Python"
        end

        assert {:error, %ArgumentError{message: message}} =
                 SnakeBridge.eval("x", %{"x" => MapSet.new([1, 1.0])}, backend: @backend)

        assert message =~ "equal in Python"
        assert_alive(@backend)
      end

      test "a map as a dict key or set element is refused (unhashable)" do
        assert {:error, %ArgumentError{message: message}} =
                 SnakeBridge.eval("x", %{"x" => %{%{"a" => 1} => 1}}, backend: @backend)

        assert message =~ "unhashable"

        assert {:error, %ArgumentError{message: message}} =
                 SnakeBridge.eval("x", %{"x" => MapSet.new([%{}])}, backend: @backend)

        assert message =~ "unhashable"
        assert_alive(@backend)
      end

      test "terms nested more than 1024 levels deep are refused" do
        deep = Enum.reduce(1..1100, 0, fn _, acc -> [acc] end)
        assert {:error, %ArgumentError{message: message}} = SnakeBridge.eval("x", %{"x" => deep}, backend: @backend)
        assert message =~ "1024 levels"

        ok = Enum.reduce(1..1000, 0, fn _, acc -> [acc] end)
        assert SnakeBridge.eval!("x", %{"x" => ok}, backend: @backend) == ok
        assert_alive(@backend)
      end

      test "calendar values out of Python's range are refused" do
        min_year = SnakeBridge.getattr!("datetime", "MINYEAR", backend: @backend)
        max_year = SnakeBridge.getattr!("datetime", "MAXYEAR", backend: @backend)

        assert SnakeBridge.eval!("x", %{"x" => %Date{year: min_year, month: 1, day: 1}}, backend: @backend) ==
                 %Date{year: min_year, month: 1, day: 1}

        for year <- [min_year - 1, max_year + 1] do
          assert {:error, %ArgumentError{message: message}} =
                   SnakeBridge.eval("x", %{"x" => %Date{year: year, month: 1, day: 1}}, backend: @backend)

          assert message =~ "out of range"
        end

        assert_alive(@backend)
      end

      test "atoms of any name cross as str, beyond Latin-1 too" do
        assert SnakeBridge.eval!("x", %{"x" => :é}, backend: @backend) == "é"
        assert SnakeBridge.eval!("x", %{"x" => :日本}, backend: @backend) == "日本"
        assert SnakeBridge.call!("builtins", "dict", [], [{:ключ, 1}], backend: @backend) == %{"ключ" => 1}
      end

      test "invalid SnakeBridge options raise ArgumentError" do
        assert_raise ArgumentError, ~r/invalid SnakeBridge option/, fn ->
          SnakeBridge.call("math", "sqrt", [4.0], [], timeout: -1, backend: @backend)
        end

        assert_raise ArgumentError, ~r/invalid SnakeBridge option/, fn ->
          SnakeBridge.call("math", "sqrt", [4.0], [], return: :nope, backend: @backend)
        end
      end

      test "keyword arguments that do not name parameters are refused, saying what was given" do
        for bad <- [[1, 2], %{1 => 2}, [{:indent, 2}, 3]] do
          assert {:error, %ArgumentError{message: message}} =
                   SnakeBridge.call("json", "dumps", [[1]], bad, backend: @backend)

          assert message =~ "keyword arguments must be a keyword list or a map with atom or string keys"
          assert message =~ inspect(bad)
        end

        # the accepted forms
        assert SnakeBridge.call!("json", "dumps", [[1]], [indent: 1], backend: @backend) ==
                 SnakeBridge.call!("json", "dumps", [[1]], %{"indent" => 1}, backend: @backend)
      end
    end

    describe "SnakeBridge.Encoder (#{TestBackends.name(backend)})" do
      @backend backend

      test "a struct implementing the protocol is encoded and crosses" do
        assert SnakeBridge.call!("json", "dumps", [%Point{x: 1, y: 2}], [sort_keys: true], backend: @backend) ==
                 ~s({"x": 1, "y": 2})

        # nested in containers, and in eval globals
        assert SnakeBridge.eval!("x", %{"x" => [%Point{x: 1, y: 2}, %{"p" => %Point{x: 3, y: 4}}]}, backend: @backend) ==
                 [%{"x" => 1, "y" => 2}, %{"p" => %{"x" => 3, "y" => 4}}]

        # the encoding may itself contain encodable structs
        assert SnakeBridge.eval!(
                 "x",
                 %{"x" => %Segment{from: %Point{x: 0, y: 0}, to: %Point{x: 5, y: 6}}},
                 backend: @backend
               ) ==
                 [%{"x" => 0, "y" => 0}, %{"x" => 5, "y" => 6}]

        # a tuple encoding is a Python tuple
        assert SnakeBridge.eval!("type(t).__name__ + ':' + t[0]", %{"t" => %Temperature{celsius: 21.5}},
                 backend: @backend
               ) == "tuple:celsius"
      end

      test "encoded structs in keyword arguments and setattr values" do
        %{"f" => f} = SnakeBridge.exec!("def f(*, p):\n    return (p['x'] * 10 + p['y'])", %{}, backend: @backend)
        assert SnakeBridge.call!(f, nil, [], p: %Point{x: 4, y: 2}) == 42

        ns = SnakeBridge.call!("types", "SimpleNamespace", [], [], backend: @backend)
        assert SnakeBridge.setattr!(ns, "where", %Point{x: 7, y: 8}) == nil
        assert SnakeBridge.getattr!(ns, "where") == %{"x" => 7, "y" => 8}
      end

      test "an unencodable struct inside an encoding is still an ArgumentError" do
        assert {:error, %ArgumentError{message: message}} =
                 SnakeBridge.call("json", "dumps", [%Wrapper{inner: %Opaque{secret: 1}}], [], backend: @backend)

        assert message =~ "Opaque"
        assert message =~ "does not implement SnakeBridge.Encoder"

        # while an encodable one works
        assert SnakeBridge.call!("json", "dumps", [%Wrapper{inner: %Point{x: 1, y: 1}}], [sort_keys: true],
                 backend: @backend
               ) ==
                 ~s({"inner": {"x": 1, "y": 1}})
      end
    end

    describe "recovery (#{TestBackends.name(backend)})" do
      @backend backend

      test "the interpreter keeps working through a burst of mixed failures" do
        backend = @backend

        failures = [
          fn -> SnakeBridge.eval("1 / 0", %{}, backend: backend) end,
          fn -> SnakeBridge.call("sb_missing_mod_abc", "f", [], [], backend: backend) end,
          fn -> SnakeBridge.call("json", "dumps", [self()], [], backend: backend) end,
          fn -> SnakeBridge.eval("undefined_name", %{}, backend: backend) end,
          fn -> SnakeBridge.call("builtins", "object", [], [], return: :value, backend: backend) end,
          fn -> SnakeBridge.exec("raise SystemExit(1)", %{}, backend: backend) end
        ]

        for _ <- 1..20, f <- failures do
          assert {:error, %{__exception__: true}} = f.()
        end

        assert_alive(@backend)
      end
    end
  end
end
