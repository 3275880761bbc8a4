"""Which modules loading may import. One place, so the safety rule of the
format ("never import a module outside streamdag, registered functions and
the caller's trusted modules") is read and tested here only."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Pure functions and types of modules that are always loaded, allowed without
# trusting the whole module (``builtins:eval`` and friends stay refused).
SAFE_REFS = frozenset(
    {
        *(
            f"builtins:{name}"
            for name in (
                "abs",
                "bool",
                "bytes",
                "dict",
                "float",
                "frozenset",
                "int",
                "len",
                "list",
                "max",
                "min",
                "round",
                "set",
                "sorted",
                "str",
                "sum",
                "tuple",
            )
        ),
        *(
            f"builtins:str.{name}"
            for name in (
                "encode",
                "lower",
                "lstrip",
                "rstrip",
                "split",
                "splitlines",
                "strip",
                "upper",
            )
        ),
        "builtins:bytes.decode",
        "json:dumps",
        "json:loads",
    }
)

ALWAYS_TRUSTED = ("streamdag",)

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def is_dotted_name(text: str) -> bool:
    """``a.b.c`` of Python identifiers (what a module path or qualname looks like)."""
    return bool(_DOTTED.match(text))


def normalize_trusted(trusted_modules: Iterable[str] | str) -> tuple[str, ...]:
    """The caller's trusted module names, checked (a bare string is one name,
    not a sequence of letters)."""
    names = (trusted_modules,) if isinstance(trusted_modules, str) else tuple(trusted_modules)
    for name in names:
        if not isinstance(name, str) or not is_dotted_name(name):
            raise ValueError(f"trusted_modules: {name!r} is not a module name like 'pkg.mod'")
    return names


def is_trusted(module: str, trusted: tuple[str, ...]) -> bool:
    """``module`` is streamdag or a trusted module, or inside one of those packages."""
    return any(
        module == root or module.startswith(root + ".") for root in (*ALWAYS_TRUSTED, *trusted)
    )
