"""pad_collate: batches of variable-length sequences to padded tensors with
an attention mask, where ``collate`` (torch's default_collate) would fail on
unequal lengths. One step per sample, none per token."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from ..runtime.node import RuntimeNode
from ..runtime.torch_worker import torch_worker_info
from .shared_batches import shared_empty

#: the field whose lengths give a dict batch's attention mask, where padded
MASK_FROM = "input_ids"


def _is_sequence(value: Any) -> bool:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.ndim >= 1
    return isinstance(value, (list, tuple))


def _tensors(values: Sequence[Any]) -> list[torch.Tensor]:
    """The sequences as tensors of one dtype: the first non-empty one's (an
    empty list would otherwise be float)."""
    tensors = [torch.as_tensor(v) for v in values]
    dtype = next((t.dtype for t in tensors if t.numel()), torch.int64)
    return [t.to(dtype) for t in tensors]


class PadCollateNode(RuntimeNode):
    shared = False

    def iterator(self) -> Iterator[Any]:
        # in a torch DataLoader worker, padded batches are made in shared
        # memory, where torch would copy them to hand them over
        self.shared = torch_worker_info() is not None
        return map(self.collate, self.inputs[0].iterator())

    def _length(self, longest: int) -> int:
        multiple = self.params["pad_to_multiple_of"]
        return longest if multiple is None else -(-longest // multiple) * multiple

    def _pad(self, tensors: list[torch.Tensor], length: int) -> torch.Tensor:
        first = tensors[0]
        shape = (len(tensors), length, *first.shape[1:])
        value = self.params["padding_value"]
        if self.shared:
            out = shared_empty(shape, first.dtype).fill_(value)
        else:
            out = torch.full(shape, value, dtype=first.dtype)
        for row, tensor in zip(out, tensors, strict=True):
            row[: len(tensor)] = tensor
        return out

    def _mask(self, lengths: list[int], length: int) -> torch.Tensor:
        return (torch.arange(length) < torch.tensor(lengths).unsqueeze(1)).long()

    def collate(self, batch: Sequence[Any]) -> Any:
        """``(padded, attention_mask)``, or for dicts the dict of padded
        fields (the rest through default_collate) with ``attention_mask``."""
        if not isinstance(batch, Sequence) or not batch:
            raise TypeError(f"expected a non-empty batch (a list), got {type(batch).__name__}")
        if all(isinstance(sample, Mapping) for sample in batch):
            return self._collate_dicts(batch)
        tensors = _tensors(batch)
        lengths = [len(t) for t in tensors]
        length = self._length(max(lengths))
        return self._pad(tensors, length), self._mask(lengths, length)

    def _collate_dicts(self, batch: Sequence[Mapping[Any, Any]]) -> dict[Any, Any]:
        first = batch[0]
        keys = self.params["fields"] or [k for k, v in first.items() if _is_sequence(v)]
        columns = {}
        for key in keys:
            missing = next((i for i, s in enumerate(batch) if key not in s), None)
            if missing is not None:
                raise KeyError(f"sample {missing} of the batch has no field {key!r}")
            columns[key] = _tensors([sample[key] for sample in batch])
        lengths = {key: [len(t) for t in tensors] for key, tensors in columns.items()}
        length = self._length(max((max(n) for n in lengths.values()), default=0))
        out = {
            key: self._pad(columns[key], length)
            if key in columns
            else default_collate([sample[key] for sample in batch])
            for key in first
        }
        if columns:
            ref = MASK_FROM if MASK_FROM in columns else next(iter(columns))
            out["attention_mask"] = self._mask(lengths[ref], length)
        return out
