"""Checks pip requirement strings against the distributions this interpreter sees.

Run by ``SnakeBridge.Venv.check/2`` with the venv's own python (never through
the NIF), so that versions are compared and environment markers evaluated by
``packaging`` for the interpreter that will import the packages::

    VENV/bin/python snakebridge_requirements.py REQUIREMENT...

Each argument is one requirement as pip reads it: ``name[extras] specifiers ;
marker``, ``name @ url``, a local project directory, wheel or sdist (``-e``
allowed) or a ``file:`` URL.

Answer, on stdout: the line ``snakebridge-requirements 1``, then one line per
argument, in order::

    STATUS<TAB>DETAIL

STATUS is ``ok``, ``missing``, ``mismatch`` or ``unverifiable``. DETAIL is text
for a person, with backslash, tab, carriage return and newline written as
``\\\\``, ``\\t``, ``\\r`` and ``\\n`` so that a record is one line. Anything
before the header line (warnings, stderr) is not part of the answer. Exit
status 2 with a message on stderr when ``packaging`` cannot be imported.
"""

import configparser
import importlib.metadata
import os
import re
import sys
from urllib.parse import unquote, urlsplit

# Debian's python3 has no `packaging` unless python3-packaging is installed,
# but every venv with pip carries a copy of it.
try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ImportError:
    try:
        from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
        from pip._vendor.packaging.utils import canonicalize_name
        from pip._vendor.packaging.version import InvalidVersion, Version
    except ImportError:
        Requirement = None

try:
    import tomllib  # Python 3.11
except ImportError:
    try:
        import tomli as tomllib
    except ImportError:
        try:
            from pip._vendor import tomli as tomllib
        except ImportError:
            tomllib = None

HEADER = "snakebridge-requirements 1"
ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|zip|tar\.bz2)$")
SDIST = re.compile(r"^(.+)-[^-]+\.(tar\.gz|tgz|zip|tar\.bz2)$")
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
EDITABLE = re.compile(r"^(-e|--editable)\s+")
SETUP_PY_NAME = re.compile(r"""\bname\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def installed():
    """{canonical name: version} of the visible distributions; the first one on
    sys.path wins, as it does for import."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), (dist.version or "").strip())
    return found


def check(text, found):
    """(status, detail) for one requirement string."""
    text = EDITABLE.sub("", text.strip())

    if text.startswith("file:"):
        return check_path(unquote(urlsplit(text).path), found)

    try:
        req, error = Requirement(text), None
    except InvalidRequirement as e:
        req, error = None, str(e)

    # A bare wheel or sdist file name is also a valid project name: pip takes
    # it as a file, and so do we.
    if req is not None and (req.url or not ARCHIVE.search(text)):
        skipped = marker_skips(req)
        if skipped:
            return skipped
        if req.url:
            return check_name(req.name, "direct reference", found)
        return check_version(req, found)

    if URL.match(text):
        return "unverifiable", "cannot verify: URL requirement"
    if text.startswith((".", "/", "~")) or "/" in text or ARCHIVE.search(text):
        return check_path(text, found)
    return "unverifiable", "cannot verify: not a requirement (%s)" % error.splitlines()[0]


def marker_skips(req):
    """The result for a requirement whose marker excludes this interpreter
    (pip does not install it, so it is satisfied), or None."""
    if req.marker is None:
        return None
    try:
        applies = req.marker.evaluate({"extra": ""})
    except Exception as e:
        return "unverifiable", "cannot verify: cannot evaluate the marker %s (%s)" % (req.marker, e)
    if applies:
        return None
    return "ok", "not needed: the marker %s is false for this interpreter" % req.marker


def check_version(req, found):
    version = found.get(canonicalize_name(req.name))
    if version is None:
        return "missing", "not installed"
    ok = satisfies(version, req.specifier)
    if ok is None:
        return "unverifiable", "cannot verify: %s installed, version not comparable" % version
    return ("ok" if ok else "mismatch"), "%s installed" % version


def satisfies(version, specifier):
    """Whether an installed version is allowed; None when it is no PEP 440
    version and a specifier needs one. An installed pre-release counts (as for
    `pip check`): only requests to install exclude pre-releases."""
    specs = list(specifier)
    if not specs:
        return True
    try:
        Version(version)
    except InvalidVersion:
        if all(s.operator == "===" for s in specs):
            return all(version.lower() == s.version.lower() for s in specs)
        return None
    return specifier.contains(version, prereleases=True)


def check_name(name, how, found):
    version = found.get(canonicalize_name(name))
    if version is None:
        return "missing", "%s not installed" % name
    return "ok", "%s %s installed (%s)" % (name, version, how)


def check_path(path, found):
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full):
        return "missing", "local path %s does not exist" % full
    name = project_name(full)
    if name is None:
        return "unverifiable", "cannot verify: cannot read the project name at %s" % path
    return check_name(name, "from local path", found)


def project_name(path):
    """The project name of a source directory, wheel or sdist, or None."""
    if os.path.isdir(path):
        return (
            toml_name(os.path.join(path, "pyproject.toml"))
            or cfg_name(os.path.join(path, "setup.cfg"))
            or setup_py_name(os.path.join(path, "setup.py"))
        )
    base = os.path.basename(path)
    if base.endswith(".whl"):
        return base.split("-")[0]
    match = SDIST.match(base)
    return match.group(1) if match else None


def toml_name(file):
    if tomllib is None or not os.path.isfile(file):
        return None
    try:
        with open(file, "rb") as f:
            data = tomllib.load(f)
    except (OSError, ValueError):
        return None
    for table in (data.get("project"), data.get("tool", {}).get("poetry")):
        if isinstance(table, dict) and isinstance(table.get("name"), str):
            return table["name"]
    return None


def cfg_name(file):
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(file, encoding="utf-8")
        return parser.get("metadata", "name", fallback=None) or None
    except (configparser.Error, UnicodeDecodeError):
        return None


def setup_py_name(file):
    """A literal name="..." in setup.py, when there is exactly one."""
    try:
        with open(file, encoding="utf-8", errors="replace") as f:
            names = SETUP_PY_NAME.findall(f.read())
    except OSError:
        return None
    return names[0] if len(names) == 1 else None


def escape(text):
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")


def main(requirements):
    if Requirement is None:
        sys.stderr.write(
            "%s can import neither `packaging` nor pip (which carries a copy); "
            "install pip or packaging into it\n" % sys.executable
        )
        return 2
    found = installed()
    lines = [HEADER] + ["%s\t%s" % (status, escape(detail)) for status, detail in
                        (check(text, found) for text in requirements)]
    # One write, so no warning on stderr can land inside the answer.
    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
