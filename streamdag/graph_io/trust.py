"""What a graph file may name. One place, so the safety rule of the format
(a file runs no code outside streamdag's graph functions, registered
functions, a few pure builtins and the caller's trusted modules) is read and
tested here only."""

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

# streamdag's own functions that a graph file may name, by the name sd.save
# writes (streamdag's public aliases of them load too): the decoders that the
# `decode` op's graphs hold (sd.image_handler's partial, builtin_decoders) and
# sd.decode_image for maps. Everything else in streamdag is refused: private
# helpers, and whatever loads graphs, unpickles, imports or starts processes.
GRAPH_FUNCTIONS = frozenset(
    {
        "streamdag.decoders.image:decode_image",
        "streamdag.decoders.image:decode_image_field",
        "streamdag.datapipes.map_style:item_of",  # map-style pipes' to_iter_datapipe
        *(
            f"streamdag.decoders.handlers:{name}"
            for name in ("integer", "json_value", "msgpack_value", "npy", "pth", "text")
        ),
    }
)

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
    """``module`` is one of the caller's trusted modules or inside one of those
    packages. streamdag itself is not: only its GRAPH_FUNCTIONS may be named."""
    return any(module == root or module.startswith(root + ".") for root in trusted)


def in_streamdag(module: str) -> bool:
    """``module`` is streamdag or one of its submodules."""
    return is_trusted(module, ("streamdag",))
