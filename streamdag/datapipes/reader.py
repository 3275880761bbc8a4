"""Custom readers: ``@sd.reader("name")`` turns a generator function or a
class into a pipeline node that can be saved, loaded and resumed.

A reader is called with a ``ReaderContext`` (rank, worker, seed, epoch), the
input element if it takes one (``inputs=1``: e.g. a path from FileLister),
and its keyword parameters, and yields samples::

    @sd.reader("sqlite_rows", shardable=True)
    def sqlite_rows(ctx, path, table):
        ...

    dp = sqlite_rows(path="data.db", table="items").batch(32)

Third-party packages register readers under the entry-point group
``streamdag.readers`` (name = reader name, value = the decorated object or a
plain generator function or class); a graph naming an unknown op looks there
before failing. The spec is in ``core/readers.py``, the runtime in
``readers/custom.py``."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..core.readers import ENTRY_POINT_GROUP, RUNTIME, ReaderDef, reader_spec
from ..core.registry import load_entry_point, register, registered_ops
from ..errors import ParamError
from .datapipe import DataPipe, make_node, node_of


class Reader:
    """What ``@sd.reader`` returns: call it with the reader's parameters (and
    the input pipe, for a reader with ``inputs=1``) to get a DataPipe."""

    def __init__(self, definition: ReaderDef) -> None:
        self.definition = definition
        self.__doc__ = definition.target.__doc__
        self.__name__ = getattr(definition.target, "__name__", definition.name)
        self.__wrapped__ = definition.target

    @property
    def name(self) -> str:
        return self.definition.name

    def __call__(
        self,
        *inputs: DataPipe[Any],
        name: str | None = None,
        on_error: str = "raise",
        **params: Any,
    ) -> DataPipe[Any]:
        nodes = [node_of(self.name, pipe) for pipe in inputs]
        return DataPipe(make_node(self.name, {**params, "on_error": on_error}, nodes, name))

    def __repr__(self) -> str:
        return f"<streamdag reader {self.name!r} ({self.definition.target!r})>"


def reader(
    name: str, *, inputs: int = 0, shardable: bool = False, replace: bool = False
) -> Callable[[Callable[..., Any]], Reader]:
    """Register a generator function or a class as the reader op ``name``.

    ``inputs=0``: a source, called once per epoch as ``fn(ctx, **params)``;
    ``inputs=1``: called as ``fn(ctx, item, **params)`` for each input
    element. ``shardable=True`` declares that the reader yields only this
    copy's share (``ctx.shard_index`` of ``ctx.num_shards``): it then counts
    as the sharding point (nodes after it get per-worker seeds) and a
    ``sharding_filter`` after it is an error, since it would split twice."""
    if inputs not in (0, 1):
        raise ParamError(f"reader {name!r}: inputs must be 0 (a source) or 1, got {inputs!r}")

    def decorate(target: Callable[..., Any]) -> Reader:
        if isinstance(target, Reader):
            target = target.definition.target
        definition = ReaderDef.of(name, target, inputs, shardable)
        register(reader_spec(definition), replace=replace or _reloaded(name, target))
        return Reader(definition)

    return decorate


def _reloaded(name: str, target: Any) -> bool:
    """The op is this same reader from a re-imported (reloaded) module."""
    op = registered_ops.get(name)
    old = op.definition if op else None
    return isinstance(old, ReaderDef) and (old.target.__module__, old.target.__qualname__) == (
        target.__module__,
        target.__qualname__,
    )


def _is_reader(name: str) -> bool:
    op = registered_ops.get(name)
    return op is not None and op.runtime == RUNTIME


def get_reader(name: str) -> Reader:
    """The registered reader ``name`` (loading it from an entry point if needed)."""
    if not _is_reader(name):
        load_entry_point(name)
    if not _is_reader(name):
        raise ParamError(
            f"no reader named {name!r}: decorate it with @sd.reader({name!r}) or "
            f"install a package that declares it under the {ENTRY_POINT_GROUP!r} "
            "entry-point group"
        )
    return Reader(registered_ops[name].definition)


def available_readers() -> list[str]:
    """Names of the registered readers and of those installed packages declare."""
    names = {n for n in registered_ops if _is_reader(n)}
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)
