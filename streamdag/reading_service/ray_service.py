"""RayReadingService: the worker part of the graph in Ray actors, possibly
on other machines; the main part (``main_process()`` and what follows it)
in the trainer, over their merged stream."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from importlib.util import find_spec
from typing import Any

from ..core.node import Node
from ..errors import ParamError
from ..graph_io.files import dumps, loads_node
from ..graph_io.trust import normalize_trusted
from . import ray_actor
from .init_fns import WorkerPipe
from .ray_pool import RayPool
from .worker_service import WorkerPool, WorkerService, check_int

INSTALL = "pip install 'streamdag[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"RayReadingService needs Ray: {INSTALL}") from exc
    return ray


class RayReadingService(WorkerService):
    """``num_workers`` Ray actors per rank each run their copy of the worker
    part, as ``MultiProcessingReadingService``'s processes do: the same
    ``WorkerContext`` (so ``sharding_filter`` splits over ``rank *
    num_workers + worker``), seeds, order and resume state (a state saved
    under one loads under the other, on another worker count too where the
    graph is sharded).

    - ``resources``: what each actor needs, in Ray's terms (``{"CPU": 1}``;
      a custom resource such as ``{"CPU": 1, "reader": 1}`` keeps actors on
      the nodes that offer it).
    - ``prefetch_factor``: chunks each actor may make ahead of the trainer (a
      chunk is up to 200 ms of work); object-store use is at most
      ``prefetch_factor + 1`` chunks per actor.
    - ``address``: the cluster to join if Ray is not initialized yet (None:
      ``RAY_ADDRESS``, a running local instance, else a new local one with
      lean defaults: ``local_ray_options``).
    - ``runtime_env``: each actor's Ray runtime environment: how user code
      (the modules the graph's functions live in) reaches the actors.
    - ``max_restarts``: how often an actor that dies is replaced (resuming
      from the last chunk the trainer received, so the stream is unchanged)
      before the epoch fails.
    - ``scheduling``: a Ray scheduling strategy for the actors (e.g. a
      ``NodeAffinitySchedulingStrategy`` or placement group).
    - ``trusted_modules``: modules (besides streamdag and registered
      functions) the actors may import to load the graph: the actors get the
      graph as its saved document, never as a pickle.
    - ``virtual_workers``: shards of an epoch, as for
      ``MultiProcessingReadingService`` (elastic resume).

    The actors start when the loader is created, so they boot while the
    trainer gets ready, and serve every epoch until ``shutdown()``: starting
    one costs seconds."""

    def __init__(
        self,
        num_workers: int,
        *,
        resources: dict[str, float] | None = None,
        prefetch_factor: int = 2,
        address: str | None = None,
        runtime_env: dict[str, Any] | None = None,
        max_restarts: int = 3,
        scheduling: Any = None,
        trusted_modules: Iterable[str] = (),
        in_order: bool = True,
        timeout: float | None = None,
        virtual_workers: int | None = None,
    ) -> None:
        import_ray()
        check_int("num_workers", num_workers, 1)
        check_int("max_restarts", max_restarts, 0)
        super().__init__(num_workers, prefetch_factor, in_order, timeout, virtual_workers)
        resources = dict(resources if resources is not None else {"CPU": 1})
        if not all(isinstance(v, (int, float)) and v >= 0 for v in resources.values()):
            raise ParamError(f"resources must map names to amounts >= 0, got {resources!r}")
        self.resources = resources
        self.address = address
        self.runtime_env = runtime_env
        self.max_restarts = max_restarts
        self.scheduling = scheduling
        self.trusted_modules = normalize_trusted(trusted_modules)

    @property
    def actors(self) -> list[Any]:
        """The running actors' handles, by worker (empty when none run)."""
        pool = self._pool
        return list(pool.actors) if isinstance(pool, RayPool) else []

    def initialize(self, output: Node) -> None:
        super().initialize(output)
        if self.num_workers:
            self._ensure_pool()  # actor start (seconds) overlaps the trainer's setup

    @staticmethod
    def preload_modules(*extra: str) -> list[str]:
        """The modules a Ray worker process should import as it starts, for
        Ray's ``preload_python_modules`` setting: numpy, torch (where
        installed), the actor's own module and ``extra`` (the modules your
        graph's functions live in). A cluster started with them has workers
        waiting with those imports done, so an actor's first chunk does not
        wait seconds for them (docs/ray.md, "Start-up")."""
        base = ["numpy", "torch"] if find_spec("torch") is not None else ["numpy"]
        return [*base, ray_actor.__name__, *extra]

    def local_ray_options(self) -> dict[str, Any]:
        """``ray.init`` options of the local instance this service starts when
        no Ray runs: only the CPUs (and custom resources) its actors need, so
        Ray starts no idle worker processes for the rest; no dashboard and no
        actor logs streamed to the trainer (errors still come back as
        ``WorkerError`` with the actor's traceback); its workers preload
        ``preload_modules()``."""
        per_actor = {k: v for k, v in self.resources.items() if k not in ("CPU", "GPU", "memory")}
        return {
            "num_cpus": max(1, math.ceil(self.resources.get("CPU", 0) * self.num_workers)),
            "resources": {k: v * self.num_workers for k, v in per_actor.items()} or None,
            "include_dashboard": False,
            "log_to_driver": False,
            "_system_config": {"preload_python_modules": self.preload_modules()},
        }

    def _init_ray(self, ray: Any) -> None:
        """Join ``address`` (or ``RAY_ADDRESS``, or a running local instance)
        as it is; else start a local instance with ``local_ray_options``."""
        if self.address is not None or os.environ.get("RAY_ADDRESS"):
            ray.init(address=self.address)
            return
        try:
            ray.init(**self.local_ray_options())
        except ValueError as exc:  # Ray found a local instance (`ray start`): join it
            if "existing cluster" not in str(exc):
                raise
            ray.init()

    def _start_pool(self, pipes: list[WorkerPipe]) -> WorkerPool:
        ray = import_ray()
        spec = pipes[0].spec
        document = dumps(spec)  # names a node whose function cannot be saved
        # what the actors will import, checked here first: a clear error now
        # rather than one per actor
        loads_node(document, self.trusted_modules, source="the worker part of the graph")
        if not ray.is_initialized():
            self._init_ray(ray)
        return RayPool(
            document,
            self.trusted_modules,
            [pipe.context for pipe in pipes],
            self._actor_options(),
            self.max_restarts,
            self.prefetch_factor,
            self.virtual_workers,
        )

    def _actor_options(self) -> dict[str, Any]:
        resources = dict(self.resources)
        options: dict[str, Any] = {
            "num_cpus": resources.pop("CPU", 0),
            "num_gpus": resources.pop("GPU", 0),
        }
        if "memory" in resources:
            options["memory"] = resources.pop("memory")
        if resources:
            options["resources"] = resources
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        if self.scheduling is not None:
            options["scheduling_strategy"] = self.scheduling
        return options
