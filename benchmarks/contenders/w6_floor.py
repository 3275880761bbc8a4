"""W6 floor: the tokenizer's ``encode_batch`` alone over the preloaded documents,
one core; reported x the workload's worker count. No reading, no packing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.transforms import load_tokenizer, read_texts
from benchmarks.workloads import Inputs

CHUNK = 1000  # documents per encode_batch call, as HF datasets' batched map


def make(inputs: Inputs) -> Callable[[], Iterator]:
    tokenizer = load_tokenizer(inputs.tokenizer)
    texts = read_texts(inputs.doc_files)

    def epoch() -> Iterator[list[list[int]]]:
        for i in range(0, len(texts), CHUNK):
            yield [e.ids for e in tokenizer.encode_batch(texts[i : i + CHUNK])]

    return epoch
