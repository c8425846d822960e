"""Describes a Python module for SnakeBridge (driven by c_src/core/introspection.cpp).

Rules: never execute more than importing the module did. Members are read from
``__dict__`` (so a module's ``__getattr__`` and class descriptors never run);
attributes of objects whose class is written in Python are read statically
(``inspect.getattr_static``), and a callable instance's signature comes from
its class's ``__call__``. Signatures come from metadata (``inspect.signature``,
``__text_signature__``) or from the forms a docstring documents on its first
lines, parsed with ``ast`` (never evaluated). A member that fails is skipped, or listed without a
signature, and reported in ``errors``; only a failure to import the module
itself stops the description.
"""

import ast
import importlib
import inspect
import os
import pkgutil
import re
import sys
import sysconfig
import types

_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional_only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
    inspect.Parameter.VAR_POSITIONAL: "var_positional",
    inspect.Parameter.KEYWORD_ONLY: "keyword_only",
    inspect.Parameter.VAR_KEYWORD: "var_keyword",
}
_SIMPLE = (type(None), bool, int, float, str, bytes)
_STDLIB = os.path.realpath(sysconfig.get_paths()["stdlib"])
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python (or a C heap type)


def _user_instance(obj):
    """An instance of a class written in Python: reading its attributes may run
    the library's code (properties, __getattr__)."""
    return not isinstance(obj, type) and bool(type(obj).__flags__ & _HEAPTYPE) and not isinstance(
        obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType))


def _attr(obj, name, default=None):
    """getattr that runs no code of the library being described."""
    if _user_instance(obj):
        try:
            value = inspect.getattr_static(obj, name)
        except AttributeError:
            return default
        return default if hasattr(type(value), "__get__") else value
    try:
        return getattr(obj, name, default)
    except Exception:
        return default


def describe(name, depth=1, include_private=False):
    module = importlib.import_module(name)
    return _Describer(include_private).module(module, depth)


