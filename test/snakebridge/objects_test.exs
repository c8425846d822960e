defmodule SnakeBridge.ObjectsTest do
  # SnakeBridge.Object references: inspection, attributes, methods, return modes,
  # conversion, and release when the BEAM garbage-collects them, on each backend
  # (the embedded interpreter and a pool of port workers). Calls on an object go
  # to its owner, so only the calls that create objects name the backend.
  use ExUnit.Case, async: true

  import SnakeBridge.Test.Helpers

  alias SnakeBridge.{ConversionError, Object, PythonError, TestBackends}

  defp repr(object, backend), do: SnakeBridge.call!("builtins", "repr", [object], [], backend: backend)

  for backend <- TestBackends.all() do
    describe "Inspect (#{TestBackends.name(backend)})" do
      @backend backend

      test "shows the Python type and the object's repr" do
        counter = SnakeBridge.call!("collections", "Counter", [~w(a b a)], [], backend: @backend)
        assert inspect(counter) == "#Python<collections.Counter #{repr(counter, @backend)}>"
        assert inspect(counter) =~ ~r/^#Python<collections\.Counter Counter\(\{/

        f = SnakeBridge.new!("fractions", "Fraction", [1, 3], [], backend: @backend)
        assert inspect(f) == "#Python<fractions.Fraction #{repr(f, @backend)}>"
      end

      test "a long repr is shortened" do
        big = SnakeBridge.eval!("list(range(10000))", %{}, return: :ref, backend: @backend)
        shown = inspect(big)
        assert String.starts_with?(shown, "#Python<list [0, 1, 2, 3")
        assert String.ends_with?(shown, "...>")
        assert String.length(shown) < 120
      end

      test "a failing __repr__ does not break inspect" do
        %{"r" => r} =
          SnakeBridge.exec!(
            """
            class R:
                def __repr__(self):
                    raise RuntimeError('no repr')
            r = R()
            """,
            %{"__name__" => "sb_objects_repr"},
            backend: @backend
          )

        assert %Object{type: "sb_objects_repr.R"} = r
        assert String.starts_with?(inspect(r), "#Python<sb_objects_repr.R")
        # the failure did not leave a pending Python error behind (in the
        # interpreter that holds r, and in the one the backend picks next)
        assert SnakeBridge.getattr!(r, "__class__.__name__") == "R"
        assert SnakeBridge.call!("math", "sqrt", [4.0], [], backend: @backend) == 2.0
      end
    end

    describe "attributes (#{TestBackends.name(backend)})" do
      @backend backend

      setup do
        ns =
          SnakeBridge.exec!(
            """
            class Account:
                rate = 0.5

                def __init__(self, owner, balance=0):
                    self.owner = owner
                    self.balance = balance

                def deposit(self, amount):
                    self.balance += amount
                    return self.balance

                def interest(self):
                    return self.balance * self.rate

                @staticmethod
                def static_add(a, b):
                    return a + b

                @classmethod
                def opened_by(cls, owner):
                    return cls(owner, 100)

                @classmethod
                def class_name(cls):
                    return cls.__qualname__
            """,
            %{"__name__" => "sb_objects_fixture"},
            backend: @backend
          )

        {:ok, cls: ns["Account"]}
      end

      test "getattr and setattr on an instance of a class defined with exec", %{cls: cls} do
        acct = SnakeBridge.new!(cls, "", ["ann"], balance: 10)
        assert %Object{type: "sb_objects_fixture.Account"} = acct
        assert SnakeBridge.getattr!(acct, "owner") == "ann"
        assert SnakeBridge.getattr!(acct, "balance") == 10

        assert SnakeBridge.setattr(acct, "balance", 40) == {:ok, nil}
        assert SnakeBridge.getattr!(acct, "balance") == 40
        # Python code sees the new value
        assert SnakeBridge.method!(acct, "deposit", [2]) == 42
        assert SnakeBridge.getattr!(acct, "balance") == 42

        # a brand new attribute, holding a container
        assert SnakeBridge.setattr!(acct, "tags", ["a", {1, 2}]) == nil
        assert SnakeBridge.getattr!(acct, "tags") == ["a", {1, 2}]

        # an instance attribute shadows the class attribute
        assert SnakeBridge.method!(acct, "interest") == 42 * 0.5
        SnakeBridge.setattr!(acct, "rate", 0.25)
        assert SnakeBridge.method!(acct, "interest") == 42 * 0.25
        assert SnakeBridge.getattr!(cls, "rate") == 0.5

        assert {:error, %PythonError{type: "AttributeError"}} = SnakeBridge.getattr(acct, "missing")
      end

      test "types.SimpleNamespace" do
        ns = SnakeBridge.call!("types", "SimpleNamespace", [], [a: 1, b: "two"], backend: @backend)
        assert %Object{type: "types.SimpleNamespace"} = ns
        assert SnakeBridge.getattr!(ns, "a") == 1
        SnakeBridge.setattr!(ns, "c", %{"k" => [1.5]})
        assert SnakeBridge.getattr!(ns, "c") == %{"k" => [1.5]}

        assert SnakeBridge.call!("builtins", "vars", [ns], [], backend: @backend) == %{
                 "a" => 1,
                 "b" => "two",
                 "c" => %{"k" => [1.5]}
               }
      end

      test "dotted attribute paths on module names" do
        info = SnakeBridge.getattr!("sys", "version_info", backend: @backend)
        assert %Object{} = info

        assert SnakeBridge.getattr!("sys", "version_info.major", backend: @backend) ==
                 SnakeBridge.getattr!(info, "major")

        assert SnakeBridge.getattr!("sys", "version_info.major", backend: @backend) == 3
      end

      test "static and class methods", %{cls: cls} do
        assert SnakeBridge.method!(cls, "static_add", [2, 3]) == 5
        assert SnakeBridge.method!(cls, "class_name") == "Account"

        acct = SnakeBridge.method!(cls, "opened_by", ["bob"])
        assert %Object{type: "sb_objects_fixture.Account"} = acct
        assert SnakeBridge.getattr!(acct, "balance") == 100
        # class and static methods called through an instance
        assert SnakeBridge.method!(acct, "static_add", [[1], [2]]) == [1, 2]
        assert SnakeBridge.method!(acct, "class_name") == "Account"

        # dict.fromkeys, a classmethod of a builtin type, held as an object
        dict = SnakeBridge.getattr!("builtins", "dict", backend: @backend)
        assert %Object{type: "type"} = dict

        assert SnakeBridge.method!(dict, "fromkeys", [["a", "b"], 0]) ==
                 Map.new(["a", "b"], &{&1, 0})

        fromkeys = SnakeBridge.getattr!("builtins", "dict.fromkeys", backend: @backend)
        assert %Object{} = fromkeys
        assert SnakeBridge.call!(fromkeys, nil, [["x"]]) == %{"x" => nil}

        # datetime.date.fromisoformat via a dotted name
        assert SnakeBridge.call!("datetime", "date.fromisoformat", ["2021-03-04"], [], backend: @backend) ==
                 Date.from_iso8601!("2021-03-04")
      end

      test "bound methods held as objects and called later" do
        list = SnakeBridge.eval!("[3, 1, 2]", %{}, return: :ref, backend: @backend)
        assert %Object{type: "list"} = list
        append = SnakeBridge.getattr!(list, "append")
        assert %Object{} = append

        for x <- [9, 8] do
          assert SnakeBridge.call!(append, nil, [x]) == nil
        end

        assert SnakeBridge.to_elixir!(list) == [3, 1, 2, 9, 8]

        sort = SnakeBridge.getattr!(list, "sort")
        assert SnakeBridge.call!(sort, nil, [], reverse: true) == nil
        assert SnakeBridge.to_elixir!(list) == Enum.sort([3, 1, 2, 9, 8], :desc)

        counter = SnakeBridge.call!("collections", "Counter", [], [], backend: @backend)
        update = SnakeBridge.getattr!(counter, "update")
        SnakeBridge.call!(update, nil, [["a", "a", "b"]])
        assert SnakeBridge.to_elixir!(counter) == %{"a" => 2, "b" => 1}
      end

      test "builtins: len, sorted with keyword arguments, isinstance" do
        data = [5, 3, 9, 1, 7]
        assert SnakeBridge.call!("builtins", "len", [data], [], backend: @backend) == length(data)

        assert SnakeBridge.call!("builtins", "sorted", [data], [key: nil, reverse: true], backend: @backend) ==
                 Enum.sort(data, :desc)

        assert SnakeBridge.call!("builtins", "sorted", [data], [], backend: @backend) == Enum.sort(data)

        words = ~w(pear fig banana kiwi)
        len = SnakeBridge.getattr!("builtins", "len", backend: @backend)

        assert SnakeBridge.call!("builtins", "sorted", [words], [key: len], backend: @backend) ==
                 Enum.sort_by(words, &String.length/1)

        assert SnakeBridge.call!("builtins", "max", [data], [], backend: @backend) == Enum.max(data)
        assert SnakeBridge.call!("builtins", "sum", [data], [start: 100], backend: @backend) == Enum.sum(data) + 100

        list_type = SnakeBridge.getattr!("builtins", "list", backend: @backend)
        assert SnakeBridge.call!("builtins", "isinstance", [data, list_type], [], backend: @backend) == true
        assert SnakeBridge.call!("builtins", "isinstance", [{1}, list_type], [], backend: @backend) == false
      end
    end

    describe "return modes and conversion (#{TestBackends.name(backend)})" do
      @backend backend

      test "return: :ref gives an Object even for an int, and it passes back as the value" do
        ref = SnakeBridge.call!("builtins", "len", [[1, 2, 3]], [], return: :ref, backend: @backend)
        assert %Object{type: "int"} = ref
        assert SnakeBridge.to_elixir!(ref) == 3
        assert SnakeBridge.call!("operator", "add", [ref, 1], [], backend: @backend) == 4

        pi = SnakeBridge.getattr!("math", "pi", return: :ref, backend: @backend)
        assert %Object{type: "float"} = pi
        assert SnakeBridge.to_elixir!(pi) == :math.pi()

        s = SnakeBridge.eval!("'abc'", %{}, return: :ref, backend: @backend)
        assert %Object{type: "str"} = s
        assert SnakeBridge.method!(s, "upper") == "ABC"

        assert %Object{type: "dict"} = SnakeBridge.eval!("{'a': 1}", %{}, return: :ref, backend: @backend)
      end

      test "return: :value fails with ConversionError for an object with no Elixir equivalent" do
        assert {:error, %ConversionError{python_type: "object", repr: repr}} =
                 SnakeBridge.call("builtins", "object", [], [], return: :value, backend: @backend)

        assert repr =~ "<object object at"

        assert_raise ConversionError, fn ->
          SnakeBridge.call!("builtins", "object", [], [], return: :value, backend: @backend)
        end

        # nested inside a container, too
        assert {:error, %ConversionError{python_type: "object"}} =
                 SnakeBridge.eval("[1, {'k': object()}]", %{}, return: :value, backend: @backend)

        # while :auto keeps a reference in place of that item
        assert [1, %{"k" => %Object{type: "object"}}] =
                 SnakeBridge.eval!("[1, {'k': object()}]", %{}, backend: @backend)

        # and to_elixir on an object that has no equivalent is the same error
        obj = SnakeBridge.call!("builtins", "object", [], [], backend: @backend)
        assert {:error, %ConversionError{python_type: "object"}} = SnakeBridge.to_elixir(obj)
      end

      test "return: :value converts subclasses of builtin containers" do
        assert SnakeBridge.eval!("__import__('collections').OrderedDict(a=1)", %{},
                 return: :value,
                 backend: @backend
               ) == %{"a" => 1}

        assert SnakeBridge.eval!("__import__('collections').defaultdict(list, a=[1])", %{},
                 return: :value,
                 backend: @backend
               ) == %{"a" => [1]}

        # a deque is neither a list subclass nor a Mapping/Set: no Elixir value
        deque = SnakeBridge.eval!("__import__('collections').deque([1, 2])", %{}, backend: @backend)
        assert %Object{type: "collections.deque"} = deque

        assert {:error, %ConversionError{python_type: "collections.deque"}} = SnakeBridge.to_elixir(deque)

        # but its items are reachable through Python
        assert SnakeBridge.call!("builtins", "list", [deque], [], backend: @backend) == [1, 2]
      end

      test "to_elixir on a namedtuple, an OrderedDict and a numpy array" do
        point =
          SnakeBridge.call!("collections", "namedtuple", ["Point", "x y"], [], backend: @backend)
          |> SnakeBridge.call!(nil, [1, 2])

        assert %Object{type: type} = point
        assert type =~ "Point"
        assert SnakeBridge.getattr!(point, "x") == 1
        # _asdict returns a plain dict (Python 3.8+), so a map
        assert SnakeBridge.method!(point, "_asdict") == %{"x" => 1, "y" => 2}
        assert SnakeBridge.to_elixir!(point) == {1, 2}

        od = SnakeBridge.call!("collections", "OrderedDict", [[{"z", 1}, {"y", [2]}]], [], backend: @backend)
        assert %Object{type: "collections.OrderedDict"} = od
        assert SnakeBridge.to_elixir!(od) == %{"z" => 1, "y" => [2]}

        arr =
          SnakeBridge.call!("numpy", "arange", [6], [], backend: @backend)
          |> SnakeBridge.method!("reshape", [2, 3])

        assert SnakeBridge.to_elixir!(arr) == [[0, 1, 2], [3, 4, 5]]
      end

      test "an IntEnum member stays an object; its value converts" do
        member = SnakeBridge.getattr!("http", "HTTPStatus.NOT_FOUND", backend: @backend)
        assert %Object{type: "http.HTTPStatus"} = member
        assert SnakeBridge.getattr!(member, "value") == 404
        assert SnakeBridge.to_elixir!(member) == 404
      end
    end

    describe "identity and lifetime (#{TestBackends.name(backend)})" do
      @backend backend

      test "an Object passed back to Python is the same Python object" do
        obj = SnakeBridge.call!("builtins", "object", [], [], backend: @backend)
        assert SnakeBridge.eval!("a is b", %{"a" => obj, "b" => obj}, backend: @backend) == true

        assert SnakeBridge.call!("builtins", "id", [obj], [], backend: @backend) ==
                 SnakeBridge.call!("builtins", "id", [obj], [], backend: @backend)

        other = SnakeBridge.call!("builtins", "object", [], [], backend: @backend)
        assert SnakeBridge.eval!("a is b", %{"a" => obj, "b" => other}, backend: @backend) == false

        # the same Python object returned twice: the two handles refer to it
        %{"holder" => holder} =
          SnakeBridge.exec!("import types\nholder = types.SimpleNamespace(item=object())", %{}, backend: @backend)

        a = SnakeBridge.getattr!(holder, "item")
        b = SnakeBridge.getattr!(holder, "item")
        assert SnakeBridge.eval!("a is b", %{"a" => a, "b" => b}, backend: @backend) == true
      end

      test "an Object outlives the process that created it and works from others" do
        parent = self()
        backend = @backend

        f =
          Task.async(fn -> SnakeBridge.new!("fractions", "Fraction", [2, 3], [], backend: backend) end)
          |> Task.await()

        assert SnakeBridge.method!(f, "as_integer_ratio") == {2, 3}

        pid =
          spawn(fn ->
            send(
              parent,
              {:ratio, SnakeBridge.method!(f, "__mul__", [f]) |> SnakeBridge.method!("as_integer_ratio")}
            )
          end)

        ref = Process.monitor(pid)
        assert_receive {:ratio, {4, 9}}, 5_000
        assert_receive {:DOWN, ^ref, :process, ^pid, :normal}, 5_000
      end

      test "objects are released when the BEAM garbage-collects them" do
        %{"Counted" => cls} =
          SnakeBridge.exec!(
            """
            class Counted:
                live = 0
                def __init__(self):
                    Counted.live += 1
                def __del__(self):
                    Counted.live -= 1
            """,
            %{"__name__" => "sb_objects_gc"},
            backend: @backend
          )

        baseline = SnakeBridge.getattr!(cls, "live")
        assert baseline == 0

        assert create_and_count(cls, 10_000) == baseline + 10_000

        :erlang.garbage_collect()

        assert wait_until(2_000, fn -> SnakeBridge.getattr!(cls, "live") == baseline end),
               "live instances: #{SnakeBridge.getattr!(cls, "live")}, expected #{baseline}"

        # objects that are still referenced are not released
        kept = for _ <- 1..10, do: SnakeBridge.call!(cls, nil, [])
        :erlang.garbage_collect()
        Process.sleep(200)
        assert SnakeBridge.getattr!(cls, "live") == baseline + length(kept)
        assert length(kept) == 10
      end
    end
  end

  for backend <- TestBackends.all() do
    describe "to_elixir of a term holding objects (#{TestBackends.name(backend)})" do
      @backend backend

      test "converts every object inside lists, tuples, maps and MapSets, and leaves the rest" do
        o = [backend: @backend]
        counter = SnakeBridge.new!("collections", "Counter", ["aab"], [], o)
        ordered = SnakeBridge.call!("collections", "OrderedDict", [[{"k", 1}]], [], o)
        term = {counter, [1, %{"c" => ordered}], MapSet.new([2]), "text"}

        assert SnakeBridge.to_elixir(term, o) ==
                 {:ok, {%{"a" => 2, "b" => 1}, [1, %{"c" => %{"k" => 1}}], MapSet.new([2]), "text"}}
      end

      test "the first object with no Elixir value is the error" do
        o = [backend: @backend]
        plain = SnakeBridge.eval!("object()", %{}, o)

        assert {:error, %SnakeBridge.ConversionError{python_type: "object"}} = SnakeBridge.to_elixir([1, {plain}], o)

        assert_raise SnakeBridge.ConversionError, fn -> SnakeBridge.to_elixir!(%{"x" => plain}, o) end
      end
    end
  end

  describe "an object from another run of the VM" do
    # A %SnakeBridge.Object{} whose reference the NIF does not hold, as after
    # :erlang.binary_to_term/1 of an object saved by another VM run.
    test "says that it no longer exists, as an argument and as a target" do
      stale = %Object{ref: make_ref(), type: "collections.Counter", owner: nil}

      assert {:error, %ArgumentError{message: message}} = SnakeBridge.call("builtins", "len", [stale])
      assert message =~ "this Python object no longer exists"
      assert message =~ "(argument 0)"

      assert {:error, %ArgumentError{message: message}} = SnakeBridge.method(stale, "most_common")
      assert message =~ "the target Python object no longer exists"
    end
  end

  # Builds `n` instances held only by this function's list; returns Python's count.
  defp create_and_count(cls, n) do
    objects = for _ <- 1..n, do: SnakeBridge.call!(cls, nil, [])
    assert [%Object{type: "sb_objects_gc.Counted"} | _] = objects
    SnakeBridge.getattr!(cls, "live")
  end
end
