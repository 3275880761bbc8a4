"""Init functions in either style users bring: torch DataLoader's
``worker_init_fn(worker_id)``, or torchdata DataLoader2's
``init_fn(datapipe, worker_info) -> datapipe``, which may return a changed pipe."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..core.node import Node
from ..datapipes.datapipe import DataPipe
from ..errors import ParamError
from ..runtime.node import WorkerContext

InitFn = Callable[[int], Any] | Callable[[DataPipe[Any], WorkerContext], DataPipe[Any]]


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


def refuse_reset_fn(key: str, fn: Callable[..., Any] | None) -> None:
    """torchdata's per-epoch ``reset_fn(datapipe, worker_info, seed_generator)``
    exists to reseed a pipe each epoch; streamdag's nodes reseed themselves
    from (seed, epoch, worker), and a pipe changed per epoch could not resume."""
    if fn is not None:
        raise ParamError(
            f"{key} is not supported: streamdag reseeds every random node each "
            "epoch from (seed, epoch, worker) itself; per-epoch setup of your "
            "own goes in the training loop (see 'DataLoader2 and reading "
            "services' in docs/migrating-from-torchdata.md)"
        )
