"""The DataPipe handle: what users hold. Functional methods return new
handles on new nodes; nothing runs until the pipe is iterated."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, Literal, TypeVar, overload

from ..core.node import Node
from ..core.params import Col
from ..core.registry import get_op
from ..core.shard_points import check_sharded_once, is_sharding_point
from ..errors import ParamError
from . import torch_dataset
from .reader_methods import ReaderMethods
from .transform_methods import TransformMethods

T = TypeVar("T")
U = TypeVar("U")


def make_node(
    op: str, params: Mapping[str, Any], inputs: Iterable[Node] = (), name: str | None = None
) -> Node:
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
    use ``DataLoader2`` for seeds, epochs, workers and resume. It is also a
    ``torch.utils.data.IterableDataset`` (an ``IterDataPipe`` for torch) that
    torch's ``DataLoader`` shards and seeds as torchdata's pipes."""

    __slots__ = ("_loader", "node")

    def __init__(self, node: Node) -> None:
        self.node = node

    def __iter__(self) -> Iterator[T]:
        epoch = torch_dataset.loader_epoch(self)
        return epoch if epoch is not None else self._in_process()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return torch_dataset.traversal_reduction(self) or super().__reduce_ex__(protocol)

    def _in_process(self) -> Iterator[T]:
        from ..reading_service.dataloader2 import DataLoader2

        loader = DataLoader2(self)
        try:
            yield from loader
        finally:
            loader.shutdown()

    def __repr__(self) -> str:
        return f"DataPipe({self.node.label})"

    def _split_group(self, node: Node, groups: list[Any]) -> SplitGroup[Any]:
        return SplitGroup(node, groups)

    def _then(
        self, op: str, params: Mapping[str, Any], *others: DataPipe[Any], name: str | None = None
    ) -> DataPipe[Any]:
        nodes = [self.node, *(node_of(op, other) for other in others)]
        return DataPipe(make_node(op, params, nodes, name))

    def apply(
        self, op: str, *others: DataPipe[Any], name: str | None = None, **params: Any
    ) -> DataPipe[Any]:
        """A node of the registered ``op`` (a custom op: ``@sd.register_op``)
        reading this pipe (and ``others``), with ``params``: how a pipeline
        chains an op that has no method of its own."""
        return self._then(op, params, *others, name=name)

    # -- per element ----------------------------------------------------
    @overload
    def map(
        self,
        fn: Callable[[T], U],
        input_col: None = None,
        output_col: None = None,
        rng: Literal[False] = False,
        *,
        pure: bool = False,
        name: str | None = None,
    ) -> DataPipe[U]: ...
    @overload
    def map(
        self,
        fn: Callable[..., Any],
        input_col: Col = None,
        output_col: Col = None,
        rng: bool = False,
        *,
        pure: bool = False,
        name: str | None = None,
    ) -> DataPipe[Any]: ...

    def map(
        self,
        fn: Callable[..., Any],
        input_col: Col = None,
        output_col: Col = None,
        rng: bool = False,
        *,
        pure: bool = False,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Apply ``fn`` to each element (or to ``input_col`` of it).
        ``rng=True``: ``fn(element, rng)`` with a ``numpy.random.Generator``
        of the element's own, the same for a seed on every service and on
        resume (augmentations). ``pure=True``: ``fn``'s output depends on its
        element alone (no global RNG, no side effect), so a shuffle after it
        may buffer the samples before the decode (``shuffle(decode_late=...)``)."""
        params = {"fn": fn, "input_col": input_col, "output_col": output_col}
        return self._then("map", {**params, "rng": rng, "pure": pure}, name=name)

    def filter(
        self, fn: Callable[..., bool], input_col: Col = None, *, name: str | None = None
    ) -> DataPipe[T]:
        """Keep the elements for which ``fn`` is true."""
        return self._then("filter", {"fn": fn, "input_col": input_col}, name=name)

    def flatmap(
        self, fn: Callable[[T], Iterable[U]] | None = None, *, name: str | None = None
    ) -> DataPipe[U]:
        """Replace each element by the elements of ``fn(element)``."""
        return self._then("flatmap", {"fn": fn}, name=name)

    # -- grouping -------------------------------------------------------
    def batch(
        self, batch_size: int, drop_last: bool = False, *, name: str | None = None
    ) -> DataPipe[list[T]]:
        """Lists of ``batch_size`` elements; the last may be shorter unless ``drop_last``."""
        return self._then("batch", {"batch_size": batch_size, "drop_last": drop_last}, name=name)

    def unbatch(self, unbatch_level: int = 1, *, name: str | None = None) -> DataPipe[Any]:
        """Flatten ``unbatch_level`` levels of batches (-1: all) back into
        elements. Only lists are batches: a tuple is an element, and one met
        where a batch is expected is an error, as in torchdata."""
        return self._then("unbatch", {"unbatch_level": unbatch_level}, name=name)

    def collate(
        self,
        conversion: Callable[[Any], Any] | None = None,
        collate_fn: Callable[[Any], Any] | None = None,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Batches to tensors with ``collate_fn`` if given, else ``conversion``
        (torchdata's two arguments; None: torch's ``default_collate``)."""
        if isinstance(conversion, Mapping):
            raise ParamError(
                "collate: a dict of per-column conversions is torchdata's "
                "DataFrame (torcharrow) collation, which streamdag does not "
                "support; pass one function"
            )
        fn = collate_fn if collate_fn is not None else conversion
        return self._then("collate", {"fn": fn}, name=name)

    # -- order and splitting --------------------------------------------
    def shuffle(
        self,
        buffer_size: int = 10000,
        initial: int = 100,
        *,
        decode_late: bool = True,
        unbatch_level: int = 0,
        name: str | None = None,
    ) -> DataPipe[T]:
        """Seeded buffer shuffle; a new order each epoch; emits from ``initial`` buffered on.
        ``decode_late``: after a decode (and maps), buffer the samples still encoded and
        decode them as they leave: the same output, several times less memory.
        ``unbatch_level``: unbatch that many levels first (torchdata's argument)."""
        pipe: DataPipe[Any] = self.unbatch(unbatch_level) if unbatch_level else self
        return pipe._then(
            "shuffle",
            {"buffer_size": buffer_size, "initial": initial, "decode_late": decode_late},
            name=name,
        )

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
        """Round robin over this pipe and ``others``, one element of each per
        round; ends with the last complete round, when any input ends (the
        elements of a partial round are dropped, as in torchdata)."""
        return self._then("mux", {}, *others, name=name)

    def fork(
        self,
        num_instances: int,
        buffer_size: int = 1000,
        copy: Literal["shallow", "deep"] | None = None,
        *,
        name: str | None = None,
    ) -> Any:
        """A list of ``num_instances`` pipes that each see every element (this
        pipe itself for 1, as torchdata). Outputs may drift at most
        ``buffer_size`` elements apart (-1: no bound), else ``BufferError``.
        ``copy``: each output gets a shallow or deep copy of each element."""
        hub = make_node(
            "fork",
            {"num_instances": num_instances, "buffer_size": buffer_size, "copy": copy},
            [self.node],
            name,
        )
        return self if num_instances == 1 else _branches(hub, num_instances, name)

    def demux(
        self,
        num_instances: int,
        classifier_fn: Callable[[Any], int | None],
        drop_none: bool = False,
        buffer_size: int = 1000,
        *,
        name: str | None = None,
    ) -> list[DataPipe[T]]:
        """A list of ``num_instances`` pipes: each element goes to output
        ``classifier_fn(element)`` (dropped if None and ``drop_none``). The
        outputs not being read may hold ``buffer_size`` elements together
        (-1: no bound), else ``BufferError``."""
        hub = make_node(
            "demux",
            {
                "num_instances": num_instances,
                "classifier_fn": classifier_fn,
                "drop_none": drop_none,
                "buffer_size": buffer_size,
            },
            [self.node],
            name,
        )
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

    def in_memory_cache(
        self, max_items: int | None = None, *, name: str | None = None
    ) -> DataPipe[T]:
        """Serve epochs after the first from memory."""
        return self._then("in_memory_cache", {"max_items": max_items}, name=name)

    # -- torchdata drop-in: transforms ----------------------------------
    def mux_longest(self, *others: DataPipe[Any], name: str | None = None) -> DataPipe[Any]:
        """Round robin over this pipe and ``others`` that skips the inputs
        already exhausted: every element of every input, ends when all end."""
        return self._then("mux_longest", {}, *others, name=name)

    def set_shuffle(self, shuffle: bool = True) -> DataPipe[T]:
        """This shuffle with shuffling on or off (off: elements pass in order).
        A new pipe, as every method here: use the returned pipe (torchdata
        changes the shuffle in place and returns it). torch's ``DataLoader(dp,
        shuffle=...)`` calls it on any pipe: that sets the pipe's shuffles for
        torch's loader, in place, as torchdata."""
        if torch_dataset.called_by_torch():
            torch_dataset.settings_of(self).set_shuffle(shuffle)
            torch_dataset.warn_if_no_shuffle(self.node, shuffle)
            return self
        return self._shuffle_with("set_shuffle", enabled=shuffle)

    def set_seed(self, seed: int) -> DataPipe[T]:
        """This shuffle with a seed of its own: its order no longer follows the
        loader's seed; epoch ``e`` draws from (``seed``, ``e``)."""
        if torch_dataset.called_by_torch():  # torch's seed for the coming epoch
            torch_dataset.settings_of(self).set_seed(seed)
            return self
        return self._shuffle_with("set_seed", seed=seed)

    def _shuffle_with(self, method: str, **params: Any) -> DataPipe[Any]:
        node = self.node
        if node.op != "shuffle":
            raise ParamError(
                f"{method}: applies to a shuffle pipe, got {node.label}; call it "
                "right after .shuffle(...)"
            )
        return DataPipe(make_node("shuffle", {**node.params, **params}, node.inputs, node.name))


IterDataPipe = DataPipe
torch_dataset.register_when_torch_loads(DataPipe)


class SplitGroup(DataPipe[T]):
    """One group of ``random_split``: a DataPipe that also takes torchdata's
    ``override_seed``."""

    __slots__ = ("_groups",)

    def __init__(self, node: Node, groups: list[SplitGroup[Any]]) -> None:
        super().__init__(node)
        self._groups = groups  # every group of the split, this one included

    def override_seed(self, seed: Any) -> SplitGroup[T]:
        """Draw the split from ``seed`` from now on, in every group of this
        split (they stay disjoint), as torchdata's RandomSplitter: in place,
        returning this pipe. Pipes already built on a group, and loaders already
        made, keep the seed they were made with (a graph is plain data)."""
        for group in self._groups:
            node = group.node
            group.node = make_node(node.op, {**node.params, "seed": seed}, node.inputs, node.name)
        return self


def IterableWrapper(  # noqa: N802 - torchdata's name
    iterable: Iterable[T], deepcopy: bool = True, *, name: str | None = None
) -> DataPipe[T]:
    """A source over a list, tuple, range or other re-iterable object.
    ``deepcopy`` (torchdata's): each epoch reads a deep copy, so a function
    that changes its elements in place does not change the next epoch's."""
    params = {"iterable": iterable, "deepcopy": deepcopy}
    return DataPipe(make_node("iterable_wrapper", params, (), name))


def SampleMultiplexer(
    pipes_to_weights: Mapping[DataPipe[Any], float],  # noqa: N802
    seed: int | None = None,
    *,
    name: str | None = None,
) -> DataPipe[Any]:
    """Mix pipelines at random by weight; inputs that end drop out and the
    rest continue until all have ended."""
    pipes = list(pipes_to_weights)
    weights = [pipes_to_weights[p] for p in pipes]
    nodes = [node_of("sample_multiplexer", p) for p in pipes]
    return DataPipe(
        make_node("sample_multiplexer", {"weights": weights, "seed": seed}, nodes, name)
    )


def _branches(hub: Node, count: int, name: str | None) -> list[DataPipe[Any]]:
    return [
        DataPipe(make_node("branch", {"index": i}, [hub], f"{name}.{i}" if name else None))
        for i in range(count)
    ]


def node_of(op: str, pipe: Any) -> Node:
    if not isinstance(pipe, DataPipe):
        raise ParamError(f"{op}: inputs must be DataPipes, got {pipe!r}")
    return pipe.node
