defmodule SnakeBridge.Schema do
  @moduledoc """
  The description of a Python module returned by `SnakeBridge.describe_library/2`.

  A plain map (atom keys, names and text as strings):

      %{
        name: "json", version: "2.0.9", doc: "JSON (JavaScript Object Notation)...",
        file: "/usr/lib/python3.11/json/__init__.py",
        functions: [callable], classes: [class], constants: [constant],
        submodules: [module], unimported_submodules: ["json.tool"],
        errors: [%{name: "pkg.member", error: "AttributeError: ..."}]
      }

  A callable:

      %{
        name: "dumps", qualname: "json.dumps", doc: "...",
        kind: :function | :builtin | :ufunc | :callable | :class | :method | :classmethod | :staticmethod,
        signature: "(obj, *, skipkeys=False, ...)" | nil,
        has_signature: true,            # false: a C function without one; still callable
        parameters: [parameter], return_annotation: "str" | nil,
        overloads: [%{signature: "(start, stop[, step])", parameters: [parameter]}],
        generator: false, coroutine: false,
        defined_in: "numpy.generic" | nil   # methods: the class that defines it
      }

  A parameter:

      %{
        name: "indent",
        kind: :positional_only | :positional_or_keyword | :var_positional | :keyword_only | :var_keyword,
        default: :none | {:value, term()} | {:repr, String.t()},
        annotation: "int | None" | nil,
        bytes_like: false               # true: takes only bytes-like objects (below)
      }

  A class: `name`, `qualname`, `doc`, `bases`, `init` (a callable for the
  constructor, or nil), `methods` (without `self`), `class_methods`,
  `static_methods`, `properties` (`%{name, doc, readonly}`), `constants`,
  `exception` (true for exception classes). A constant: `name`, `type`, `value`,
  `repr`.

  Where `inspect` gives no signature, the signatures a docstring documents are
  read: on several lines (numpy's `array(object, dtype=None, *, ...,\n like=None)`),
  with a prefix (`a.reshape(shape, order='C')`), with optional parts in brackets,
  and one per line for overloads (`range(stop)`, `range(start, stop[, step])`);
  a ufunc's from `nin`/`nout` when its docstring does not match them. `signature`
  and `parameters` are then the first form, and `overloads` lists every form
  when there are several (it is `[]` otherwise).

  `bytes_like` is true for a parameter without an annotation that is known to
  take only bytes-like objects: from a table of standard-library C functions
  whose text signatures carry no types (`zlib.compress(data, /, level=-1)`,
  `hashlib.sha256(string=b'')`, `struct.unpack(format, buffer, /)`...), or
  because its docstring says so (`data : bytes`, `key: bytes or buffer`,
  `Encode the bytes-like object s`). Generated wrappers send Elixir binaries
  given for it as `bytes` (`docs/generated_modules.md`, "Typed argument mapping").

  `version` is the package version (`__version__` or the distribution's
  metadata), `"python-3.11.2"` for the standard library and builtins, or nil.
  """

  @type t :: map()

  # The shape of the maps below: cached schemas of another format are described again.
  @format 3

  @doc false
  def format, do: @format

  @callable_kinds ~w(function builtin ufunc callable class method classmethod staticmethod)
  @param_kinds ~w(positional_only positional_or_keyword var_positional keyword_only var_keyword)

  @doc false
  @spec from_python(map()) :: t()
  def from_python(module) when is_map(module) do
    %{
      name: module["name"],
      version: module["version"],
      doc: module["doc"],
      file: module["file"],
      functions: Enum.map(module["functions"] || [], &callable/1),
      classes: Enum.map(module["classes"] || [], &class/1),
      constants: Enum.map(module["constants"] || [], &constant/1),
      submodules: Enum.map(module["submodules"] || [], &from_python/1),
      unimported_submodules: module["unimported_submodules"] || [],
      errors: Enum.map(module["errors"] || [], &%{name: &1["name"], error: &1["error"]})
    }
  end

  defp callable(nil), do: nil

  defp callable(f) do
    %{
      name: f["name"],
      qualname: f["qualname"],
      doc: f["doc"],
      kind: to_atom(f["kind"], @callable_kinds),
      signature: f["signature"],
      has_signature: f["has_signature"] == true,
      parameters: Enum.map(f["parameters"] || [], &parameter/1),
      return_annotation: f["return_annotation"],
      overloads:
        Enum.map(
          f["overloads"] || [],
          &%{signature: &1["signature"], parameters: Enum.map(&1["parameters"], fn p -> parameter(p) end)}
        ),
      generator: f["generator"] == true,
      coroutine: f["coroutine"] == true,
      defined_in: f["defined_in"]
    }
  end

  defp parameter(p) do
    %{
      name: p["name"],
      kind: to_atom(p["kind"], @param_kinds),
      default: default(p["default"]),
      annotation: p["annotation"],
      bytes_like: p["bytes_like"] == true
    }
  end

  defp default(nil), do: :none
  defp default({"value", v}), do: {:value, v}
  defp default({"repr", r}), do: {:repr, r}

  defp class(c) do
    %{
      name: c["name"],
      qualname: c["qualname"],
      doc: c["doc"],
      bases: c["bases"] || [],
      init: callable(c["init"]),
      methods: Enum.map(c["methods"] || [], &callable/1),
      class_methods: Enum.map(c["class_methods"] || [], &callable/1),
      static_methods: Enum.map(c["static_methods"] || [], &callable/1),
      properties:
        Enum.map(c["properties"] || [], &%{name: &1["name"], doc: &1["doc"], readonly: &1["readonly"] == true}),
      constants: Enum.map(c["constants"] || [], &constant/1),
      exception: c["exception"] == true
    }
  end

  defp constant(c), do: %{name: c["name"], type: c["type"], value: c["value"], repr: c["repr"]}

  # Only known names become atoms (no atoms from arbitrary Python text).
  defp to_atom(text, allowed) when is_binary(text) do
    if text in allowed, do: String.to_existing_atom(text), else: :callable
  end

  defp to_atom(_, _), do: :callable

  @doc false
  # Make sure the atoms exist for String.to_existing_atom/1.
  def __kinds__,
    do:
      [:function, :builtin, :ufunc, :callable, :class, :method, :classmethod, :staticmethod] ++
        [:positional_only, :positional_or_keyword, :var_positional, :keyword_only, :var_keyword]
end
