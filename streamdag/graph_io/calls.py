"""What running a graph may call: every function its nodes' params hold, by
node and param. ``streamdag validate`` prints this list, so a file from
elsewhere can be judged before it runs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.node import Node, walk
from ..datapipes.datapipe import DataPipe
from .files import PathLike, load_node, output_of
from .functions import describe_function, unwrap_partial

if TYPE_CHECKING:
    from .graph import Graph


@dataclass(frozen=True)
class FunctionUse:
    """A function in a node's params: ``param`` is where (``fn``,
    ``handlers[0]``, ``fn.kwargs.key``), ``ref`` its name on disk."""

    node: Node
    param: str
    ref: str


def functions_used(graph: DataPipe[Any] | Graph | Node) -> list[FunctionUse]:
    """Every function the graph's params hold, nodes inputs first: the
    functions themselves and those inside partials' arguments, lists and dicts."""
    return [
        FunctionUse(node, param, ref)
        for node in walk(output_of(graph))
        for key, value in node.params.items()
        for param, ref in _functions(value, key)
    ]


def validate_file(path: PathLike, trusted_modules: Iterable[str] = ()) -> list[FunctionUse]:
    """Check the graph at ``path`` fully, as ``sd.load`` does (GraphFormatError
    if it is malformed or names a function it may not), and return what
    running it may call."""
    return functions_used(load_node(path, trusted_modules))


def _functions(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _functions(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            at = f"{where}.{key}" if isinstance(key, str) else f"{where}[{key!r}]"
            yield from _functions(key, at)
            yield from _functions(item, at)
    elif callable(value):
        base, args, kwargs = unwrap_partial(value)
        yield where, describe_function(base)
        yield from _functions(list(args), f"{where}.args")
        for key, item in kwargs.items():
            yield from _functions(item, f"{where}.kwargs.{key}")
