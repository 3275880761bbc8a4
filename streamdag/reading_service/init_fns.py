"""torchdata's per-worker arguments: init functions in either style users
bring (torch DataLoader's ``worker_init_fn(worker_id)``, or torchdata
DataLoader2's ``init_fn(datapipe, worker_info) -> datapipe``, which may return
a changed pipe), the per-epoch ``reset_fn`` and the ``prefetch_cnt`` counts."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..core.node import Node
from ..datapipes.datapipe import DataPipe, make_node
from ..errors import ParamError
from ..runtime.node import WorkerContext
from .seed_generator import SeedGenerator, epoch_seed_generator

InitFn = Callable[[int], Any] | Callable[[DataPipe[Any], WorkerContext], DataPipe[Any]]
ResetFn = Callable[[DataPipe[Any], WorkerContext, SeedGenerator], DataPipe[Any]]


def takes_datapipe(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is torchdata-style: two required positional parameters.
    Anything else (one parameter, ``*args``, no signature) is torch-style."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is p.empty]
    return len(required) == 2


def run_init_fn(fn: InitFn | None, spec: Node, context: WorkerContext, what: str) -> Node:
    """Call ``fn`` for the copy of the graph ``spec`` that runs with ``context``;
    the graph to run: the pipe a torchdata-style ``fn`` returned, else ``spec``."""
    if fn is None:
        return spec
    if not takes_datapipe(fn):
        fn(context.worker_id)  # type: ignore[call-arg]
        return spec
    result = fn(DataPipe(spec), context)  # type: ignore[call-arg]
    if not isinstance(result, DataPipe):
        raise TypeError(
            f"{what}(datapipe, worker_info) must return a DataPipe (the one it "
            f"was given or a new one), got {result!r}"
        )
    return result.node


def run_reset_fn(
    fn: ResetFn | None,
    spec: Node,
    context: WorkerContext,
    base_seed: int,
    epoch: int,
    what: str,
) -> Node:
    """Call torchdata's ``reset_fn(datapipe, worker_info, seed_generator)``
    for epoch ``epoch``; the graph to run that epoch: the pipe it returned."""
    if fn is None:
        return spec
    seeds = epoch_seed_generator(base_seed, epoch, context)
    result = fn(DataPipe(spec), context, seeds)
    if not isinstance(result, DataPipe):
        raise TypeError(
            f"{what}(datapipe, worker_info, seed_generator) must return a DataPipe "
            f"(the one it was given or a new one), got {result!r}"
        )
    return result.node


def add_prefetch(spec: Node, count: int | None) -> Node:
    """torchdata's ``*prefetch_cnt``: a ``prefetch(count)`` after ``spec``;
    None or 0: none."""
    return make_node("prefetch", {"buffer_size": count}, [spec]) if count else spec


def check_prefetch_cnt(key: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ParamError(f"{key} must be None or an int >= 0, got {value!r}")


class WorkerPipe:
    """The pipe one worker runs each epoch: ``init_fn`` applied once, then
    ``reset_fn`` at the start of every epoch, then ``prefetch``. The reset fn
    gets the pipe ``init_fn`` returned each time (torchdata hands it the one
    it returned the epoch before): an epoch's pipe depends only on (seed,
    epoch, worker), so a resumed epoch rebuilds the same one."""

    def __init__(
        self,
        spec: Node,
        context: WorkerContext,
        init_fn: InitFn | None = None,
        reset_fn: ResetFn | None = None,
        prefetch: int | None = None,
        names: tuple[str, str] = ("worker_init_fn", "worker_reset_fn"),
    ) -> None:
        self.spec, self.context = spec, context
        self.init_fn, self.reset_fn, self.prefetch, self.names = init_fn, reset_fn, prefetch, names
        self._initial: Node | None = None
        self._reset: Node | None = None  # what reset_fn returned last
        self._current: Node | None = None

    def for_context(self, context: WorkerContext) -> WorkerPipe:
        """The same pipe for another copy of the graph (a virtual worker)."""
        if context == self.context:
            return self
        return WorkerPipe(
            self.spec, context, self.init_fn, self.reset_fn, self.prefetch, self.names
        )

    def initial(self) -> Node:
        """The pipe before any reset: ``init_fn``'s (called on first use)."""
        if self._initial is None:
            self._initial = run_init_fn(self.init_fn, self.spec, self.context, self.names[0])
            self._reset = self._initial
            self._current = add_prefetch(self._initial, self.prefetch)
        assert self._current is not None
        return self._current

    def for_epoch(self, base_seed: int, epoch: int) -> Node:
        """The pipe of epoch ``epoch``: the same object as the last epoch's
        while ``reset_fn`` returns its input, so the graph need not be rebuilt."""
        current = self.initial()
        if self.reset_fn is None:
            return current
        reset = run_reset_fn(
            self.reset_fn, self._initial, self.context, base_seed, epoch, self.names[1]
        )
        if reset is not self._reset:
            self._reset, self._current = reset, add_prefetch(reset, self.prefetch)
        return self._current
