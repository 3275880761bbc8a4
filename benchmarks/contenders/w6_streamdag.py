"""W6 streamdag: list -> shard files -> open -> parse jsonl -> tokenize ->
pack(2048) (concat) -> batch 8 -> collate, 2 worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.contenders.w2_streamdag import run_in_workers, setup_imports
from benchmarks.transforms import one_thread_tokenizers
from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    sd = setup_imports()
    one_thread_tokenizers()
    import tokenizers  # noqa: F401 (imported by the workers' tokenize node: untimed here)

    def epoch() -> Iterator:
        dp = (
            sd.FileLister(inputs.docs_dir, masks="part-*.jsonl")
            .sharding_filter()
            .open_files(mode="rb")
            .parse_jsonl()
            .tokenize(inputs.tokenizer, batch_size=64)
            .pack(inputs.seq_len, field="input_ids")
            .batch(inputs.row_batch)
            .collate()
        )
        return run_in_workers(dp, inputs)

    return epoch
