"""Describes a Python module for SnakeBridge (driven by c_src/core/introspection.cpp).

Rules: never execute more than importing the module did. Members are read from
``__dict__`` (so a module's ``__getattr__`` and class descriptors never run);
attributes of objects whose class is written in Python are read statically
(``inspect.getattr_static``), and a callable instance's signature comes from
its class's ``__call__``. Signatures come from metadata (``inspect.signature``,
``__text_signature__``) or from a docstring's first line parsed with ``ast``
(never evaluated). A member that fails is skipped, or listed without a
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


def _doc_signature_line(name, doc):
    """'(x1, x2, /, out=None, *, where=True)' from a first line such as numpy's
    'add(x1, x2, /, out=None, *, where=True[, signature, extobj])'. Bracketed
    parts are optional arguments: 'log(x, [base=math.e])' and
    'datetime(year, month, day[, hour[, minute]])' keep them, marked optional."""
    if not doc:
        return None
    first = doc.strip().splitlines()[0].strip()
    if not first.startswith(name + "("):
        return None
    # Up to the matching parenthesis: 'date(year, month, day) --> date object'.
    depth = 0
    for i, ch in enumerate(first[len(name):], start=len(name)):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return first[len(name): i + 1]
    return None


_OPTIONAL = "__snakebridge_optional__"


def _unbracket(text):
    """'(x, [base=math.e])' -> '(x, base=math.e)'. Parameters that start inside
    brackets are optional; those without a default get the _OPTIONAL marker."""
    items, item, depth, parens, start_depth = [], "", 0, 0, None

    def flush():
        nonlocal item, start_depth
        if item.strip():
            items.append((item.strip(), (start_depth or 0) > 0))
        item, start_depth = "", None

    for ch in text.strip()[1:-1]:
        if parens == 0 and ch in "[],":
            flush()
            depth += {"[": 1, "]": -1, ",": 0}[ch]
            continue
        parens += {"(": 1, ")": -1}.get(ch, 0)
        if start_depth is None and not ch.isspace():
            start_depth = depth
        item += ch
    flush()
    out = []
    for text_item, optional in items:
        if optional and "=" not in text_item and text_item not in ("/", "*") and not text_item.startswith("*"):
            text_item += "=" + _OPTIONAL
        out.append(text_item)
    return "(" + ", ".join(out) + ")"


def _signature_from_doc(name, doc, positional_only=False):
    """Parses 'name(a, b=1, /, *, c=None)' on a docstring's first line (numpy ufuncs)."""
    if not doc:
        return None
    first = _doc_signature_line(name, doc)
    if first is None:
        return None
    explicit_kinds = "/" in first or "*" in first
    try:
        tree = ast.parse("def f" + _unbracket(first) + ": pass")
    except SyntaxError:
        return None
    args = tree.body[0].args
    params = []

    def default_of(node):
        if isinstance(node, ast.Name) and node.id == _OPTIONAL:
            return ("repr", "(optional)")
        try:
            value = ast.literal_eval(node)
            return ("value", value) if _is_simple(value) else ("repr", ast.unparse(node))
        except Exception:
            return ("repr", ast.unparse(node))

    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for i, (arg, default) in enumerate(zip(positional, defaults)):
        # C functions documented without '/' or '*' take their arguments by position.
        by_position = i < len(args.posonlyargs) or (positional_only and not explicit_kinds)
        kind = "positional_only" if by_position else "positional_or_keyword"
        params.append(_param(arg.arg, kind, default_of(default) if default is not None else None, None))
    if args.vararg:
        params.append(_param(args.vararg.arg, "var_positional", None, None))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append(_param(arg.arg, "keyword_only", default_of(default) if default is not None else None, None))
    if args.kwarg:
        params.append(_param(args.kwarg.arg, "var_keyword", None, None))
    return params


def _param(name, kind, default, annotation):
    return {"name": name, "kind": kind, "default": default, "annotation": annotation}


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

    def function(self, fn, name, qual, kind=None):
        doc = _doc(fn)
        out = {
            "name": name,
            "qualname": qual,
            "kind": kind or self.callable_kind(fn),
            "doc": doc,
            "signature": None,
            "has_signature": False,
            "parameters": [],
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
        else:
            # Aliases (numpy.mod is remainder) document themselves under their real name.
            real = _attr(fn, "__name__", name)
            real = real if isinstance(real, str) else name
            params = _signature_from_doc(real, doc, positional_only=out["kind"] == "builtin")
            if params is not None:
                out["has_signature"] = True
                out["signature"] = _doc_signature_line(real, doc).replace("[, ", " [, ")
                out["parameters"] = params
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
                        fn = self.function(value.__func__, attr, where, "classmethod")
                        self.drop_self(fn)  # cls
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
                        fn = self.function(value, attr, where, kind)
                        self.drop_self(fn)  # self, or cls of a builtin class method
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
