"""A DataPipe as a ``torch.utils.data.IterableDataset`` for torch's own
``DataLoader``.

torch treats an ``IterDataPipe`` specially: ``shuffle=`` turns its shufflers
on or off, a seed drawn from the loader's generator (broadcast from rank 0
under torch.distributed) reaches every random pipe of the graph in every
worker, each epoch. DataPipe is registered as a virtual ``IterDataPipe`` (no
inheritance: its metaclass would hook every ``__next__``), and torch's graph
traversal finds, in place of the DataPipe, one mutable ``LoaderSettings`` that
takes those calls. Iterated by a DataLoader (or in one of its workers), the
graph runs in process with the worker's context, seeded from torch's seed.

Importing streamdag imports no torch: the registration waits for
``torch.utils.data`` to be imported, if it is not yet."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from ..core.node import Node, walk
from ..core.placement import warn_if_unsharded
from ..core.registry import get_op
from ..runtime.graph import RuntimeGraph
from ..runtime.node import WorkerContext
from ..runtime.torch_worker import torch_worker_info

_TORCH_DATA = "torch.utils.data"
NO_SHUFFLE_WARNING = (
    "`shuffle=True` was set, but the datapipe does not contain a `Shuffler`. Adding one "
    "at the end. Be aware that the default buffer size might not be sufficient for your task."
)


def register_when_torch_loads(cls: type) -> None:
    """``cls`` is an ``IterDataPipe`` (hence an ``IterableDataset``) for torch,
    now if ``torch.utils.data`` is loaded, else as soon as it is."""
    if _TORCH_DATA in sys.modules:
        _register(cls)
    else:
        sys.meta_path.insert(0, _AfterImport(_TORCH_DATA, lambda: _register(cls)))


def _register(cls: type) -> None:
    from torch.utils.data import IterDataPipe

    IterDataPipe.register(cls)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``then`` once the module ``name`` has been executed."""

    def __init__(self, name: str, then: Any) -> None:
        self.name, self.then = name, then

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module, then = spec.loader.exec_module, self.then

            def exec_then(module: Any) -> None:
                exec_module(module)
                then()

            spec.loader.exec_module = exec_then  # type: ignore[method-assign]
        return spec


def traversal_reduction(pipe: Any) -> tuple[Any, ...] | None:
    """While torch's graph traversal pickles the DataPipe to find the pipes
    it sets shuffle and seeds on: a reduction showing only the pipe's
    ``LoaderSettings`` (and pickling nothing else: no functions, no data)."""
    if _TORCH_DATA not in sys.modules:
        return None
    from torch.utils.data import IterDataPipe

    if IterDataPipe.reduce_ex_hook is None:
        return None
    return (_same, (settings_of(pipe),))


def _same(value: Any) -> Any:
    return value


def settings_of(pipe: Any) -> Any:
    """The pipe's ``LoaderSettings``, created on first use."""
    settings = getattr(pipe, "_loader", None)
    if settings is None:
        from .torch_settings import LoaderSettings

        settings = LoaderSettings()
        object.__setattr__(pipe, "_loader", settings)
    return settings


def called_by_torch(module: str = "graph_settings", depth: int = 2) -> bool:
    """Whether torch's ``module`` called the caller ``depth`` frames up: its
    ``graph_settings`` calls ``set_shuffle`` or ``set_seed`` on the pipe
    itself (ignoring the result), its DataLoader wrapper iterates the pipe."""
    caller = sys._getframe(depth).f_globals.get("__name__")
    return caller == f"torch.utils.data.{module}"


def warn_if_no_shuffle(node: Node, shuffle: bool) -> None:
    """torchdata's warning for ``shuffle=True`` on a graph without a shuffle."""
    if shuffle and not any(n.op == "shuffle" for n in walk(node)):
        warnings.warn(NO_SHUFFLE_WARNING, stacklevel=5)


def loader_epoch(pipe: Any) -> Iterator[Any] | None:
    """The epoch to run when a torch DataLoader iterates ``pipe`` (in one of
    its workers, or in process with ``num_workers=0``); None otherwise."""
    settings, seed = getattr(pipe, "_loader", None), None
    if settings is not None and not called_by_torch("datapipes.datapipe", 3):
        settings = None  # what torch set is for its own loader's iterations only
    if settings is not None:
        seed, settings.seed = settings.seed, None  # one epoch per seed torch sets
    info = torch_worker_info()
    if seed is None and info is None:
        return None
    if seed is None:  # a worker of a plain IterableDataset: torch's base seed
        seed = info.seed - info.id
    node = with_shuffle(pipe.node, None if settings is None else settings.shuffle)
    worker = _context(info, settings)
    if worker.shard_index == 0:  # one warning, not one per worker
        warn_if_unsharded(node, worker.num_shards, "torch DataLoader")
    return _run(RuntimeGraph(node, worker), seed)


def _context(info: Any, settings: Any) -> WorkerContext:
    """Where this copy runs: from torch's sharding call (it knows the ranks
    even where a forked worker does not), else from torch.distributed."""
    workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
    instances = None if settings is None else settings.instances
    if instances is not None:
        world = instances[0] // workers
        return WorkerContext(instances[1] % world, world, worker, workers)
    import torch.distributed as dist

    rank, world = (
        (dist.get_rank(), dist.get_world_size())
        if dist.is_available() and dist.is_initialized()
        else (0, 1)
    )
    return WorkerContext(rank, world, worker, workers)


def _run(graph: RuntimeGraph, seed: int) -> Iterator[Any]:
    graph.start_epoch(seed, 0)
    try:
        yield from graph.iterate()
    finally:
        graph.close()


def with_shuffle(node: Node, enabled: bool | None) -> Node:
    """``node`` with every shuffle on or off (None: as they are); on, with no
    shuffle in the graph, a shuffle at the end (torchdata's rule)."""
    if enabled is None:
        return node
    new: dict[str, Node] = {}
    for old in walk(node):
        inputs = tuple(new[i.id] for i in old.inputs)
        params = {**old.params, "enabled": enabled} if old.op == "shuffle" else old.params
        changed = params is not old.params or any(
            a is not b for a, b in zip(inputs, old.inputs, strict=True)
        )
        new[old.id] = old.evolve(params=params, inputs=inputs) if changed else old
    if enabled and not any(n.op == "shuffle" for n in new.values()):
        return Node("shuffle", get_op("shuffle").complete({}), (new[node.id],))
    return new[node.id]
