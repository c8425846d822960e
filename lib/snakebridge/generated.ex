defmodule SnakeBridge.Generated do
  @moduledoc """
  Runtime support for generated modules (`use SnakeBridge`, `mix snakebridge.gen`).

  A generated function passes its arguments here with a compact description of
  the Python parameters; this module turns them into a positional list and
  keyword arguments for `SnakeBridge.call/5`:

    * required parameters are the function's leading arguments; keyword-only
      ones are sent by name;
    * optional positional parameters may be given positionally (after the
      required ones) or by name in the trailing keyword list;
    * a trailing keyword list given where an optional positional parameter
      stands is taken as the keyword arguments (then the SnakeBridge options):
      `Fraction.new(3, denominator: 4)`. To pass a keyword list *as* such a
      parameter's value, name it: `f(x, param: [a: 1])`; `[]` followed by
      SnakeBridge options there is no keyword arguments, then the options:
      `compress(data, [], timeout: 1_000)`;
    * positional-only optional parameters named in the keyword list are moved
      to their position, earlier gaps filled with their Python defaults;
    * `*args` is given by its Python name in the keyword list: `join("a", p: ["b", "c"])`;
    * a callable whose docstring documents several forms (`range(stop)`,
      `range(start, stop[, step])`) takes as many arguments as the longest; the
      number given picks the form;
    * a callable without any signature takes its positional arguments as
      `args: [...]` in the keyword list;
    * typed argument mapping: a binary for a bytes-like parameter (annotated,
      or known from a C signature or the docstring: `SnakeBridge.Schema`) becomes `bytes`,
      an integer for a `float` one a float, a list for a `tuple` one a tuple.
  """

  @unset :__snakebridge_unset__

  @doc false
  def unset, do: @unset

  @doc false
  # spec: %{required: [{name, :pos | :kw}], optional: [{name, :pos_only | :pos, default}],
  #         var_positional: name | nil, coerce: %{name => :bytes | :float | :tuple}},
  # or %{signature: text, overloads: [spec]}: documented forms, told apart by
  # how many positional arguments are given.
  def call(target, function, spec, required, optional, kwargs, opts, defaults) do
    {optional, kwargs, opts} = shift_tails(optional, kwargs, opts)

    with :ok <- check_keywords(spec, function, kwargs, opts),
         {:ok, form, required, optional} <- form(spec, required, optional),
         {:ok, args, kw} <- build(form, required, optional, kwargs) do
      dispatch(target, function, args, kw, Keyword.merge(defaults, opts))
    end
  end

  # A method wrapper's target is {:method, self, module, "Class.method"}: the
  # method of the object given, or, for an Elixir value, the class's method
  # called with it (Dict.get(%{"a" => 1}, "a") is dict.get({'a': 1}, 'a')).
  defp dispatch({:method, %SnakeBridge.Object{} = object, _module, _qualified}, function, args, kw, opts),
    do: SnakeBridge.call(object, function, args, kw, opts)

  defp dispatch({:method, value, module, qualified}, _function, args, kw, opts),
    do: SnakeBridge.call(module, qualified, [value | args], kw, opts)

  defp dispatch(module, function, args, kw, opts), do: SnakeBridge.call(module, function, args, kw, opts)

  @doc false
  # A property's getter and setter: on the object given, or on an Elixir value
  # converted to Python (getattr(value, name)).
  def getattr(self, name, opts, defaults) do
    with :ok <- check_keywords(%{}, name, [], opts) do
      case self do
        %SnakeBridge.Object{} -> SnakeBridge.getattr(self, name, Keyword.merge(defaults, opts))
        value -> SnakeBridge.call("builtins", "getattr", [value, name], [], Keyword.merge(defaults, opts))
      end
    end
  end

  @doc false
  def setattr(self, name, value, opts, defaults) do
    with :ok <- check_keywords(%{}, name, [], opts) do
      case self do
        %SnakeBridge.Object{} -> SnakeBridge.setattr(self, name, value, Keyword.merge(defaults, opts))
        other -> SnakeBridge.call("builtins", "setattr", [other, name, value], [], Keyword.merge(defaults, opts))
      end
    end
  end

  defp form(%{overloads: forms} = spec, required, optional) do
    values = required ++ optional
    n = length(values)

    fits? = fn form ->
      r = length(form.required)
      r <= n and n <= r + length(Map.get(form, :optional, []))
    end

    case Enum.find(forms, fits?) do
      nil ->
        {:error,
         %ArgumentError{
           message:
             "#{spec.signature}: no documented form takes #{n} positional argument#{if n == 1, do: "", else: "s"}"
         }}

      form ->
        {required, optional} = Enum.split(values, length(form.required))
        {:ok, form, required, optional}
    end
  end

  defp form(spec, required, optional), do: {:ok, spec, required, optional}

  @doc false
  # A callable without a known signature: its positional arguments come by name,
  # `args: [...]`, as `*args` does; a list where the keyword list goes is refused
  # (it would otherwise be taken for the argument list: `array([[1, 2]])`).
  def call_untyped(target, function, kwargs, opts, defaults) do
    with :ok <- check_untyped(function, kwargs),
         :ok <- check_keywords(%{}, function, kwargs, opts),
         {:ok, args, kwargs} <- untyped_args(function, kwargs) do
      dispatch(target, function, args, kwargs, Keyword.merge(defaults, opts))
    end
  end

  defp check_untyped(function, [_ | _] = list) do
    if Keyword.keyword?(list), do: :ok, else: {:error, untyped_error(function, list)}
  end

  defp check_untyped(_function, _kwargs), do: :ok

  defp untyped_args(function, kwargs) do
    {args, kwargs} =
      if is_map(kwargs) do
        {Map.get(kwargs, :args, Map.get(kwargs, "args", [])), Map.drop(kwargs, [:args, "args"])}
      else
        {Keyword.get(kwargs, :args, []), Keyword.delete(kwargs, :args)}
      end

    if is_list(args), do: {:ok, args, kwargs}, else: {:error, untyped_error(function, args)}
  end

  defp untyped_error(function, got) do
    text = inspect(got, limit: 10, printable_limit: 60)

    hint =
      if is_list(got),
        do:
          "#{function}(args: #{text}) passes these as the arguments, #{function}(args: [#{text}]) this list as the one argument",
        else: "#{function}(args: [#{text}])"

    %ArgumentError{
      message:
        "Python gives no signature for #{function}: its positional arguments go in the keyword list " <>
          "as args: [...]: #{hint}; got: #{text}"
    }
  end

  # What a user passed where keyword arguments and options go must be a
  # keyword list (or a map, for keyword arguments): a wrong value is the
  # caller's mistake, returned as an error that names the Python signature,
  # never an exception from inside a generated module.
  defp check_keywords(spec, function, kwargs, opts) do
    cond do
      not SnakeBridge.Runtime.kwargs?(kwargs) ->
        {:error, keyword_error(spec, function, "keyword arguments", kwargs)}

      not (is_list(opts) and Keyword.keyword?(opts)) ->
        {:error, keyword_error(spec, function, "options", opts)}

      problem = SnakeBridge.Runtime.options_problem(opts) ->
        python = Map.get(spec, :signature) || "#{function}(...)"
        {:error, %ArgumentError{message: "#{python}: #{problem} (Python keyword arguments go before the options)"}}

      true ->
        :ok
    end
  end

  defp keyword_error(spec, function, what, got) do
    python = Map.get(spec, :signature) || "#{function}(...)"

    star =
      case Map.get(spec, :var_positional) do
        nil -> ""
        name -> "; *#{name} is given by name, as `#{name}: [...]` in the keyword list"
      end

    %ArgumentError{
      message:
        "#{python}: #{what} must be a keyword list" <>
          if(what == "keyword arguments", do: " or a map with atom or string keys", else: "") <>
          " (too many positional arguments?)#{star}, got: #{inspect(got, limit: 10, printable_limit: 60)}"
    }
  end

  @doc false
  def unwrap({:ok, value}), do: value
  def unwrap({:error, exception}), do: raise(exception)

  # ------------------------------------------------------------------ arguments

  # `f(x, [], timeout: 1000)`: no keyword arguments, then options -- the way the
  # runtime calls and functions without optional positional parameters read --
  # even where the two land in optional positional slots. Only when the list is
  # valid SnakeBridge options; `f(x, [], [], timeout: 1000)` passes `[]` itself.
  defp shift_tails(optional, kwargs, opts) do
    given = Enum.take_while(optional, &(&1 != @unset))

    case {Enum.reverse(given), kwargs, opts} do
      {[o, [] | before], [], []} when o != [] -> empty_kwargs_then(o, before, optional, kwargs, opts)
      {[[] | before], [_ | _] = o, []} -> empty_kwargs_then(o, before, optional, kwargs, opts)
      _ -> shift_keyword_tails(given, kwargs, opts)
    end
  end

  defp empty_kwargs_then(o, before, optional, kwargs, opts) do
    if Keyword.keyword?(o) and SnakeBridge.Runtime.options_problem(o) == nil,
      do: {Enum.reverse(before), [], o},
      else: shift_keyword_tails(Enum.take_while(optional, &(&1 != @unset)), kwargs, opts)
  end

  defp shift_keyword_tails(given, kwargs, opts) do
    room =
      cond do
        kwargs == [] and opts == [] -> 2
        opts == [] -> 1
        true -> 0
      end

    tails = given |> Enum.reverse() |> Enum.take_while(&keywordish?/1) |> Enum.take(room) |> Enum.reverse()

    case {tails, kwargs} do
      {[], _} -> {given, kwargs, opts}
      {[kw], []} -> {drop_last(given, 1), kw, []}
      {[kw, o], []} -> {drop_last(given, 2), kw, o}
      {[kw], given_kwargs} -> {drop_last(given, 1), kw, given_kwargs}
    end
  end

  defp keywordish?([_ | _] = list), do: Keyword.keyword?(list)
  defp keywordish?(_), do: false

  defp drop_last(list, n), do: Enum.take(list, length(list) - n)

  defp build(spec, required, optional, kwargs) do
    coerce = Map.get(spec, :coerce, %{})
    kwargs = normalize_kwargs(kwargs)

    {pos, kw} =
      spec.required
      |> Enum.zip(required)
      |> Enum.reduce({[], []}, fn
        {{name, :pos}, value}, {pos, kw} -> {[coerce(value, coerce[name]) | pos], kw}
        {{name, :kw}, value}, {pos, kw} -> {pos, [{name, coerce(value, coerce[name])} | kw]}
      end)

    pos = Enum.reverse(pos)
    kw = Enum.reverse(kw)
    optional_spec = Map.get(spec, :optional, [])

    given =
      optional_spec
      |> Enum.zip(optional)
      |> Enum.map(fn {{name, _, _}, value} -> coerce(value, coerce[name]) end)

    # Positional-only optionals (and *args) named in kwargs must go by position.
    rest = Enum.drop(optional_spec, length(given))
    var_positional = Map.get(spec, :var_positional)
    {star, kwargs} = if var_positional, do: pop(kwargs, var_positional), else: {nil, kwargs}

    last_needed =
      rest
      |> Enum.with_index()
      |> Enum.filter(fn {{name, kind, _}, _} -> kind == :pos_only and List.keymember?(kwargs, name, 0) end)
      |> Enum.map(&elem(&1, 1))
      |> Enum.max(fn -> -1 end)

    last_needed = if star != nil, do: length(rest) - 1, else: last_needed

    with {:ok, filled, kwargs} <- fill(Enum.take(rest, last_needed + 1), kwargs, coerce) do
      kwargs = Enum.map(kwargs, fn {k, v} -> {k, coerce(v, coerce[k])} end)
      {:ok, pos ++ given ++ filled ++ List.wrap(star || []), kw ++ kwargs}
    end
  end

  defp fill(params, kwargs, coerce) do
    Enum.reduce_while(params, {:ok, [], kwargs}, fn {name, _kind, default}, {:ok, acc, kwargs} ->
      case pop(kwargs, name) do
        {nil, kwargs} ->
          case default do
            {:value, v} ->
              {:cont, {:ok, [v | acc], kwargs}}

            _ ->
              {:halt,
               {:error,
                %ArgumentError{
                  message:
                    "#{name} must be given: a later positional-only argument was, and its Python default cannot be expressed"
                }}}
          end

        {value, kwargs} ->
          {:cont, {:ok, [coerce(value, coerce[name]) | acc], kwargs}}
      end
    end)
    |> case do
      {:ok, acc, kwargs} -> {:ok, Enum.reverse(acc), kwargs}
      error -> error
    end
  end

  defp normalize_kwargs(kwargs) when is_map(kwargs), do: Enum.map(kwargs, fn {k, v} -> {to_string(k), v} end)
  defp normalize_kwargs(kwargs) when is_list(kwargs), do: Enum.map(kwargs, fn {k, v} -> {to_string(k), v} end)

  defp pop(kwargs, name) do
    case List.keytake(kwargs, name, 0) do
      {{_, value}, rest} -> {value, rest}
      nil -> {nil, kwargs}
    end
  end

  defp coerce(value, :bytes) when is_binary(value), do: SnakeBridge.bytes(value)
  defp coerce(value, :float) when is_integer(value), do: value * 1.0
  defp coerce(value, :tuple) when is_list(value), do: List.to_tuple(value)
  defp coerce(value, _), do: value
end
