"""The numpy side of ``pack``: documents to token arrays, and token arrays
to rows of ``seq_len``. Every step works on whole arrays (one Python step per
document or row at most, never one per token)."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping
from typing import Any

import numpy as np

TOKEN = np.int64
EMPTY = np.zeros(0, TOKEN)

#: one packed row: input_ids, segment_ids and position_ids, equal-length int arrays
Row = dict[str, np.ndarray]


def as_tokens(doc: Any, field: Any) -> np.ndarray:
    """A document (a list of ints, a 1-D integer array or tensor; or a dict
    holding one under ``field``) as a 1-D int64 array; TypeError/ValueError
    for anything else, a non-integer or a negative token."""
    if field is not None:
        if not isinstance(doc, Mapping):
            raise TypeError(f"expected a dict with the field {field!r}, got {type(doc).__name__}")
        if field not in doc:
            raise KeyError(f"the document has no field {field!r} (fields: {sorted(doc)!r})")
        doc = doc[field]
    if isinstance(doc, (list, tuple)):
        if not doc:
            return EMPTY
        arr = np.asarray(doc)
    elif isinstance(doc, np.ndarray):
        arr = doc
    elif hasattr(doc, "numpy") and hasattr(doc, "dim"):  # a torch tensor, without importing torch
        arr = doc.detach().cpu().numpy()
    else:
        raise TypeError(
            "a document must be a list of ints, a 1-D integer numpy array or tensor, "
            f"got {type(doc).__name__}"
        )
    if arr.ndim != 1:
        raise ValueError(f"a document must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return EMPTY
        raise TypeError(f"token ids must be integers, got dtype {arr.dtype}")
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise ValueError(f"token ids must be >= 0, got {int(arr.min())}")
    return arr


def with_eos(arr: np.ndarray, eos_id: int | None) -> np.ndarray:
    if eos_id is None:
        return arr
    out = np.empty(arr.size + 1, TOKEN)
    out[:-1] = arr
    out[-1] = eos_id
    return out


class Stream:
    """``concat``'s pending tokens, with each token's document number and
    position in its document: rows are cut from the front; ``cut`` tokens of
    the current arrays are already emitted."""

    def __init__(self) -> None:
        self.tokens = self.docs = self.pos = EMPTY
        self.cut = 0

    def extend(self, docs: list[tuple[int, np.ndarray]], offset: int = 0) -> None:
        """Append documents ``(number, tokens)``; the first starts at
        position ``offset`` (the rest of a document cut on a resume)."""
        lens = np.fromiter((len(a) for _, a in docs), np.int64, len(docs))
        tokens = np.concatenate([a for _, a in docs]).astype(TOKEN, copy=False)
        starts = np.cumsum(lens) - lens
        pos = np.arange(tokens.size, dtype=TOKEN) - np.repeat(starts, lens)
        if docs and offset:
            pos[: lens[0]] += offset
        numbers = np.repeat(np.fromiter((n for n, _ in docs), np.int64, len(docs)), lens)
        rest = slice(self.cut, None)
        self.tokens = np.concatenate([self.tokens[rest], tokens])
        self.docs = np.concatenate([self.docs[rest], numbers])
        self.pos = np.concatenate([self.pos[rest], pos])
        self.cut = 0

    def pending(self) -> int:
        return self.tokens.size - self.cut

    def where(self, default: int) -> tuple[int, int]:
        """(document number, position in it) of the next token to emit."""
        if self.cut < self.tokens.size:
            return int(self.docs[self.cut]), int(self.pos[self.cut])
        return default, 0

    def rows(
        self, seq_len: int, pad_id: int, last: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The full rows of pending tokens, and with ``last`` the rest as a
        padded row: ids, segments, positions (``cut`` is not moved)."""
        todo = self.pending()
        n = -(-todo // seq_len) if last else todo // seq_len
        size = n * seq_len
        todo = min(todo, size)
        ids, docs, pos = (np.full(size, fill, TOKEN) for fill in (pad_id, -1, 0))
        end = self.cut + todo
        ids[:todo] = self.tokens[self.cut : end]
        docs[:todo] = self.docs[self.cut : end]
        pos[:todo] = self.pos[self.cut : end]
        docs = docs.reshape(n, seq_len)
        return ids.reshape(n, seq_len), segments(docs), pos.reshape(n, seq_len)


def segments(docs: np.ndarray) -> np.ndarray:
    """Segment ids 1, 2, ... per document within each row of document
    numbers; 0 where the number is -1 (padding)."""
    seg = np.ones(docs.shape, TOKEN)
    np.cumsum(docs[:, 1:] != docs[:, :-1], axis=1, out=seg[:, 1:])
    seg[:, 1:] += 1
    seg[docs < 0] = 0
    return seg


def best_fit_decreasing(
    pieces: list[tuple[np.ndarray, int]], seq_len: int, pad_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pack ``(tokens, first position)`` pieces, none longer than
    ``seq_len``, into rows: longest first, each into the fullest row it
    fits. Returns ids, segments and positions, one row per bin."""
    lens = np.fromiter((len(a) for a, _ in pieces), np.int64, len(pieces))
    order = np.argsort(-lens, kind="stable")
    free: list[tuple[int, int]] = []  # (room left, row), sorted
    rows: list[list[int]] = []  # the pieces of each row, in placement order
    rooms: list[int] = []
    for i, length in zip(order.tolist(), lens[order].tolist(), strict=True):
        if not length:
            break
        j = bisect_left(free, (length, -1))
        if j < len(free):
            room, b = free.pop(j)
        else:
            room, b = seq_len, len(rows)
            rows.append([])
            rooms.append(seq_len)
        rows[b].append(i)
        rooms[b] = room - length
        if room > length:
            insort(free, (room - length, b))
    return _lay_out(pieces, rows, rooms, seq_len, pad_id)


def _lay_out(
    pieces: list[tuple[np.ndarray, int]],
    rows: list[list[int]],
    rooms: list[int],
    seq_len: int,
    pad_id: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows as arrays: one concatenation of the pieces and padding in
    row order (a copy of each token, no scatter)."""
    counting = np.arange(max((p for _, p in pieces), default=0) + seq_len, dtype=TOKEN)
    pads, zeros = np.full(seq_len, pad_id, TOKEN), np.zeros(seq_len, TOKEN)
    ids: list[np.ndarray] = [EMPTY]
    pos: list[np.ndarray] = [EMPTY]
    seg_ids: list[int] = []
    seg_lens: list[int] = []
    for members, room in zip(rows, rooms, strict=True):
        for seg, i in enumerate(members, 1):
            tokens, first = pieces[i]
            ids.append(tokens)
            pos.append(counting[first : first + len(tokens)])
            seg_ids.append(seg)
            seg_lens.append(len(tokens))
        if room:
            ids.append(pads[:room])
            pos.append(zeros[:room])
            seg_ids.append(0)
            seg_lens.append(room)
    shape = (len(rows), seq_len)
    segs = np.repeat(np.array(seg_ids, TOKEN), seg_lens)
    return (
        np.concatenate(ids).astype(TOKEN, copy=False).reshape(shape),
        segs.reshape(shape),
        np.concatenate(pos).reshape(shape),
    )
