"""Reading gin config files without gin's global state: their statements with includes
expanded in place, and the bindings they make. The zoo registry (tfdet.models) reads each
row's architecture this way; tfdet.config's safety check walks the same statements.

Includes resolve as gin resolves them in tfdet.config.load_experiment: against the working
directory, then the configs folder of the config file (the one holding base/), then tfdet's
own configs folder (CONFIGS).
"""
import os

from gin import config_parser

# The zoo's configs: one file per row, family bases in base/ (shipped inside the package;
# the repository's configs/ links here).
CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


class Reference(str):
    """A `@configurable` reference or `%macro` kept as its text (nothing is looked up)."""


class _Inert(config_parser.ParserDelegate):
    """Parses references and macros without resolving them (nothing is looked up or run)."""

    def configurable_reference(self, scoped_configurable_name, evaluate):
        return Reference(f"@{scoped_configurable_name}{'()' if evaluate else ''}")

    def macro(self, macro_name):
        return Reference(f"%{macro_name}")


def configs_root(config_file):
    """The configs folder a config's includes are relative to (the nearest folder above it
    holding base/; else its own folder)."""
    folder = os.path.dirname(os.path.abspath(config_file))
    while not os.path.isdir(os.path.join(folder, "base")):
        parent = os.path.dirname(folder)
        if parent == folder:
            return os.path.dirname(os.path.abspath(config_file))
        folder = parent
    return folder


def resolve_include(filename, roots):
    """The file an include names: absolute, or the first of filename relative to the working
    directory, then roots/filename; None if none exists."""
    if os.path.isabs(filename):
        return filename if os.path.exists(filename) else None
    for candidate in [filename] + [os.path.join(root, filename) for root in roots if root]:
        if os.path.exists(candidate):
            return candidate
    return None


def statements(text, source, roots, _seen=None):
    """Yields (source, statement) for gin text and, in place of each include, the included
    file's statements (each file once). A missing include raises FileNotFoundError naming
    the including file and line."""
    seen = set() if _seen is None else _seen
    for statement in config_parser.ConfigParser(text, _Inert()):
        if isinstance(statement, config_parser.IncludeStatement):
            path = resolve_include(statement.filename, roots)
            if path is None:
                raise FileNotFoundError(f"{source}:{statement.location.line_num}: include "
                                        f"{statement.filename!r} not found (searched "
                                        f"{', '.join([os.getcwd()] + [r for r in roots if r])})")
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            with open(real, encoding="utf-8") as f:
                yield from statements(f.read(), path, roots, seen)
        else:
            yield source, statement


def read_bindings(config_file):
    """{'Selector.param': value} for every unscoped binding a config file makes, includes
    expanded (a later binding replaces an earlier one, as in gin). Values are Python
    literals; references and macros are Reference strings."""
    roots = (configs_root(config_file), CONFIGS)
    with open(config_file, encoding="utf-8") as f:
        text = f.read()
    bindings = {}
    for _, statement in statements(text, config_file, roots):
        if isinstance(statement, config_parser.BindingStatement) and not statement.scope:
            bindings[f"{statement.selector}.{statement.arg_name}"] = statement.value
    return bindings
