"""pack: every token exactly once, in order, rows of seq_len with consistent
segment and position ids; overflow policies counted; bad documents named;
exact resume at random stops."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import streamdag as sd
from streamdag.errors import NodeError, ParamError
from streamdag.testing import SERVICES, assert_resumes
from tests.support.readers import run_with_stats

EOS = 999_999
#: token = document number * STRIDE + index in the document (+1: 0 is padding)
STRIDE = 10_000


def documents(lengths: list[int]) -> list[list[int]]:
    return [[d * STRIDE + i + 1 for i in range(n)] for d, n in enumerate(lengths)]


def rows_of(docs: Any, seq_len: int, **params: Any) -> list[dict[str, np.ndarray]]:
    return list(sd.IterableWrapper(docs).pack(seq_len, **params))


def check_rows(rows: list[dict[str, np.ndarray]], lengths: list[int], seq_len: int, eos: bool):
    """Each segment is a run of one document's tokens at their positions,
    an end token last; together they hold every token exactly once."""
    seen: list[list[int]] = [[] for _ in lengths]
    ends: list[int] = []
    for row in rows:
        ids, segs, pos = row["input_ids"], row["segment_ids"], row["position_ids"]
        assert ids.shape == segs.shape == pos.shape == (seq_len,)
        assert ids.dtype.kind == segs.dtype.kind == pos.dtype.kind == "i"
        used = int((segs > 0).sum())
        assert (segs[:used] > 0).all() and (segs[used:] == 0).all(), "padding only at the end"
        assert (ids[used:] == 0).all() and (pos[used:] == 0).all()
        steps = np.diff(segs[:used])
        assert segs[0] in (0, 1) and ((steps == 0) | (steps == 1)).all(), "segments 1, 2, ..."
        for seg in range(1, int(segs.max(initial=0)) + 1):
            tokens, positions = ids[segs == seg].tolist(), pos[segs == seg].tolist()
            assert positions == list(range(positions[0], positions[0] + len(positions)))
            assert EOS not in tokens[:-1], "the end token ends its document"
            docs = {t // STRIDE for t in tokens if t != EOS}
            assert len(docs) <= 1, "a segment holds one document"
            for token, position in zip(tokens, positions, strict=True):
                if token == EOS:
                    ends.append(position)
                    assert not docs or position == lengths[next(iter(docs))]
                else:
                    assert token == token // STRIDE * STRIDE + position + 1
                    seen[token // STRIDE].append(position)
    for doc, n in enumerate(lengths):
        assert sorted(seen[doc]) == list(range(n)), f"document {doc}"
    assert sorted(ends) == (sorted(lengths) if eos else [])


LENGTHS = st.lists(st.integers(0, 40), max_size=30)


@settings(max_examples=60, deadline=None)
@given(lengths=LENGTHS, seq_len=st.integers(1, 16), eos=st.booleans())
def test_concat_keeps_every_token_in_input_order(lengths, seq_len, eos):
    rows = rows_of(documents(lengths), seq_len, eos_id=EOS if eos else None)
    check_rows(rows, lengths, seq_len, eos)
    tokens = [t for r in rows for t in r["input_ids"][r["segment_ids"] > 0].tolist()]
    expected = [t for d in documents(lengths) for t in d + [EOS] * eos]
    assert tokens == expected
    assert len(rows) == -(-len(expected) // seq_len)


@settings(max_examples=60, deadline=None)
@given(
    lengths=LENGTHS,
    seq_len=st.integers(1, 16),
    eos=st.booleans(),
    buffer_size=st.integers(1, 12),
)
def test_bfd_keeps_every_token_once(lengths, seq_len, eos, buffer_size):
    params = {"strategy": "bfd", "buffer_size": buffer_size, "eos_id": EOS if eos else None}
    rows = rows_of(documents(lengths), seq_len, **params)
    check_rows(rows, lengths, seq_len, eos)
    again = rows_of(documents(lengths), seq_len, **params)
    assert [{k: v.tolist() for k, v in r.items()} for r in again] == [
        {k: v.tolist() for k, v in r.items()} for r in rows
    ], "the same documents pack the same way"


def test_bfd_fills_rows_best_fit_decreasing():
    """Lengths 5, 3, 3, 2, 2, 1 into rows of 8: 5+3, 3+2+2+1, no padding."""
    rows = rows_of(documents([3, 5, 2, 3, 1, 2]), 8, strategy="bfd")
    assert [r["segment_ids"].tolist() for r in rows] == [
        [1, 1, 1, 1, 1, 2, 2, 2],
        [1, 1, 1, 2, 2, 3, 3, 4],
    ]


def test_concat_continues_a_document_in_the_next_row():
    (first, second) = rows_of([[1, 2, 3], [4, 5, 6, 7, 8]], 4)
    assert first["input_ids"].tolist() == [1, 2, 3, 4]
    assert first["segment_ids"].tolist() == [1, 1, 1, 2]
    assert first["position_ids"].tolist() == [0, 1, 2, 0]
    assert second["input_ids"].tolist() == [5, 6, 7, 8]
    assert second["position_ids"].tolist() == [1, 2, 3, 4]


def test_accepts_arrays_tensors_and_dict_fields():
    docs = [np.arange(1, 4, dtype=np.int32), torch.tensor([4, 5]), [6]]
    plain = rows_of(docs, 3)
    fields = rows_of([{"ids": d, "text": "x"} for d in docs], 3, field="ids")
    assert [r["input_ids"].tolist() for r in plain] == [[1, 2, 3], [4, 5, 6]]
    assert [r["input_ids"].tolist() for r in fields] == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize(
    ("overflow", "kept", "counters"),
    [
        ("truncate", [[1, 2, 3, 4], [9, 0, 0, 0]], {"truncated_tokens": 3}),
        ("drop", [[9, 0, 0, 0]], {"dropped_documents": 1}),
    ],
)
def test_overflow_truncate_and_drop_are_counted(overflow, kept, counters):
    dp = sd.IterableWrapper([[1, 2, 3, 4, 5, 6, 7], [9]]).pack(4, strategy="bfd", overflow=overflow)
    out, stats = run_with_stats(dp)
    assert [r["input_ids"].tolist() for r in out] == kept
    assert {k: stats["pack"][k] for k in counters} == counters


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ([1, 2.5], "integers"),
        ([3, -1], ">= 0"),
        ("text", "list of ints"),
        ([[1, 2], [3, 4]], "1-D"),
        ([True, False], "integers"),
    ],
)
def test_bad_document_is_named_or_skipped(bad, why):
    docs = [[1, 2], bad, [3]]
    with pytest.raises(NodeError, match=rf"pack.*document 1.*{why}"):
        rows_of(docs, 2)
    out, stats = run_with_stats(sd.IterableWrapper(docs).pack(2, on_error="skip"))
    assert [r["input_ids"].tolist() for r in out] == [[1, 2], [3, 0]]
    assert stats["pack"]["skipped"] == 1


def test_bfd_names_or_skips_a_negative_id_found_in_the_packed_buffer():
    # bfd looks for negative ids once per packed buffer, not per document
    docs = [np.array([1, 2]), np.array([3, -1, 4, 5, 6]), np.array([7]), np.array([8, 9])]
    dp = sd.IterableWrapper(docs).pack(3, strategy="bfd", buffer_size=2, overflow="truncate")
    with pytest.raises(NodeError, match=r"pack.*document 1.*>= 0, got -1"):
        list(dp)
    out, stats = run_with_stats(
        sd.IterableWrapper(docs).pack(
            3, strategy="bfd", buffer_size=2, overflow="truncate", on_error="skip"
        )
    )
    assert [r["input_ids"].tolist() for r in out] == [[1, 2, 0], [8, 9, 7]]
    # the bad document was truncated before the check found it: not counted
    assert stats["pack"] == {"skipped": 1, "truncated_tokens": 0, "dropped_documents": 0}
    skip = sd.IterableWrapper(docs).pack(3, strategy="bfd", buffer_size=2, on_error="skip")
    assert_resumes(skip, stops={0, 1, 2})


def test_missing_field_is_named():
    with pytest.raises(NodeError, match=r"pack.*document 0.*no field 'ids'"):
        rows_of([{"text": [1]}], 2, field="ids")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"seq_len": 0}, "seq_len"),
        ({"seq_len": 4, "strategy": "greedy"}, "strategy"),
        ({"seq_len": 4, "overflow": "drop"}, "needs strategy='bfd'"),
        ({"seq_len": 4, "pad_id": -1}, "pad_id"),
    ],
)
def test_bad_params_are_refused_at_build(params, message):
    with pytest.raises(ParamError, match=message):
        sd.IterableWrapper([[1]]).pack(**params)


@settings(max_examples=8, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 30), min_size=1, max_size=25),
    strategy=st.sampled_from(["concat", "bfd"]),
    stops=st.lists(st.integers(0, 100), max_size=3),
)
def test_resumes_exactly_at_random_stops(lengths, strategy, stops):
    dp = sd.IterableWrapper(documents(lengths)).pack(
        7, strategy=strategy, buffer_size=4, eos_id=EOS
    )
    count = len(list(dp))
    assert_resumes(dp, stops={min(s, count) for s in stops})


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_concat_resumes_under_every_service(service):
    docs = documents([5, 0, 17, 3, 9, 1, 30, 2])
    dp = sd.IterableWrapper(docs).sharding_filter().pack(6, eos_id=EOS)
    assert_resumes(dp, reading_service=SERVICES[service])
