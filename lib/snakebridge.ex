defmodule SnakeBridge do
  @moduledoc """
  Use Python libraries from Elixir as if they were Elixir.

  SnakeBridge embeds CPython in the BEAM. Call module functions, build objects,
  call their methods, read and set attributes, evaluate expressions:

      iex> SnakeBridge.call("math", "sqrt", [16.0])
      {:ok, 4.0}

      iex> SnakeBridge.call!("json", "dumps", [%{"test" => "data"}])
      ~s({"test": "data"})

      iex> SnakeBridge.call!("json", "dumps", [[1, 2]], indent: 2)
      "[\\n  1,\\n  2\\n]"

      iex> {:ok, f} = SnakeBridge.new("fractions", "Fraction", [3, 4])
      iex> SnakeBridge.method!(f, "limit_denominator", [2]) |> SnakeBridge.getattr!("denominator")
      1

      iex> SnakeBridge.eval!("x * y", %{"x" => 6, "y" => 7})
      42

  ## Arguments and results

  Positional arguments are a list; keyword arguments a keyword list or a map with
  string keys; SnakeBridge's own options always come last, so Python keyword
  arguments named like them (`timeout`) never clash. Values convert as described
  in `docs/type_mapping.md`: numbers, strings, binaries, lists, tuples, maps,
  `MapSet`s and the calendar types cross both ways; anything else Python returns
  is a `SnakeBridge.Object` reference.

  ## Options

    * `:timeout` — milliseconds or `:infinity` (default `30_000`). Past it the call
      returns `{:error, %SnakeBridge.TimeoutError{}}` and the Python work is
      interrupted.
    * `:return` — `:auto` (default), `:ref` (always a `SnakeBridge.Object`) or
      `:value` (deep conversion; `SnakeBridge.ConversionError` if impossible).
    * `:backend` — `:nif` (default, in-process).
    * `:binaries` — `:text` (default: a valid UTF-8 binary becomes a `str`) or
      `:bytes`: every binary among the values sent becomes `bytes` (inside
      lists, tuples, map values and `MapSet`s too; map keys and keyword names
      stay text), for binary APIs such as `zlib`, `hashlib` or `base64`:

          iex> SnakeBridge.call!("hashlib", "sha256", ["abc"], [], binaries: :bytes)
          ...> |> SnakeBridge.method!("hexdigest")
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

  ## Errors

  Functions return `{:ok, value}` or `{:error, exception}`: a
  `SnakeBridge.PythonError` for a Python exception, `SnakeBridge.TimeoutError`,
  `ArgumentError` for an Elixir term that cannot cross (naming it and where it
  sits), `SnakeBridge.ConversionError` for `return: :value`. Each function has a
  `!` form that returns the value or raises the exception.
  """

  alias SnakeBridge.{Object, Runtime}

  @doc """
  Generates, at compile time, an Elixir interface to a Python module in the
  module that uses it:

      defmodule MyApp.Json do
        use SnakeBridge, python: "json"
      end

      MyApp.Json.dumps!(%{"a" => 1}, indent: 2)

  Each Python function `f` becomes `f/N` and `f!/N`, each class `MyApp.Json.Class`
  with `new/N`, its methods and properties (see `docs/generated_modules.md`).

  Options:

    * `:python` — the Python module (required)
    * `:only` / `:except` — Python names to include / leave out
    * `:backend` — default `:backend` option of every generated call
    * `:binaries` — default `:binaries` option of every generated call
      (`binaries: :bytes`: every binary sent becomes `bytes`). Not needed for
      parameters the schema knows to be bytes-like (`zlib.compress`'s `data`,
      an argument annotated `bytes`): those get `bytes` anyway
      (`docs/generated_modules.md`, "Typed argument mapping")
    * `:depth` — also generate submodules this deep (default 0), as `MyApp.Json.Decoder`
    * `:private` — include `_private` names (default false)

  The schema is cached under `_build/snakebridge/` so compiling needs no Python
  when nothing changed; the module recompiles when the Python library on disk
  changes (another version installed) or the cache is removed.
  """
  defmacro __using__(opts) do
    # Deep expansion: aliases inside values (`backend: {:pool, MyApp.Python}`) too.
    opts = Macro.prewalk(opts, &Macro.expand(&1, __CALLER__))
    python = opts |> Keyword.fetch!(:python) |> to_string()
    depth = Keyword.get(opts, :depth, 0)
    describe_opts = [depth: depth, private: Keyword.get(opts, :private, false)]

    case SnakeBridge.SchemaCache.fetch(python, describe_opts) do
      {:ok, schema, cache_file} ->
        if schema.functions == [] and schema.classes == [] and schema.constants == [] and schema.submodules == [] do
          IO.warn(
            "use SnakeBridge, python: #{inspect(python)}: the Python module exposes no public functions, " <>
              "classes or constants (its __all__ is empty, or everything in it is private or imported from " <>
              "other modules), so #{inspect(__CALLER__.module)} is empty; `mix snakebridge.discover " <>
              "#{python}` shows what SnakeBridge sees, `private: true` includes _names",
            Macro.Env.stacktrace(__CALLER__)
          )
        end

        generated =
          SnakeBridge.Generator.quoted(schema, __CALLER__.module, Keyword.put(opts, :module, __CALLER__.module))

        quote do
          @external_resource unquote(cache_file)

          @doc false
          def __mix_recompile__?, do: not SnakeBridge.SchemaCache.fresh?(unquote(cache_file))

          @doc false
          # For mix snakebridge.validate and SnakeBridge.Release.check/0.
          def __snakebridge__(:python_module), do: unquote(python)
          def __snakebridge__(:schema_cache), do: unquote(cache_file)
          def __snakebridge__(:backend), do: unquote(Keyword.get(opts, :backend, :nif))

          unquote(generated)
        end

      {:error, error} ->
        raise CompileError,
          file: __CALLER__.file,
          line: __CALLER__.line,
          description: "use SnakeBridge, python: #{inspect(python)}: " <> Exception.message(error)
    end
  end

  @type name :: String.t() | atom()
  @type target :: name() | Object.t()
  @type kwargs :: keyword() | %{optional(String.t() | atom()) => term()}
  @type result :: {:ok, term()} | {:error, Exception.t()}

  defguardp is_name(x) when is_binary(x) or is_atom(x)
  defguardp is_kwargs(x) when is_list(x) or is_map(x)

  @doc """
  Calls `module.function(*args, **kwargs)`.

  `module` is a module name (`"os.path"`), imported once and cached, or a
  `SnakeBridge.Object` whose attribute is called. `function` may be dotted
  (`"datetime.now"` on module `"datetime"`). With an object and an empty
  `function` (`""` or `nil`) the object itself is called.
  """
  @spec call(target(), name() | nil, list(), kwargs(), keyword()) :: result()
  def call(module, function, args \\ [], kwargs \\ [], opts \\ [])
      when (is_name(module) or is_struct(module, Object)) and is_list(args) and is_kwargs(kwargs) do
    Runtime.run({:call, module, function, args, kwargs}, opts)
  end

  @doc "Like `call/5` but returns the value or raises."
  @spec call!(target(), name() | nil, list(), kwargs(), keyword()) :: term()
  def call!(module, function, args \\ [], kwargs \\ [], opts \\ []),
    do: unwrap(call(module, function, args, kwargs, opts))

  @doc """
  Creates an instance of `module.class(*args, **kwargs)`; always a `SnakeBridge.Object`.
  """
  @spec new(target(), name(), list(), kwargs(), keyword()) :: {:ok, Object.t()} | {:error, Exception.t()}
  def new(module, class, args \\ [], kwargs \\ [], opts \\ [])
      when (is_name(module) or is_struct(module, Object)) and is_name(class) and is_list(args) and is_kwargs(kwargs) do
    Runtime.run({:call, module, class, args, kwargs}, Keyword.put(opts, :return, :ref))
  end

  @doc "Like `new/5` but returns the object or raises."
  @spec new!(target(), name(), list(), kwargs(), keyword()) :: Object.t()
  def new!(module, class, args \\ [], kwargs \\ [], opts \\ []), do: unwrap(new(module, class, args, kwargs, opts))

  @doc """
  Calls `object.name(*args, **kwargs)`: instance, class and static methods alike.
  """
  @spec method(Object.t(), name(), list(), kwargs(), keyword()) :: result()
  def method(%Object{} = object, name, args \\ [], kwargs \\ [], opts \\ [])
      when is_name(name) and is_list(args) and is_kwargs(kwargs) do
    Runtime.run({:call, object, name, args, kwargs}, opts)
  end

  @doc "Like `method/5` but returns the value or raises."
  @spec method!(Object.t(), name(), list(), kwargs(), keyword()) :: term()
  def method!(object, name, args \\ [], kwargs \\ [], opts \\ []), do: unwrap(method(object, name, args, kwargs, opts))

  @doc """
  Reads an attribute of an object, or of a module given by name (dots follow
  attributes: `getattr("sys", "version_info.major")`).
  """
  @spec getattr(target(), name(), keyword()) :: result()
  def getattr(object_or_module, name, opts \\ [])
      when (is_name(object_or_module) or is_struct(object_or_module, Object)) and is_name(name) do
    Runtime.run({:getattr, object_or_module, name}, opts)
  end

  @doc "Like `getattr/3` but returns the value or raises."
  @spec getattr!(target(), name(), keyword()) :: term()
  def getattr!(object_or_module, name, opts \\ []), do: unwrap(getattr(object_or_module, name, opts))

  @doc "Sets `object.name = value`. Returns `{:ok, nil}`."
  @spec setattr(target(), name(), term(), keyword()) :: result()
  def setattr(object, name, value, opts \\ [])
      when (is_name(object) or is_struct(object, Object)) and is_name(name) do
    Runtime.run({:setattr, object, name, value}, opts)
  end

  @doc "Like `setattr/4` but returns `nil` or raises."
  @spec setattr!(target(), name(), term(), keyword()) :: nil
  def setattr!(object, name, value, opts \\ []), do: unwrap(setattr(object, name, value, opts))

  @doc """
  Evaluates a Python expression with `globals` (a map with string keys) as its
  variables.
  """
  @spec eval(String.t(), map(), keyword()) :: result()
  def eval(expression, globals \\ %{}, opts \\ []) when is_binary(expression) and is_map(globals) do
    Runtime.run({:eval, expression, globals}, opts)
  end

  @doc "Like `eval/3` but returns the value or raises."
  @spec eval!(String.t(), map(), keyword()) :: term()
  def eval!(expression, globals \\ %{}, opts \\ []), do: unwrap(eval(expression, globals, opts))

  @doc """
  Runs Python statements with `globals` as their module namespace, and returns
  the namespace afterwards (every variable the code defined, `__builtins__` left
  out).

      iex> SnakeBridge.exec!("import math\\ny = math.floor(x)", %{"x" => 2.5}) |> Map.take(["x", "y"])
      %{"x" => 2.5, "y" => 2}
  """
  @spec exec(String.t(), map(), keyword()) :: result()
  def exec(code, globals \\ %{}, opts \\ []) when is_binary(code) and is_map(globals) do
    Runtime.run({:exec, code, globals}, opts)
  end

  @doc "Like `exec/3` but returns the namespace or raises."
  @spec exec!(String.t(), map(), keyword()) :: map()
  def exec!(code, globals \\ %{}, opts \\ []), do: unwrap(exec(code, globals, opts))

  @doc """
  Converts a referenced object deeply into Elixir terms: dict subclasses and other
  mappings become maps, list and tuple subclasses lists and tuples, numpy arrays
  nested lists, numpy scalars numbers. `SnakeBridge.ConversionError` if some part
  has no Elixir equivalent.

  Any other term is walked (lists, tuples, maps, `MapSet`s) and each object in it
  converted the same way; the first object that cannot be converted is the error.

      iex> {:ok, c} = SnakeBridge.new("collections", "Counter", ["aab"])
      iex> SnakeBridge.to_elixir({c, [c]})
      {:ok, {%{"a" => 2, "b" => 1}, [%{"a" => 2, "b" => 1}]}}
  """
  @spec to_elixir(term(), keyword()) :: result()
  def to_elixir(term, opts \\ [])
  def to_elixir(%Object{} = object, opts), do: Runtime.run({:to_elixir, object}, opts)

  def to_elixir(term, opts) do
    {:ok, objects_to_elixir(term, opts)}
  catch
    {__MODULE__, :to_elixir, error} -> error
  end

  defp objects_to_elixir(%Object{} = object, opts) do
    case Runtime.run({:to_elixir, object}, opts) do
      {:ok, value} -> value
      error -> throw({__MODULE__, :to_elixir, error})
    end
  end

  defp objects_to_elixir([head | tail], opts), do: [objects_to_elixir(head, opts) | objects_to_elixir(tail, opts)]
  defp objects_to_elixir(%MapSet{} = set, opts), do: MapSet.new(set, &objects_to_elixir(&1, opts))
  defp objects_to_elixir(%_{} = struct, _opts), do: struct

  defp objects_to_elixir(map, opts) when is_map(map),
    do: Map.new(map, fn {k, v} -> {objects_to_elixir(k, opts), objects_to_elixir(v, opts)} end)

  defp objects_to_elixir(tuple, opts) when is_tuple(tuple),
    do: tuple |> Tuple.to_list() |> objects_to_elixir(opts) |> List.to_tuple()

  defp objects_to_elixir(other, _opts), do: other

  @doc "Like `to_elixir/2` but returns the value or raises."
  @spec to_elixir!(term(), keyword()) :: term()
  def to_elixir!(object, opts \\ []), do: unwrap(to_elixir(object, opts))

  @doc """
  The bytes, element type and shape of a numeric Python array, as a
  `SnakeBridge.Array`: anything with Python's buffer protocol (numpy arrays,
  `memoryview`, `array.array`, `bytes`, `bytearray`) or `__array__` (pandas
  Series, other array libraries, through `numpy.asarray`).

      iex> m = SnakeBridge.call!("numpy", "arange", [6], dtype: "int32") |> SnakeBridge.method!("reshape", [2, 3])
      iex> {:ok, a} = SnakeBridge.to_array(m)
      iex> {a.type, a.shape, SnakeBridge.Array.to_flat_list(a)}
      {{:s, 32}, {2, 3}, [0, 1, 2, 3, 4, 5]}

  The type is Nx's (`{:f, 64}`, `{:u, 8}` for bool...) and the data row-major in
  native byte order, so `Nx.from_binary(a.data, a.type) |> Nx.reshape(a.shape)`
  makes a tensor of it. A transposed or strided array is made C-contiguous
  with one copy.

  In-process, a C-contiguous array is not copied: the binary points into the
  Python array's memory and keeps it alive, so converting 512 MiB takes as long
  as 1 KiB. Python code that writes into the array afterwards changes what the
  binary holds; `copy: true` takes a copy instead. Through a port worker the
  bytes cross the pipe once.

  Options (besides the common ones):

    * `:copy` — always copy the bytes (default `false`).

  Arrays of other elements (objects, strings, datetimes, records) are an
  `ArgumentError` naming their dtype:

      iex> o = SnakeBridge.call!("numpy", "array", [["a", "b"]])
      iex> {:error, %ArgumentError{message: message}} = SnakeBridge.to_array(o)
      iex> message
      "a numpy.ndarray of dtype <U1 has no SnakeBridge.Array type: only bool, integer, float and complex elements do"
  """
  @spec to_array(Object.t(), keyword()) :: {:ok, SnakeBridge.Array.t()} | {:error, Exception.t()}
  def to_array(%Object{} = object, opts \\ []) do
    {copy, opts} = Keyword.pop(opts, :copy, false)
    Runtime.run({:to_array, object, flag!(:copy, copy)}, opts)
  end

  @doc "Like `to_array/2` but returns the array or raises."
  @spec to_array!(Object.t(), keyword()) :: SnakeBridge.Array.t()
  def to_array!(object, opts \\ []), do: unwrap(to_array(object, opts))

  @doc """
  The columns of a pandas DataFrame: a map of column name to a
  `SnakeBridge.Array` for each numeric column (bool, integers, floats,
  complex) and a list of Elixir values for every other column (strings,
  objects; datetimes as `NaiveDateTime`, or `DateTime` for a zoned column;
  missing values as `nil`).

      iex> df = SnakeBridge.call!("pandas", "DataFrame", [%{"x" => [1.5, 2.5], "name" => ["a", "b"]}])
      iex> {:ok, %{"x" => x, "name" => names}} = SnakeBridge.to_columns(df)
      iex> {x.type, SnakeBridge.Array.to_flat_list(x), names}
      {{:f, 64}, [1.5, 2.5], ["a", "b"]}

  Such a map passed to `pandas.DataFrame` builds the frame back (arrays become
  numpy columns). The index is left out unless `index: true`, which puts it
  first as a column (under its name, `"index"` when it has none;
  `DataFrame.set_index` makes it the index again). See `docs/arrays.md`.

  Options (besides the common ones):

    * `:index` — include the index as a column (default `false`).
  """
  @spec to_columns(Object.t(), keyword()) :: {:ok, map()} | {:error, Exception.t()}
  def to_columns(%Object{} = frame, opts \\ []) do
    {index, opts} = Keyword.pop(opts, :index, false)
    Runtime.run({:to_columns, frame, flag!(:index, index)}, opts)
  end

  @doc "Like `to_columns/2` but returns the columns or raises."
  @spec to_columns!(Object.t(), keyword()) :: map()
  def to_columns!(frame, opts \\ []), do: unwrap(to_columns(frame, opts))

  defp flag!(_name, value) when is_boolean(value), do: value
  defp flag!(name, value), do: raise(ArgumentError, "invalid SnakeBridge option: #{inspect({name, value})}")

  @doc """
  Calls `module.function(*args, **kwargs)` and returns a lazy `Stream` over the
  result, which must be iterable (a generator, an iterator, a list, a cursor...).

      iex> SnakeBridge.stream("itertools", "count", [10]) |> Enum.take(3)
      [10, 11, 12]

  Items are pulled in batches as the consumer asks for them (never more than one
  batch ahead of it). Halting early closes the Python generator, so its
  `finally` runs; a Python exception raised while iterating is raised in the
  consumer after the items produced before it. Each item converts like a call's
  result (`:return` option). `:batch_size` caps the batch (default 1024; batches
  start at 8 and double). Nothing runs until the stream is enumerated.
  """
  @spec stream(target(), name() | nil, list(), kwargs(), keyword()) :: Enumerable.t()
  def stream(module, function, args \\ [], kwargs \\ [], opts \\ [])
      when (is_name(module) or is_struct(module, Object)) and is_list(args) and is_kwargs(kwargs) do
    SnakeBridge.PyStream.iter({:call, {:call, module, function, args, kwargs}}, opts)
  end

  @doc """
  A lazy `Stream` over any Python iterable held as an object (see `stream/5`).

      iex> {:ok, conn} = SnakeBridge.call("sqlite3", "connect", [":memory:"])
      iex> cursor = SnakeBridge.method!(conn, "execute", ["select 1 union select 2"])
      iex> SnakeBridge.iter(cursor) |> Enum.to_list()
      [{1}, {2}]
  """
  @spec iter(Object.t(), keyword()) :: Enumerable.t()
  def iter(%Object{} = object, opts \\ []), do: SnakeBridge.PyStream.iter({:object, object}, opts)

  @doc """
  Starts `module.function(*args, **kwargs)` in the background and returns at
  once; the result arrives as `{:snakebridge, ref, {:ok, value} | {:error, e}}`
  to `opts[:to]` (default the caller), where `ref` is the returned handle's
  `ref`. See `SnakeBridge.Async` for cancellation.

      iex> task = SnakeBridge.async_call("math", "factorial", [20])
      iex> ref = task.ref
      iex> receive do {:snakebridge, ^ref, result} -> result end
      {:ok, 2432902008176640000}
  """
  @spec async_call(target(), name() | nil, list(), kwargs(), keyword()) :: SnakeBridge.Async.t()
  def async_call(module, function, args \\ [], kwargs \\ [], opts \\ [])
      when (is_name(module) or is_struct(module, Object)) and is_list(args) and is_kwargs(kwargs) do
    SnakeBridge.Async.call({:call, module, function, args, kwargs}, opts)
  end

  @doc """
  Streams the items of `module.function(*args, **kwargs)` as messages:
  `{:snakebridge_stream, ref, {:items, list}}` batches, then `:done` or
  `{:error, exception}`. Acknowledge each batch with `ack/1`; at most `:window`
  (default 2) batches are outstanding. See `SnakeBridge.Async`.
  """
  @spec async_stream(target(), name() | nil, list(), kwargs(), keyword()) :: SnakeBridge.Async.t()
  def async_stream(module, function, args \\ [], kwargs \\ [], opts \\ [])
      when (is_name(module) or is_struct(module, Object)) and is_list(args) and is_kwargs(kwargs) do
    SnakeBridge.Async.stream({:call, {:call, module, function, args, kwargs}}, opts)
  end

  @doc "Acknowledges one batch of an `async_stream/5`, letting the producer send another."
  @spec ack(SnakeBridge.Async.t()) :: :ok
  def ack(%SnakeBridge.Async{} = async), do: SnakeBridge.Async.ack(async)

  @doc """
  Cancels an `async_call/5` or `async_stream/5`: the Python work is interrupted
  and no message of it arrives after this returns.
  """
  @spec cancel(SnakeBridge.Async.t()) :: :ok
  def cancel(%SnakeBridge.Async{} = async), do: SnakeBridge.Async.cancel(async)

  @doc """
  Waits for the result of an `async_call/5` (in the process that receives it).
  """
  @spec await(SnakeBridge.Async.t(), timeout()) :: result()
  def await(%SnakeBridge.Async{kind: :call} = async, timeout \\ :infinity), do: SnakeBridge.Async.await(async, timeout)

  @doc """
  Describes a Python module: its functions, classes, constants and submodules,
  with signatures, docs and annotations (see `SnakeBridge.Schema` for the shape).
  The description is made by the embedded interpreter's own introspection and
  never runs more than importing the module does.

  Options (besides the common ones):

    * `:depth` — how many levels of already-imported submodules to describe
      (default 1; unimported ones are listed by name in `:unimported_submodules`)
    * `:private` — include `_private` names (default false)

      iex> {:ok, schema} = SnakeBridge.describe_library("json")
      iex> Enum.find(schema.functions, &(&1.name == "dumps")).signature |> String.slice(0, 20)
      "(obj, *, skipkeys=Fa"
  """
  @spec describe_library(name(), keyword()) :: {:ok, SnakeBridge.Schema.t()} | {:error, Exception.t()}
  def describe_library(module, opts \\ []) when is_name(module) do
    {depth, opts} = Keyword.pop(opts, :depth, 1)
    {private, opts} = Keyword.pop(opts, :private, false)

    with {:ok, raw} <- Runtime.run({:describe, to_string(module), depth, private == true}, opts) do
      {:ok, SnakeBridge.Schema.from_python(raw)}
    end
  end

  @doc "Like `describe_library/2` but returns the schema or raises."
  @spec describe_library!(name(), keyword()) :: SnakeBridge.Schema.t()
  def describe_library!(module, opts \\ []), do: unwrap(describe_library(module, opts))

  @doc """
  Marks a binary to cross as Python `bytes`, even if it is valid UTF-8 (which
  would otherwise become `str`).

      iex> SnakeBridge.call!("builtins", "type", [SnakeBridge.bytes("abc")]) |> SnakeBridge.getattr!("__name__")
      "bytes"
  """
  @spec bytes(binary()) :: SnakeBridge.Bytes.t()
  def bytes(binary) when is_binary(binary), do: %SnakeBridge.Bytes{data: binary}

  defp unwrap({:ok, value}), do: value
  defp unwrap({:error, exception}), do: raise(exception)
end
