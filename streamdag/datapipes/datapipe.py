"""The DataPipe handle: what users hold. Functional methods return new
handles on new nodes; nothing runs until the pipe is iterated."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

from ..core.node import Node
from ..core.params import Col
from ..core.registry import get_op
from ..core.shard_points import check_sharded_once, is_sharding_point
from ..errors import ParamError
from .reader_methods import ReaderMethods
from .transform_methods import TransformMethods

T = TypeVar("T")
U = TypeVar("U")


def make_node(op: str, params: Mapping[str, Any], inputs: Iterable[Node] = (),
              name: str | None = None) -> Node:
    """A validated spec node: bad params fail here, naming the op; so does a
    second sharding point on a path (only sharding points walk their upstream)."""
    opdef = get_op(op)
    inputs = tuple(inputs)
    opdef.check_inputs(len(inputs))
    params = opdef.complete(params)
    node = Node(op, params, inputs, name=name)
    if is_sharding_point(node):
        check_sharded_once(node)
    return node


class DataPipe(ReaderMethods, TransformMethods, Generic[T]):
    """A handle on a node of the graph (alias ``IterDataPipe``).

    Iterating it runs the pipeline in this process with a fresh random seed;
    use ``DataLoader2`` for seeds, epochs, workers and resume."""

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def __iter__(self) -> Iterator[T]:
        from ..reading_service.dataloader2 import DataLoader2

        loader = DataLoader2(self)
        try:
            yield from loader
        finally:
            loader.shutdown()

    def __repr__(self) -> str:
        return f"DataPipe({self.node.label})"

    def _then(self, op: str, params: Mapping[str, Any], *others: DataPipe[Any],
              name: str | None = None) -> DataPipe[Any]:
        nodes = [self.node, *(node_of(op, other) for other in others)]
        return DataPipe(make_node(op, params, nodes, name))

    def apply(self, op: str, *others: DataPipe[Any], name: str | None = None,
              **params: Any) -> DataPipe[Any]:
        """A node of the registered ``op`` (a custom op: ``@sd.register_op``)
        reading this pipe (and ``others``), with ``params``: how a pipeline
        chains an op that has no method of its own."""
        return self._then(op, params, *others, name=name)

    # -- per element ----------------------------------------------------
    @overload
    def map(self, fn: Callable[[T], U], input_col: None = None, output_col: None = None, *,
            name: str | None = None) -> DataPipe[U]: ...
    @overload
    def map(self, fn: Callable[..., Any], input_col: Col = None, output_col: Col = None, *,
            name: str | None = None) -> DataPipe[Any]: ...

    def map(self, fn: Callable[..., Any], input_col: Col = None, output_col: Col = None, *,
            name: str | None = None) -> DataPipe[Any]:
        """Apply ``fn`` to each element (or to ``input_col`` of it)."""
        return self._then("map", {"fn": fn, "input_col": input_col, "output_col": output_col},
                          name=name)

    def filter(self, fn: Callable[..., bool], input_col: Col = None, *,
               name: str | None = None) -> DataPipe[T]:
        """Keep the elements for which ``fn`` is true."""
        return self._then("filter", {"fn": fn, "input_col": input_col}, name=name)

    def flatmap(self, fn: Callable[[T], Iterable[U]] | None = None, *,
                name: str | None = None) -> DataPipe[U]:
        """Replace each element by the elements of ``fn(element)``."""
        return self._then("flatmap", {"fn": fn}, name=name)

    # -- grouping -------------------------------------------------------
    def batch(self, batch_size: int, drop_last: bool = False, *,
              name: str | None = None) -> DataPipe[list[T]]:
        """Lists of ``batch_size`` elements; the last may be shorter unless ``drop_last``."""
        return self._then("batch", {"batch_size": batch_size, "drop_last": drop_last}, name=name)

    def unbatch(self, *, name: str | None = None) -> DataPipe[Any]:
        """Flatten batches back into elements."""
        return self._then("unbatch", {}, name=name)

    def collate(self, fn: Callable[[Any], Any] | None = None, *,
                name: str | None = None) -> DataPipe[Any]:
        """Batches to tensors (default: torch's default_collate)."""
        return self._then("collate", {"fn": fn}, name=name)

    # -- order and splitting --------------------------------------------
    def shuffle(self, buffer_size: int = 10000, initial: int = 100, *,
                decode_late: bool = True, name: str | None = None) -> DataPipe[T]:
        """Seeded buffer shuffle; a new order each epoch; emits from ``initial`` buffered on.
        ``decode_late``: after a decode (and maps), buffer the samples still encoded and
        decode them as they leave: the same output, several times less memory."""
        return self._then("shuffle", {"buffer_size": buffer_size, "initial": initial,
                                      "decode_late": decode_late}, name=name)

    def sharding_filter(self, *, name: str | None = None) -> DataPipe[T]:
        """Keep every n-th element for this worker (n = ranks x workers)."""
        return self._then("sharding_filter", {}, name=name)

    shard = sharding_filter

    def header(self, limit: int = 10, *, name: str | None = None) -> DataPipe[T]:
        """The first ``limit`` elements."""
        return self._then("header", {"limit": limit}, name=name)

    def cycle(self, count: int | None = None, *, name: str | None = None) -> DataPipe[T]:
        """Repeat the input ``count`` times (forever with None)."""
        return self._then("cycle", {"count": count}, name=name)

    # -- several pipes --------------------------------------------------
    def zip(self, *others: DataPipe[Any], name: str | None = None) -> DataPipe[tuple[Any, ...]]:
        """Tuples of one element of each pipe; ends with the shortest."""
        return self._then("zip", {}, *others, name=name)

    def concat(self, *others: DataPipe[Any], name: str | None = None) -> DataPipe[Any]:
        """This pipe, then each of ``others``."""
        return self._then("concat", {}, *others, name=name)

    def mux(self, *others: DataPipe[Any], name: str | None = None) -> DataPipe[Any]:
        """Round robin over this pipe and ``others``; ends when any input ends."""
        return self._then("mux", {}, *others, name=name)

    def fork(self, num_instances: int, buffer_size: int = 1000, *,
             name: str | None = None) -> tuple[DataPipe[T], ...]:
        """``num_instances`` pipes that each see every element. Outputs may
        drift at most ``buffer_size`` elements apart."""
        hub = make_node("fork", {"num_instances": num_instances, "buffer_size": buffer_size},
                        [self.node], name)
        return _branches(hub, num_instances, name)

    def demux(self, num_instances: int, classifier_fn: Callable[[Any], int | None],
              drop_none: bool = False, buffer_size: int = 1000, *,
              name: str | None = None) -> tuple[DataPipe[T], ...]:
        """Route each element to output ``classifier_fn(element)``."""
        hub = make_node("demux", {"num_instances": num_instances, "classifier_fn": classifier_fn,
                                  "drop_none": drop_none, "buffer_size": buffer_size},
                        [self.node], name)
        return _branches(hub, num_instances, name)

    # -- execution helpers ----------------------------------------------
    def main_process(self, *, name: str | None = None) -> DataPipe[T]:
        """Mark the boundary of the worker part: this pipe's input is the last
        node a worker reading service runs in each worker; this node and what
        follows run once in the main process over the merged stream (GPU work,
        for example). In process it is the identity."""
        return self._then("main_process", {}, name=name)

    def prefetch(self, buffer_size: int = 10, *, name: str | None = None) -> DataPipe[T]:
        """Produce up to ``buffer_size`` elements ahead in a background thread."""
        return self._then("prefetch", {"buffer_size": buffer_size}, name=name)

    def in_memory_cache(self, max_items: int | None = None, *,
                        name: str | None = None) -> DataPipe[T]:
        """Serve epochs after the first from memory."""
        return self._then("in_memory_cache", {"max_items": max_items}, name=name)


IterDataPipe = DataPipe


def IterableWrapper(iterable: Iterable[T], *, name: str | None = None) -> DataPipe[T]:  # noqa: N802 - torchdata's name
    """A source over a list, tuple, range or other re-iterable object."""
    return DataPipe(make_node("iterable_wrapper", {"iterable": iterable}, (), name))


def SampleMultiplexer(pipes_to_weights: Mapping[DataPipe[Any], float],  # noqa: N802
                      seed: int | None = None, *, name: str | None = None) -> DataPipe[Any]:
    """Mix pipelines at random by weight; inputs that end drop out and the
    rest continue until all have ended."""
    pipes = list(pipes_to_weights)
    weights = [pipes_to_weights[p] for p in pipes]
    nodes = [node_of("sample_multiplexer", p) for p in pipes]
    return DataPipe(make_node("sample_multiplexer", {"weights": weights, "seed": seed},
                              nodes, name))


def _branches(hub: Node, count: int, name: str | None) -> tuple[DataPipe[Any], ...]:
    return tuple(DataPipe(make_node("branch", {"index": i}, [hub],
                                    f"{name}.{i}" if name else None))
                 for i in range(count))


def node_of(op: str, pipe: Any) -> Node:
    if not isinstance(pipe, DataPipe):
        raise ParamError(f"{op}: inputs must be DataPipes, got {pipe!r}")
    return pipe.node
