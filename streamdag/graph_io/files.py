"""``save`` and ``load``: a graph to a file and back, in either encoding."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.node import Node
from ..datapipes.datapipe import DataPipe
from ..errors import GraphFormatError
from .codec import MAX_FILE_BYTES, dump_bytes, format_for, load_bytes
from .document import from_document, to_document
from .trust import normalize_trusted
from .validate import check_graph

if TYPE_CHECKING:
    from .graph import Graph

PathLike = str | os.PathLike[str]


def output_of(graph: DataPipe[Any] | Graph | Node) -> Node:
    """The output node of anything that stands for a graph."""
    if isinstance(graph, DataPipe):
        return graph.node
    if isinstance(graph, Node):
        return graph
    output = getattr(graph, "output", None)
    if isinstance(output, Node):
        return output
    raise TypeError(f"expected a DataPipe, Graph or Node, got {graph!r}")


def dumps(
    graph: DataPipe[Any] | Graph | Node, fmt: str = "msgpack", *, include_secrets: bool = False
) -> bytes:
    """The graph's file content (``fmt``: "msgpack" or "json"); credentials
    in storage_options only with ``include_secrets`` (see ``save``)."""
    output = output_of(graph)
    check_graph(output)
    return dump_bytes(to_document(output, include_secrets=include_secrets), fmt)


def save(
    graph: DataPipe[Any] | Graph | Node, path: PathLike, *, include_secrets: bool = False
) -> None:
    """Write the graph to ``path``: ``.sdag`` is msgpack, ``.json`` is JSON
    text. The file is replaced atomically, so editing in place is safe.
    Credentials in storage_options (key, secret, token, password, ...) are
    left out with a warning unless ``include_secrets``: the loaded graph gets
    them from the environment or a profile."""
    data = dumps(graph, format_for(path), include_secrets=include_secrets)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")  # same filesystem
    try:
        with open(tmp, "xb") as f:  # created with the usual permissions (umask)
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def loads_node(
    data: bytes,
    trusted_modules: Iterable[str] = (),
    *,
    resolve_functions: bool = True,
    source: str = "<bytes>",
) -> Node:
    """The output node of the graph in ``data``. Anything wrong with the data
    is a GraphFormatError starting with ``source``."""
    trusted = normalize_trusted(trusted_modules)
    try:
        return from_document(load_bytes(data), trusted, resolve_functions)
    except GraphFormatError as exc:
        raise GraphFormatError(f"{source}: {exc}") from exc.__cause__


def load_node(
    path: PathLike, trusted_modules: Iterable[str] = (), *, resolve_functions: bool = True
) -> Node:
    """The output node of the graph at ``path`` (OSError if it cannot be read)."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)  # more than the limit is enough to refuse it
    return loads_node(data, trusted_modules, resolve_functions=resolve_functions, source=str(path))


def load(path: PathLike, trusted_modules: Iterable[str] = ()) -> DataPipe[Any]:
    """The pipeline saved at ``path``. Loading never unpickles and imports
    only streamdag and ``trusted_modules`` (and their submodules); registered
    functions are found by name. Malformed or unsafe files raise
    GraphFormatError saying where and what was expected."""
    return DataPipe(load_node(path, trusted_modules))
