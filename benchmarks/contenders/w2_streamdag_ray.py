"""W2 streamdag on Ray: the same graph as ``w2_streamdag`` run by
``RayReadingService(2)`` on a local Ray instance (2 CPUs) started in the
untimed setup, as a cluster is up before training starts. The timed epoch
includes starting the 2 actors (each loads the graph from its document and
imports the modules its functions live in: ``benchmarks``, trusted)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders.w2_streamdag import image_batches, setup_imports
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    sd = setup_imports()
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=inputs.num_workers, include_dashboard=False, log_to_driver=False)

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