def _is_simple(value, budget=64):
    """A literal worth carrying as a value (bounded, acyclic)."""
    if isinstance(value, _SIMPLE):
        return not isinstance(value, (str, bytes)) or len(value) <= 4096
    if isinstance(value, (tuple, list, frozenset)) and len(value) <= budget:
        return all(_is_simple(v, budget // 2) for v in value)
    if isinstance(value, dict) and len(value) <= budget:
        return all(_is_simple(k, budget // 2) and _is_simple(v, budget // 2) for k, v in value.items())
    return False


def _without_addresses(text):
    """Memory addresses change from run to run; generated code should not."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _own_module(owner, module_name):
    """A name defined in the module itself, or in its C accelerator (bisect's
    functions live in _bisect, heapq's in _heapq), belongs to its API."""
    if not isinstance(owner, str):
        return False
    if owner == module_name:
        return True
    package, _, last = module_name.rpartition(".")
    accelerator = "_" + last
    return owner == accelerator or owner == (package + "." + accelerator if package else accelerator)


def _safe_repr(value, limit=200):
    try:
        text = repr(value)
    except Exception as e:  # a broken __repr__ must not stop the description
        text = "<%s object (repr failed: %s)>" % (type(value).__name__, type(e).__name__)
    text = _without_addresses(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _annotation(annotation):
    if annotation is inspect.Parameter.empty or annotation is inspect.Signature.empty:
        return None
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def _doc(obj):
    doc = _attr(obj, "__doc__") if not isinstance(obj, type) else obj.__dict__.get("__doc__")
    if not isinstance(doc, str) and isinstance(obj, type) and not obj.__flags__ & _HEAPTYPE:
        doc = type.__dict__["__doc__"].__get__(obj)  # a C type's tp_doc ('type', 'ExceptionGroup')
    return inspect.cleandoc(doc) if isinstance(doc, str) else None


def _version(module):
    version = module.__dict__.get("__version__")
    if isinstance(version, str):
        return version
    top = module.__name__.partition(".")[0]
    root = sys.modules.get(top, module)
    version = root.__dict__.get("__version__")
    if isinstance(version, str):
        return version
    file = root.__dict__.get("__file__")
    if file is None or os.path.realpath(file).startswith(_STDLIB + os.sep):
        return "python-" + ".".join(map(str, sys.version_info[:3]))  # builtin or stdlib
    try:
        from importlib import metadata

        for dist in metadata.packages_distributions().get(top, []):
            return metadata.version(dist)
    except Exception:
        pass
    return None


# -- signatures written in docstrings -------------------------------------------
#
# C callables often have no __text_signature__ but document their calls on the
# docstring's first lines, in several forms that all have to be read:
#
#   array(object, dtype=None, *, copy=True, order='K', subok=False, ndmin=0,
#         like=None)                                      (over several lines)
#   range(stop) -> range object
#   range(start, stop[, step]) -> range object           (overloads, one a line)
#   datetime(year, month, day[, hour[, minute]])          (optional in brackets)
#   arange([start,] stop[, step,], dtype=None)            (a leading optional)
#   a.reshape(shape, order='C'), np.void(...), async anext(...)   (prefixes)
#   itemgetter(item, ...), zip_longest(iter1 [,iter2 [...]])      (more of them)
#   filter(function or None, iterable), concatenate((a1, a2, ...), axis=0)
#
# Every form becomes one or more plain parameter lists; nothing is evaluated
# (defaults go through ast.literal_eval, or stay text).

_MAX_SIGNATURE_LINES = 12
_OPTIONAL = ("repr", "(optional)")  # bracketed: optional, default not expressible


def _doc_signatures(name, doc):
    """The signature texts ('(x, y=1)') documented at the start of doc: the first
    line must be one; the other lines of the first paragraph that are also
    signatures of name are overloads. A signature may span lines."""
    if not doc or not isinstance(name, str):
        return []
    start = re.compile(r"(?:async\s+)?(?:[A-Za-z_]\w*\.)*" + re.escape(name) + r"\s*\(")
    lines = doc.strip().splitlines()
    found, i = [], 0
    while i < len(lines) and lines[i].strip():
        m = start.match(lines[i].strip())
        text, end = _balanced(lines, i, m.end() - 1) if m else (None, i)
        if text is not None:
            found.append(text)
        elif i == 0:
            return []
        i = end + 1
    return found


def _balanced(lines, first, column):
    """The parenthesised text starting at lines[first].strip()[column], joined
    over lines until its parenthesis closes; (None, first) if it never does."""
    text, depth, quote = "", 0, None
    for j in range(first, min(len(lines), first + _MAX_SIGNATURE_LINES)):
        line = lines[j].strip()[column if j == first else 0:]
        for k, ch in enumerate(line):
            if quote:
                quote = None if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
                if depth == 0:
                    return re.sub(r"\s+", " ", text + line[: k + 1]), j
        text += line + " "
    return None, first


def _items(inner):
    """Top-level items of a parameter list with the depth of optional brackets
    each starts in: 'x[, y[, z]]' -> [('x', 0), ('y', 1), ('z', 2)]. Brackets
    inside a default ('holidays=[]') are the value's; None if unbalanced."""
    items, item, depth, nest, quote, start = [], "", 0, [], None, None

    def flush():
        nonlocal item, start
        if item.strip():
            items.append((item.strip(), start))
        item, start = "", None

    for ch in inner:
        if quote or nest or ch in "'\"({" or (ch == "[" and item.rstrip().endswith("=")):
            if quote:
                quote = None if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch in "([{":
                nest.append(ch)
            elif ch in ")]}":
                nest.pop()
            start = depth if start is None else start
            item += ch
        elif ch == "[":
            flush()
            depth += 1
        elif ch == "]":
            flush()
            depth -= 1
            if depth < 0:
                return None
        elif ch == ",":
            flush()
        elif ch in ")}":
            return None
        else:
            if start is None and not ch.isspace():
                start = depth
            item += ch
    flush()
    return items if depth == 0 and not nest and not quote else None


def _one_param(text):
    """(name, annotation, default) of 'x', 'x: int', 'x=1', or None."""
    try:
        fn = ast.parse("def f(%s): pass" % text).body[0]
    except SyntaxError:
        return None
    args = fn.args
    if len(args.args) != 1 or args.vararg or args.kwarg or args.kwonlyargs:
        return None
    arg = args.args[0]
    default = _default_of(args.defaults[0]) if args.defaults else None
    return arg.arg, (ast.unparse(arg.annotation) if arg.annotation else None), default


def _default_of(node):
    try:
        value = ast.literal_eval(node)
        return ("value", value) if _is_simple(value) else ("repr", ast.unparse(node))
    except Exception:
        return ("repr", ast.unparse(node))


def _parse_signature(text, c_positional):
    """Parameter lists ([[param]]) for one documented signature: one, or two for
    a leading optional ('[start,] stop'). c_positional: a C function documented
    without '/' or '*' takes its arguments by position. [] if it cannot be read."""
    items = _items(text.strip()[1:-1])
    if items is None:
        return []
    explicit = any(t == "/" or t.startswith("*") for t, _ in items)
    params, slash, star = [], False, False
    for t, depth in items:
        if t == "/":
            if slash:
                return []
            slash = True
            for p in params:
                p["kind"] = "positional_only"
        elif t in ("...", "\u2026"):  # more of the same
            if params and params[-1]["kind"] in ("var_positional", "var_keyword"):
                continue
            after_keyword = params and params[-1]["default"] not in (None, _OPTIONAL)
            if after_keyword or star:  # 'op1=func1, op2=func2, ...'
                params.append(_param("kwargs", "var_keyword", None, None))
            else:  # 'item, ...' -> *items
                base = re.sub(r"\d+$", "", params[-1]["name"]) + "s" if params else "args"
                base = "args" if any(p["name"] == base for p in params) else base
                params.append(_param(base, "var_positional", None, None))
                star = True
        elif t == "*":
            star = True
        elif t.startswith("**") and t[2:].isidentifier():
            params.append(_param(t[2:], "var_keyword", None, None))
        elif t.startswith("*") and t[1:].isidentifier():
            params.append(_param(t[1:], "var_positional", None, None))
            star = True
        else:
            parsed = _one_param(t)
            if parsed is None:
                word = re.match(r"([A-Za-z_]\w*)\s+\w", t)  # 'function or None'
                if t.startswith("(") and t.endswith(")"):
                    parsed = ("seq", None, None)  # a tuple of items: '(a1, a2, ...)'
                elif word:
                    parsed = (word.group(1), None, None)
                else:
                    return []
            name, annotation, default = parsed
            if default is None and depth > 0:
                default = _OPTIONAL
            if star:
                kind = "keyword_only"
            elif (c_positional and not explicit) or (default == _OPTIONAL and not explicit):
                kind = "positional_only"
            else:
                kind = "positional_or_keyword"
            params.append(_param(name, kind, default, annotation))
    # A positional-only parameter makes those before it positional-only too.
    last_po = max((i for i, p in enumerate(params) if p["kind"] == "positional_only"), default=0)
    for p in params[:last_po]:
        if p["kind"] == "positional_or_keyword":
            p["kind"] = "positional_only"
    names = [p["name"] for p in params]
    if len(set(names)) != len(names) or len([p for p in params if p["kind"] == "var_positional"]) > 1:
        return []
    return _leading_optional(params)


_POSITIONAL = ("positional_only", "positional_or_keyword")


def _leading_optional(params, depth=0):
    """'[start,] stop[, step]': a bracketed optional before a required positional
    parameter is two forms, (stop, *, step) and (start, stop[, step]). In the
    short form the later optional positionals can only be named: passed by
    position they would shift ('arange(10, float)' is arange(start=10, stop=float))."""
    positional = [i for i, p in enumerate(params) if p["kind"] in _POSITIONAL]
    required = [i for i in positional if _required(params[i])]
    leading = [i for i in positional if not _required(params[i]) and required and i < required[-1]]
    if not leading:
        return [params]
    if depth > 2 or any(params[i]["default"] != _OPTIONAL for i in leading):
        return []  # 'f(a=1, b)': not a signature
    last_required = required[-1]
    short = []
    for i, p in enumerate(params):
        if i in leading:
            continue
        if i > last_required and p["kind"] in _POSITIONAL:
            p = dict(p, kind="keyword_only")
        short.append(p)
    full = [dict(p, default=None) if i in leading else p for i, p in enumerate(params)]
    return _leading_optional(short, depth + 1) + _leading_optional(full, depth + 1)


def _required(p):
    return p["default"] is None


def _ufunc_parameters(fn):
    """A ufunc's parameters from nin/nout (numpy documents the same list)."""
    nin, nout = _attr(fn, "nin"), _attr(fn, "nout")
    if not (isinstance(nin, int) and isinstance(nout, int)) or nin < 1:
        return None
    names = ["x"] if nin == 1 else ["x%d" % (i + 1) for i in range(nin)]
    params = [_param(n, "positional_only", None, None) for n in names]
    params.append(_param("out", "positional_or_keyword", ("value", None if nout == 1 else (None,) * nout), None))
    for name, default in (("where", True), ("casting", "same_kind"), ("order", "K"), ("dtype", None), ("subok", True)):
        params.append(_param(name, "keyword_only", ("value", default), None))
    params.append(_param("kwargs", "var_keyword", None, None))
    text = "(%s, /, out=%s, *, where=True, casting='same_kind', order='K', dtype=None, subok=True, **kwargs)" % (
        ", ".join(names), "None" if nout == 1 else repr((None,) * nout))
    return text, params


def _signatures_from_doc(fn, name, doc, kind):
    """[(text, params)] for every form documented on doc's first lines (a
    ufunc's from nin/nout when its doc says otherwise); [] if none."""
    c_positional = kind == "builtin"
    found = []
    for text in _doc_signatures(name, doc):
        for params in _parse_signature(text, c_positional):
            if params and params[0]["name"] in ("self", "cls") and params[0]["kind"] in _POSITIONAL:
                params = params[1:]
            if all(params != other for _, other in found):
                found.append((text.replace("[, ", " [, ").replace(" [ ,", " [,"), params))
    if kind == "ufunc":
        nin = _attr(fn, "nin")

        def inputs(params):
            return sum(1 for p in params if p["kind"] in _POSITIONAL and _required(p))

        if not found or any(inputs(ps) != nin for _, ps in found):
            made = _ufunc_parameters(fn)
            found = [made] if made else found
    return found


def _param(name, kind, default, annotation):
    return {"name": name, "kind": kind, "default": default, "annotation": annotation, "bytes_like": False}


# -- parameters known to take bytes ----------------------------------------------
#
# An Elixir binary that is valid UTF-8 becomes a str, but many binary APIs take
# only bytes-like objects (TypeError: a bytes-like object is required, not
# 'str'). A parameter is marked bytes_like, and generated wrappers send Elixir
# binaries given for it as bytes, when it has no annotation (an annotation
# decides on its own, on the Elixir side) and either
#
#   * it is in _KNOWN_BYTES below: stdlib C functions whose text signatures
#     carry no types ('compress(data, /, level=-1)'), listed by hand; or
#   * the docstring says so: a field whose type is only bytes-like words
#     ('data : bytes', 'key: bytes or buffer, ...', 'key (bytes): ...',
#     ':type data: bytes') or prose naming it a bytes-like object ('Encode the
#     bytes-like object s', 's is a bytes-like object', 'data (which must be a
#     bytes-like object)').
#
# Conservative on purpose: a wrong guess sends bytes to a function that wanted a
# str. A parameter that also takes text ('bytes-like object or ASCII string s',
# 'str or bytes', base64's decoders, struct formats) is never marked, and
# nothing is called to find out.

def _names(prefix, names, params):
    return {prefix + n: params for n in names.split()}


# Stdlib parameters that accept bytes-like objects and never a str (checked
# against CPython 3.11; test/generation/bytes_params_test.exs calls each with a str).
_KNOWN_BYTES = {
    **_names("zlib.", "adler32 crc32 compress decompress", ("data",)),
    **_names("zlib.", "compressobj decompressobj", ("zdict",)),
    **_names("binascii.", "b2a_base64 b2a_qp b2a_uu crc32 crc_hqx", ("data",)),
    **_names("hashlib.", "md5 sha1 sha224 sha256 sha384 sha512 sha3_224 sha3_256 sha3_384 sha3_512 "
             "shake_128 shake_256", ("string",)),
    **_names("_blake2.", "blake2b blake2s", ("data", "key", "salt", "person")),  # hashlib.blake2b
    "hashlib.new": ("data",),
    "hashlib.pbkdf2_hmac": ("password", "salt"),
    "hashlib.scrypt": ("password", "salt"),
    **_names("hmac.", "new digest HMAC", ("key", "msg")),
    "hmac.HMAC.update": ("msg",),
    **_names("struct.", "unpack unpack_from iter_unpack", ("buffer",)),
    **_names("_struct.Struct.", "unpack unpack_from iter_unpack", ("buffer",)),
    **_names("base64.", "b64encode", ("s", "altchars")),
    **_names("base64.", "standard_b64encode urlsafe_b64encode b32encode b32hexencode b16encode encodebytes",
             ("s",)),
    **_names("base64.", "a85encode b85encode", ("b",)),
    **_names("gzip.", "compress decompress", ("data",)),
    **_names("bz2.", "compress decompress", ("data",)),
    **_names("lzma.", "compress decompress", ("data",)),
    "pickle.loads": ("data",),
    "marshal.loads": ("bytes",),
    **{module + name: ("data",) for module in ("codecs.", "_codecs.") for name in (
        "ascii_decode charmap_decode latin_1_decode utf_7_decode utf_8_decode utf_16_decode utf_16_le_decode "
        "utf_16_be_decode utf_16_ex_decode utf_32_decode utf_32_le_decode utf_32_be_decode "
        "utf_32_ex_decode").split()},
}

_BYTES_WORD = (r"(?:bytes-like(?:\s+object)?|bytes|bytearray|memoryview|(?:readable\s+)?buffer|byte\s+string"
               r"|bytestring|(?:collections\.abc\.)?Buffer|ReadableBuffer)")
_BYTES_TYPE = _BYTES_WORD + r"(?:\s*(?:,|\bor\b|\|)\s*" + _BYTES_WORD + r")*(?:\s*,\s*optional)?"
_TEXT_WORDS = re.compile(r"\b(?:str|string|text|unicode|ASCII|path|file)\b", re.IGNORECASE)
_NAME = r"[`*]*([A-Za-z_]\w*)[`*]*"
# A field: 'name : T', 'name: T, description', 'name (T): ...', ':type name: T',
# ':param T name:' -- the rest of its line must not admit text.
_BYTES_FIELDS = [re.compile(p, re.MULTILINE) for p in (
    r"^\s*" + _NAME + r"\s*:\s*" + _BYTES_TYPE + r"\s*(?:$|[,.;]|\s-)(.*)$",
    r"^\s*" + _NAME + r"\s*\(\s*" + _BYTES_TYPE + r"\s*\)\s*:(.*)$",
    r"^\s*:type\s+" + _NAME + r"\s*:\s*" + _BYTES_TYPE + r"\s*$()",
    r"^\s*:param\s+" + _BYTES_TYPE + r"\s+" + _NAME + r"\s*:(.*)$",
)]
# Prose: 'the bytes-like object s', 's is a bytes-like object', 'data (which
# must be a bytes-like object)' -- not followed by 'or ...' (an alternative).
_BYTES_PROSE = [re.compile(p) for p in (
    r"\bbytes-like\s+object\s+" + _NAME + r"(?![\w-])(?!\s*,?\s*or\b)",
    r"(?<![\w-])" + _NAME + r"\s+(?:\(\s*which\s+)?(?:is|must\s+be|should\s+be)\s+an?\s+bytes-like\s+object"
    r"(?!\s*,?\s*or\b)",
)]


def _documented_bytes_like(doc):
    """The names doc documents as taking only bytes-like objects."""
    if not doc or not re.search(r"bytes|buffer|Buffer|bytearray|memoryview", doc):
        return set()
    names = set()
    for pattern in _BYTES_FIELDS:
        names.update(m.group(1) for m in pattern.finditer(doc) if not _TEXT_WORDS.search(m.group(2)))
    for pattern in _BYTES_PROSE:
        names.update(m.group(1) for m in pattern.finditer(doc))
    return names


def _mark_bytes_like(out, qual):
    """Sets bytes_like on the parameters of a described callable (above)."""
    params = [p for ps in [out["parameters"]] + [o["parameters"] for o in out["overloads"]] for p in ps
              if p["annotation"] is None and p["kind"] not in ("var_positional", "var_keyword")]
    if not params:
        return
    bytes_like = set(_KNOWN_BYTES.get(qual, ())) | _documented_bytes_like(out["doc"])
    for p in params:
        p["bytes_like"] = p["name"] in bytes_like


class _Describer:
    def __init__(self, include_private):
        self.include_private = include_private
        self.errors = []

    def public(self, name):
        return self.include_private or not name.startswith("_")

    def fail(self, where, error):
        self.errors.append({"name": where, "error": "%s: %s" % (type(error).__name__, error)})

    # -- modules ------------------------------------------------------------

    def module(self, module, depth):
        self.errors = []
        out = {
            "name": module.__name__,
            "version": _version(module),
            "doc": _doc(module),
            "file": module.__dict__.get("__file__"),
            "functions": [],
            "classes": [],
            "constants": [],
            "submodules": [],
            "unimported_submodules": [],
        }
        namespace = dict(module.__dict__)
        exported = namespace.get("__all__")
        if self.include_private or not isinstance(exported, (list, tuple)):
            exported = None if self.include_private else exported
            names = sorted(namespace)
        else:
            names = list(exported)
        for name in names:
            if not isinstance(name, str) or not self.public(name) or name not in namespace:
                continue
            value = namespace[name]
            qual = module.__name__ + "." + name
            try:
                if isinstance(value, types.ModuleType):
                    continue
                if isinstance(value, type):
                    # Classes defined elsewhere and re-exported count too (numpy.ndarray),
                    # but only when the module exports them or they are its own.
                    if exported is not None or _own_module(_attr(value, "__module__"), module.__name__):
                        out["classes"].append(self.klass(value, name))
                elif callable(value):
                    if exported is not None or self.owned(value, module):
                        out["functions"].append(self.function(value, name, qual))
                elif _is_simple(value):
                    out["constants"].append({"name": name, "type": type(value).__name__,
                                             "value": value, "repr": _safe_repr(value)})
            except Exception as e:
                self.fail(qual, e)
        errors = self.errors
        if depth > 0:
            out["submodules"], out["unimported_submodules"] = self.submodules(module, namespace, depth)
        out["errors"] = errors
        return out

    def owned(self, value, module):
        """Functions imported from elsewhere (json's `loads` helpers, typing names) are
        not part of this module's API unless __all__ says so."""
        owner = _attr(value, "__module__")
        if owner is None or _own_module(owner, module.__name__):
            return True
        if isinstance(value, (types.BuiltinFunctionType, type(len))) and owner == "builtins":
            return False
        top = module.__name__.partition(".")[0]
        return isinstance(owner, str) and (owner == top or owner.startswith(top + ".")) and not owner.startswith(module.__name__ + ".")

    def submodules(self, module, namespace, depth):
        found, seen = [], set()
        prefix = module.__name__ + "."
        for name in sorted(namespace):
            value = namespace[name]
            try:
                if not (isinstance(value, types.ModuleType) and value.__name__.startswith(prefix) and self.public(name)):
                    continue
            except Exception as e:  # a member whose __class__ raises
                self.fail(module.__name__ + "." + name, e)
                continue
            if value.__name__ not in seen:
                seen.add(value.__name__)
                try:
                    found.append(self.module(value, depth - 1))
                except Exception as e:
                    self.fail(value.__name__, e)
        unimported = []
        path = module.__dict__.get("__path__")
        if path is not None:
            try:
                for info in pkgutil.iter_modules(path):  # lists files; imports nothing
                    full = prefix + info.name
                    if full not in seen and self.public(info.name) and full not in sys.modules:
                        unimported.append(full)
            except Exception as e:
                self.fail(module.__name__ + ".__path__", e)
        return found, unimported

    # -- callables ----------------------------------------------------------

    def function(self, fn, name, qual, kind=None, drop_self=False):
        """drop_self: a method's signature from inspect starts with the object
        (self, or cls); a documented one ('a.reshape(shape)') does not."""
        doc = _doc(fn)
        out = {
            "name": name,
            "qualname": qual,
            "kind": kind or self.callable_kind(fn),
            "doc": doc,
            "signature": None,
            "has_signature": False,
            "parameters": [],
            "overloads": [],
            "return_annotation": None,
            "generator": inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn),
            "coroutine": inspect.iscoroutinefunction(fn),
        }
        try:
            if _user_instance(fn):
                # inspect.signature(fn) would read fn.__signature__ (a property may run).
                call = inspect.getattr_static(type(fn), "__call__", None)
                sig = inspect.signature(call) if isinstance(call, types.FunctionType) else None
                if sig is not None:
                    params = list(sig.parameters.values())[1:]
                    sig = sig.replace(parameters=params)
            else:
                sig = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        except Exception as e:
            self.fail(qual, e)
            sig = None
        if sig is not None:
            out["has_signature"] = True
            out["signature"] = _without_addresses(str(sig))
            out["parameters"] = [self.parameter(p) for p in sig.parameters.values()]
            out["return_annotation"] = _annotation(sig.return_annotation)
            if drop_self:
                self.drop_self(out)
        else:
            # Aliases (numpy.mod is remainder) document themselves under their real name.
            real = _attr(fn, "__name__", name)
            real = real if isinstance(real, str) else name
            forms = _signatures_from_doc(fn, real, doc, out["kind"])
            if forms:
                out["has_signature"] = True
                out["signature"], out["parameters"] = forms[0]
                if len(forms) > 1:
                    out["overloads"] = [{"signature": t, "parameters": ps} for t, ps in forms]
        _mark_bytes_like(out, qual)
        return out

    def parameter(self, p):
        if p.default is inspect.Parameter.empty:
            default = None
        elif _is_simple(p.default):
            default = ("value", p.default)
        else:
            default = ("repr", _safe_repr(p.default))
        return _param(p.name, _KINDS[p.kind], default, _annotation(p.annotation))

    @staticmethod
    def callable_kind(fn):
        if isinstance(fn, (types.FunctionType, types.MethodType)):
            return "function"
        if isinstance(fn, (types.BuiltinFunctionType, types.BuiltinMethodType)):
            return "builtin"
        if type(fn).__name__ == "ufunc":
            return "ufunc"
        return "callable"

    # -- classes ------------------------------------------------------------

    def klass(self, cls, name):
        qual = "%s.%s" % (cls.__module__, cls.__qualname__)
        out = {
            "name": name,
            "qualname": qual,
            "doc": _doc(cls) or inspect.getdoc(cls),
            "bases": ["%s.%s" % (b.__module__, b.__qualname__) for b in cls.__bases__ if b is not object],
            "init": None,
            "methods": [],
            "class_methods": [],
            "static_methods": [],
            "properties": [],
            "constants": [],
            "exception": issubclass(cls, BaseException),
        }
        try:
            init = self.function(cls, name, qual, kind="class")
            # The class's own docstring describes construction; keep the signature.
            out["init"] = init
        except Exception as e:
            self.fail(qual + ".__init__", e)
        seen = set()
        for klass in cls.__mro__:
            if klass is object:
                continue
            owner = "%s.%s" % (getattr(klass, "__module__", "?"), getattr(klass, "__qualname__", "?"))
            before = {key: len(out[key]) for key in ("methods", "class_methods", "static_methods")}
            for attr, value in list(vars(klass).items()):
                if attr in seen or (not self.public(attr) and attr not in ("__call__",)):
                    continue
                seen.add(attr)
                where = qual + "." + attr
                try:
                    if isinstance(value, staticmethod):
                        out["static_methods"].append(self.function(value.__func__, attr, where, "staticmethod"))
                    elif isinstance(value, classmethod):
                        fn = self.function(value.__func__, attr, where, "classmethod", drop_self=True)
                        out["class_methods"].append(fn)
                    elif isinstance(value, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
                        # A property knows its setter. C descriptors do not say: __slots__
                        # members of Python classes are writable, attributes of C types
                        # (datetime.date.year) are taken as read-only.
                        if isinstance(value, property):
                            readonly = value.fset is None
                        else:
                            readonly = not (isinstance(value, types.MemberDescriptorType) and klass.__flags__ & _HEAPTYPE)
                        out["properties"].append({"name": attr, "doc": _doc(value), "readonly": readonly})
                    elif isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
                                            types.WrapperDescriptorType, types.ClassMethodDescriptorType)):
                        kind = "classmethod" if isinstance(value, types.ClassMethodDescriptorType) else "method"
                        fn = self.function(value, attr, where, kind, drop_self=True)  # self, or cls
                        (out["class_methods"] if kind == "classmethod" else out["methods"]).append(fn)
                    elif _is_simple(value) and not attr.startswith("_"):
                        out["constants"].append({"name": attr, "type": type(value).__name__,
                                                 "value": value, "repr": _safe_repr(value)})
                except Exception as e:
                    self.fail(where, e)
            for key, start in before.items():
                for fn in out[key][start:]:
                    fn["defined_in"] = owner
        return out

    @staticmethod
    def drop_self(fn):
        """Methods are called on an object: the first parameter is the object."""
        params = fn["parameters"]
        if params and params[0]["kind"] in ("positional_only", "positional_or_keyword"):
            fn["parameters"] = params[1:]
