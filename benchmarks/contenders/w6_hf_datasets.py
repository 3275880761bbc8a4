"""W6 anchor: Hugging Face ``datasets`` streaming, batched ``map(tokenize)`` and the
classic concat-and-chunk ``group_texts``, in ``DataLoader(batch_size=8, num_workers=N)``.

The tokenizer is the same ``tokenizers.Tokenizer`` (through
``PreTrainedTokenizerFast`` when ``transformers`` is installed). ``group_texts``
keeps the rest of each map batch as a last row padded with 0 (the classic one
drops it), so every token is counted, as ``pack`` counts them. Rows are
collated as transformers' ``default_data_collator`` does (one ``torch.tensor``
per field of a batch): ``with_format("torch")`` on a streaming dataset makes a
tensor of every token id first, ~20x slower (datasets 5.2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain

import torch

from benchmarks.transforms import load_tokenizer
from benchmarks.workloads import Inputs

SEQ_LEN = 2048


class Encode:
    """``map(batched=True)`` function: texts -> input_ids."""

    def __init__(self, path: str) -> None:
        try:
            from transformers import PreTrainedTokenizerFast
        except ImportError:
            self.fast, self.tokenizer = None, load_tokenizer(path)
        else:
            load_tokenizer(path)  # one thread, as every contender
            self.fast = PreTrainedTokenizerFast(tokenizer_file=path)

    def __call__(self, batch: dict) -> dict:
        if self.fast is not None:
            return {"input_ids": self.fast(batch["text"])["input_ids"]}
        return {"input_ids": [e.ids for e in self.tokenizer.encode_batch(batch["text"])]}


def group_texts(batch: dict) -> dict:
    tokens = list(chain.from_iterable(batch["input_ids"]))
    rows = [tokens[i : i + SEQ_LEN] for i in range(0, len(tokens), SEQ_LEN)]
    masks = [[1] * len(r) for r in rows]
    if rows and len(rows[-1]) < SEQ_LEN:
        pad = SEQ_LEN - len(rows[-1])
        rows[-1] = rows[-1] + [0] * pad
        masks[-1] = masks[-1] + [0] * pad
    return {"input_ids": rows, "attention_mask": masks}


def collate_rows(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {key: torch.tensor([r[key] for r in rows]) for key in rows[0]}


def make(inputs: Inputs) -> Callable[[], Iterable]:
    from datasets import load_dataset
    from torch.utils.data import DataLoader

    encode = Encode(inputs.tokenizer)

    def epoch() -> Iterable:
        ds = load_dataset("json", data_files=inputs.doc_files, split="train", streaming=True)
        ds = ds.map(encode, batched=True, remove_columns=["id", "text"])
        ds = ds.map(group_texts, batched=True)
        return DataLoader(
            ds,
            batch_size=inputs.row_batch,
            num_workers=inputs.num_workers,
            collate_fn=collate_rows,
        )

    return epoch
