"""pad_collate: variable-length batches to padded tensors and a mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import streamdag as sd
from streamdag.errors import NodeError, ParamError


def batches(samples, n=3, **params):
    return list(sd.IterableWrapper(samples).batch(n).pad_collate(**params))


def test_plain_sequences_give_padded_and_mask():
    ((padded, mask),) = batches([[1, 2, 3], [4], []], padding_value=-1)
    assert padded.tolist() == [[1, 2, 3], [4, -1, -1], [-1, -1, -1]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert padded.dtype == torch.int64 and mask.dtype == torch.int64


def test_pad_to_multiple_of_rounds_the_longest_up():
    ((padded, mask),) = batches([np.arange(5), np.arange(2)], n=2, pad_to_multiple_of=4)
    assert padded.shape == mask.shape == (2, 8)
    assert mask.sum(1).tolist() == [5, 2]


def test_dicts_pad_sequence_fields_and_add_attention_mask():
    samples = [
        {"input_ids": [1, 2, 3], "labels": torch.tensor([1, 2, 3]), "label": 0, "id": "a"},
        {"input_ids": [4], "labels": torch.tensor([4]), "label": 1, "id": "b"},
    ]
    (out,) = batches(samples, n=2, padding_value=0)
    assert list(out) == ["input_ids", "labels", "label", "id", "attention_mask"]
    assert out["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert out["labels"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["label"].tolist() == [0, 1] and out["id"] == ["a", "b"]


def test_fields_chooses_what_is_padded():
    samples = [{"ids": [1, 2], "other": [5, 6]}, {"ids": [3], "other": [7, 8]}]
    (out,) = batches(samples, n=2, fields=["ids"])
    assert out["ids"].tolist() == [[1, 2], [3, 0]]
    assert out["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert [t.tolist() for t in out["other"]] == [[5, 7], [6, 8]]  # default_collate


def test_packed_rows_collate_to_tensors():
    (out,) = list(sd.IterableWrapper([[1, 2, 3], [4, 5]]).pack(4).batch(2).pad_collate())
    assert out["input_ids"].tolist() == [[1, 2, 3, 4], [5, 0, 0, 0]]
    assert out["segment_ids"].tolist() == [[1, 1, 1, 2], [1, 0, 0, 0]]


def test_missing_field_is_named():
    with pytest.raises(NodeError, match=r"pad_collate.*no field 'ids'"):
        batches([{"ids": [1]}, {"x": [2]}], n=2, fields=["ids"])


@pytest.mark.parametrize(
    ("params", "message"),
    [({"pad_to_multiple_of": 0}, "pad_to_multiple_of"), ({"fields": []}, "fields")],
)
def test_bad_params_are_refused_at_build(params, message):
    with pytest.raises(ParamError, match=message):
        sd.IterableWrapper([[1]]).batch(1).pad_collate(**params)
