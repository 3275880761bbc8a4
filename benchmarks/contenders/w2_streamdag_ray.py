"""W2 streamdag on Ray: the same graph as ``w2_streamdag`` run by
``RayReadingService(2)`` on a local Ray instance (2 CPUs) started in the
untimed setup, as a cluster is up before training starts, its worker
processes preloading what the actors import (``preload_modules``, as
docs/ray.md advises). Setup ends once Ray's processes are idle, the
preloading done, as on a cluster that was up before the job; the timed
epoch holds the 2 actors' start (each loads the graph from its document).
Without that wait the epoch also held the workers' imports of torch and
Pillow (first batch ~1.5 s on 2 cores, against ~0.4 s)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders.w2_streamdag import image_batches, setup_imports
from benchmarks.cpu import wait_until_quiet
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    sd = setup_imports()
    import ray

    if not ray.is_initialized():
        preload = sd.RayReadingService.preload_modules("benchmarks.transforms")
        ray.init(
            num_cpus=inputs.num_workers,
            include_dashboard=False,
            log_to_driver=False,
            _system_config={"preload_python_modules": preload},
        )
        wait_until_quiet()

    def epoch() -> Iterator:
        shards = sd.FileLister(inputs.shard_dir, masks="*.tar").shuffle().sharding_filter()
        dp = image_batches(shards.open_files(mode="rb"), inputs)
        service = sd.RayReadingService(inputs.num_workers, trusted_modules=["benchmarks"])
        loader = sd.DataLoader2(dp, reading_service=service, seed=inputs.seed)
        try:
            yield from loader
        finally:
            loader.shutdown()

    return epoch
