"""``len(dp)``: a pipe's length where torchdata 0.9 knows it, computed from
the graph without running it; a TypeError where it does not (after
``filter``, ``flatmap``, a reader, ...), as torchdata's ``__len__`` raises."""

from __future__ import annotations

from collections.abc import Callable, Sized
from math import ceil

from ..core.node import Node
from ..transforms.random_split import normalized
from ..transforms.sampler import make_sampler

Rule = Callable[[Node, list[Callable[[], int]]], int]


def length_of(node: Node) -> int:
    """The number of elements ``node`` yields per epoch; TypeError if unknown."""
    rule = _RULES.get(node.op)
    if rule is None:
        raise TypeError(
            f"{node.label}: {node.op} has no length known in advance "
            "(use .set_length(n) where you know it)"
        )
    return rule(node, [lambda n=n: length_of(n) for n in node.inputs])


def _same(node: Node, ins: list[Callable[[], int]]) -> int:
    return ins[0]()


def _wrapped(node: Node, ins: list[Callable[[], int]]) -> int:
    iterable = node.params["iterable"]
    if not isinstance(iterable, Sized):
        raise TypeError(f"{node.label}: its iterable has no len()")
    return len(iterable)


def _batch(node: Node, ins: list[Callable[[], int]]) -> int:
    size, n = node.params["batch_size"], ins[0]()
    return n // size if node.params["drop_last"] else ceil(n / size)


def _header(node: Node, ins: list[Callable[[], int]]) -> int:
    try:
        return min(ins[0](), node.params["limit"])
    except TypeError:
        return node.params["limit"]  # torchdata: the limit, "the actual value may be smaller"


def _cycle(node: Node, ins: list[Callable[[], int]]) -> int:
    if node.params["count"] is None:
        raise TypeError(f"{node.label}: cycles forever and has no length")
    return node.params["count"] * ins[0]()


def _branch(node: Node, ins: list[Callable[[], int]]) -> int:
    hub = node.inputs[0]
    if hub.op in ("fork", "unzip"):
        return length_of(hub.inputs[0])
    if hub.op == "round_robin_demux":
        n, count, index = (
            length_of(hub.inputs[0]),
            hub.params["num_instances"],
            node.params["index"],
        )
        return n // count + (1 if index < n % count else 0)
    raise TypeError(f"{node.label}: the outputs of {hub.op} have no length known in advance")


def _random_split(node: Node, ins: list[Callable[[], int]]) -> int:
    keys, weights = zip(*node.params["weights"], strict=True)
    total = node.params["total_length"]
    sizes = normalized(list(weights), total)
    if not all(w.is_integer() for w in sizes) or sum(sizes) != total:
        raise TypeError(
            "Lengths of the split cannot be known in advance. Please supply integer "
            "`weights` that sum up to `total_length`. Alternatively, use "
            "`datapipe.set_length(LENGTH)` to manually set the desired length."
        )
    return int(sizes[keys.index(node.params["target"])])


def _sampler_length(node: Node) -> int:
    sampler = make_sampler(node.params)
    if not isinstance(sampler, Sized):
        raise TypeError(f"{node.label}: its sampler has no len()")
    return len(sampler)


_RULES: dict[str, Rule] = {
    **dict.fromkeys(
        (
            "map",
            "collate",
            "shuffle",
            "sharding_filter",
            "prefetch",
            "pin_memory",
            "to_device",
            "in_memory_cache",
            "main_process",
            "enumerate",
            "add_index",
            "in_batch_shuffle",
            "slice",
            "drop",
            "flatten",
            "rows2columnar",
            "zip_with_iter",
            "zip_with_map",
            "fullsync",
        ),
        _same,
    ),
    "iterable_wrapper": _wrapped,
    "threadpool_map": _same,
    "async_map_batches": _same,
    "sampler": lambda node, ins: _sampler_length(node),
    "batch": _batch,
    "header": _header,
    "cycle": _cycle,
    "branch": _branch,
    "random_split": _random_split,
    "repeat": lambda node, ins: node.params["times"] * ins[0](),
    "set_length": lambda node, ins: node.params["length"],
    "zip": lambda node, ins: min(f() for f in ins),
    "concat": lambda node, ins: sum(f() for f in ins),
    "mux": lambda node, ins: min(f() for f in ins) * len(ins),
    "sample_multiplexer": lambda node, ins: sum(f() for f in ins),
    "zip_longest": lambda node, ins: max(f() for f in ins),
}
