"""W6's pack figures: ``pack(strategy="bfd")`` alone, and what ``concat`` adds to
tokenization's CPU. Run in a fresh process (``python -m benchmarks.packing
INPUTS.json REPS``, JSON on stdout), like every repetition, so the harness
process never imports numpy or tokenizers.

- bfd: 100,000 token documents (gamma lengths, mean ~600, the W6 documents'
  shape; a few are longer than 2048 and split) packed by
  ``IterableWrapper(docs, deepcopy=False).pack(2048, strategy="bfd", buffer_size=1024)`` in
  process: seconds (wall and CPU) and padding efficiency = real tokens / row
  slots. Once with int64 arrays (pack's own work), once with lists of ints (what
  ``tokenize`` yields: converting them is part of the cost).
- concat: CPU seconds of ``tokenize`` over the first 4,000 W6 documents (2
  files) in process, one tokenizer thread, and of ``pack(2048)`` over the token
  lists it yielded; overhead = pack's / tokenize's. Timing each alone keeps the
  small difference out of the noise of two long runs.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

import streamdag as sd
from benchmarks.data import DOC_SCALE, DOC_SHAPE, SEED
from benchmarks.transforms import one_thread_tokenizers, read_texts
from benchmarks.workloads import Inputs

SEQ_LEN, BUFFER, VOCAB = 2048, 1024, 8192


def token_docs(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng([SEED, 5])
    lengths = np.maximum(1, rng.gamma(DOC_SHAPE, DOC_SCALE, n)).astype(np.int64)
    tokens = rng.integers(1, VOCAB, int(lengths.sum()))
    return np.split(tokens, np.cumsum(lengths)[:-1])


def timed(run: Callable[[], Iterable], reps: int) -> tuple[float, float, list]:
    """Median wall and CPU seconds of consuming ``run()``, and the last output."""
    walls, cpus = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = list(run())
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def bfd(docs: list, kind: str, reps: int) -> dict:
    wall, cpu, rows = timed(
        lambda: sd.IterableWrapper(docs, deepcopy=False).pack(
            SEQ_LEN, strategy="bfd", buffer_size=BUFFER
        ),
        reps,
    )
    real = sum(int(np.count_nonzero(r["segment_ids"])) for r in rows)
    return {
        "input": kind,
        "docs": len(docs),
        "rows": len(rows),
        "seconds": wall,
        "cpu_s": cpu,
        "efficiency": real / (len(rows) * SEQ_LEN),
    }


def concat_overhead(inputs: Inputs, reps: int) -> dict:
    one_thread_tokenizers()
    texts = read_texts(inputs.doc_files[:2])
    _, tokenize, docs = timed(lambda: sd.IterableWrapper(texts).tokenize(inputs.tokenizer), reps)
    _, pack, _ = timed(lambda: sd.IterableWrapper(docs, deepcopy=False).pack(SEQ_LEN), reps)
    return {
        "docs": len(texts),
        "tokenize_cpu_s": tokenize,
        "pack_cpu_s": pack,
        "overhead": pack / tokenize,
    }


def main(argv: list[str]) -> None:
    inputs = Inputs(**json.loads(Path(argv[0]).read_text()))
    reps = int(argv[1])
    n = 20_000 if inputs.quick else 100_000
    arrays = token_docs(n)
    result = {"bfd": [bfd(arrays, "int64 arrays", reps)]}
    lists = [a.tolist() for a in arrays]
    del arrays
    result["bfd"].append(bfd(lists, "lists of ints", reps))
    del lists
    result["concat"] = concat_overhead(inputs, reps)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
