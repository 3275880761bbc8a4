"""W4 streamdag: list -> shard files -> open -> gunzip -> parse jsonl -> keep en -> tokens -> batch 512.
``w4_streamdag_v4``: the same over 4x as many virtual workers as processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders.w2_streamdag import run_in_workers, setup_imports
from benchmarks.transforms import is_english, tokenize_record
from benchmarks.workloads import Inputs


def make(inputs: Inputs, virtual_per_worker: int = 1) -> Callable[[], Iterator]:
    sd = setup_imports()

    def epoch() -> Iterator:
        dp = (
            sd.FileLister(inputs.text_dir, masks="part-*.jsonl.gz")
            .sharding_filter()
            .open_files(mode="rb")
            .decompress()
            .parse_jsonl()
            .filter(is_english)
            .map(tokenize_record)
            .batch(inputs.text_batch)
        )
        return run_in_workers(dp, inputs, virtual_per_worker=virtual_per_worker)

    return epoch
