"""Custom readers: ``@sd.reader("name")`` turns a generator function or a
class into a pipeline node that can be saved, loaded and resumed.

A reader is called with a ``ReaderContext`` (rank, worker, seed, epoch), the
input element if it takes one (``inputs=1``: e.g. a path from FileLister),
and its keyword parameters, and yields samples::

    @sd.reader("sqlite_rows", shardable=True)
    def sqlite_rows(ctx, path, table):
        ...

    dp = sqlite_rows(path="data.db", table="items").batch(32)

Resume: a class with ``state_dict()``/``load_state_dict(state)`` (plain
data) resumes exactly from its own state; anything else is re-run and the
items already delivered are skipped, which needs a deterministic reader.
Third-party packages register readers under the entry-point group
``streamdag.readers`` (name = reader name, value = the decorated object or
its module); a graph naming an unknown op looks there before failing."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.registry import register_op, registered_ops
from ..errors import ParamError
from ..runtime.counting import count_of, counted
from .expand import ExpandingNode
from .policy import check_on_error

if TYPE_CHECKING:
    from ..datapipes.datapipe import DataPipe

ENTRY_POINT_GROUP = "streamdag.readers"
RESERVED = frozenset({"on_error", "name"})
R = TypeVar("R", bound=Callable[..., Any])


@dataclass(frozen=True)
class ReaderContext:
    """Where and when a reader runs. ``seed`` is the node's seed for this
    epoch: identical on every rank and worker for a source reader (so all
    agree, e.g. on a shuffled shard order, before each takes its share)."""

    rank: int
    world_size: int
    worker_id: int
    num_workers: int
    seed: int
    epoch: int

    @property
    def shard_index(self) -> int:
        """This copy's index among all of them: rank * num_workers + worker_id."""
        return self.rank * self.num_workers + self.worker_id

    @property
    def num_shards(self) -> int:
        """How many copies of the pipeline run: world_size * num_workers."""
        return self.world_size * self.num_workers


@dataclass(frozen=True)
class ReaderDef:
    name: str
    target: Callable[..., Any]
    inputs: int
    shardable: bool
    signature: inspect.Signature

    @property
    def has_state(self) -> bool:
        return isinstance(self.target, type) and all(
            callable(getattr(self.target, m, None)) for m in ("state_dict", "load_state_dict"))


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

    def __call__(self, *inputs: DataPipe[Any], name: str | None = None,
                 on_error: str = "raise", **params: Any) -> DataPipe[Any]:
        from ..datapipes.datapipe import DataPipe, make_node

        nodes = []
        for pipe in inputs:
            if not isinstance(pipe, DataPipe):
                raise ParamError(f"{self.name}: inputs must be DataPipes, got {pipe!r}")
            nodes.append(pipe.node)
        return DataPipe(make_node(self.name, {**params, "on_error": on_error}, nodes, name))

    def __repr__(self) -> str:
        return f"<streamdag reader {self.name!r} ({self.definition.target!r})>"


def reader(name: str, *, inputs: int = 0, shardable: bool = False,
           replace: bool = False) -> Callable[[Callable[..., Any]], Reader]:
    """Register a generator function or a class as the reader op ``name``.

    ``inputs=0``: a source, called once per epoch as ``fn(ctx, **params)``;
    ``inputs=1``: called as ``fn(ctx, item, **params)`` for each input
    element. ``shardable=True`` declares that the reader yields only this
    copy's share (``ctx.shard_index`` of ``ctx.num_shards``): it then counts
    as the sharding point (nodes after it get per-worker seeds) and a
    ``sharding_filter`` after it is an error, since it would split twice."""
    if inputs not in (0, 1):
        raise ParamError(f"reader {name!r}: inputs must be 0 (a source) or 1, got {inputs!r}")

    def register(target: Callable[..., Any]) -> Reader:
        if isinstance(target, Reader):
            target = target.definition.target
        signature = inspect.signature(target)
        clash = RESERVED.intersection(signature.parameters)
        if clash:
            raise ParamError(f"reader {name!r}: parameter names {sorted(clash)} are reserved "
                             "for the node (rename them)")
        definition = ReaderDef(name, target, inputs, shardable, signature)
        node_cls = type(f"Reader_{name}", (CustomReaderNode,), {
            "definition": definition,
            "splits_data": shardable,
            "validate": staticmethod(partial(_validate, definition)),
            "__doc__": target.__doc__,
        })
        register_op(name, inputs=inputs, replace=replace or _reloaded(name, target))(node_cls)
        return Reader(definition)

    return register


def _reloaded(name: str, target: Any) -> bool:
    """The op is this same reader from a re-imported (reloaded) module."""
    op = registered_ops.get(name)
    old = getattr(op.runtime, "definition", None) if op else None
    return old is not None and (old.target.__module__, old.target.__qualname__) == (
        target.__module__, target.__qualname__)


def _validate(definition: ReaderDef, params: Mapping[str, Any]) -> None:
    check_on_error(definition.name, params)
    args = {k: v for k, v in params.items() if k != "on_error"}
    fixed = (None, None) if definition.inputs else (None,)
    try:
        definition.signature.bind(*fixed, **args)
    except TypeError as exc:
        expected = ", ".join(list(definition.signature.parameters)[len(fixed):])
        raise ParamError(f"{definition.name}: {exc} (the reader takes: {expected})") from None


class CustomReaderNode(ExpandingNode):
    """The runtime of every ``@sd.reader`` op (one subclass per reader)."""

    definition: ReaderDef

    def context(self) -> ReaderContext:
        w = self.graph.worker
        return ReaderContext(w.rank, w.world_size, w.worker_id, w.num_workers, self.seed(),
                             self.graph.epoch)

    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        d = self.definition
        args = (self.context(), item) if d.inputs else (self.context(),)
        params = {k: v for k, v in self.params.items() if k != "on_error"}
        if d.has_state:
            obj = d.target(*args, **params)
            if at is not None:
                obj.load_state_dict(at)
            self._pos = obj.state_dict
            return iter(obj)
        items, counter = counted(d.target(*args, **params), at or 0)
        self._pos = partial(count_of, counter)
        return items

    def where(self, item: Any) -> str:
        return f"reader {self.definition.name!r}" + (f" item {item!r:.120}" if self.inputs else "")


def load_entry_point(name: str) -> bool:
    """Register the reader ``name`` from the ``streamdag.readers`` entry
    points, if an installed package declares it; True if it is now known."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name != name:
            continue
        obj = ep.load()
        if name not in registered_ops and callable(obj) and not isinstance(obj, Reader):
            reader(name)(obj)
        return name in registered_ops
    return False


def get_reader(name: str) -> Reader:
    """The registered reader ``name`` (loading it from an entry point if needed)."""
    op = registered_ops.get(name)
    if op is None and load_entry_point(name):
        op = registered_ops.get(name)
    if op is None or not issubclass(op.runtime, CustomReaderNode):
        raise ParamError(f"no reader named {name!r}: decorate it with @sd.reader({name!r}) or "
                         f"install a package that declares it under the {ENTRY_POINT_GROUP!r} "
                         "entry-point group")
    return Reader(op.runtime.definition)


def available_readers() -> list[str]:
    """Names of the registered readers and of those installed packages declare."""
    from importlib.metadata import entry_points

    names = {n for n, op in registered_ops.items() if issubclass(op.runtime, CustomReaderNode)}
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)
