"""The numpy side of ``pack``: documents to token arrays, and token arrays
to rows of ``seq_len``. Every step works on whole arrays (one Python step per
document or row at most, never one per token)."""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections.abc import Mapping
from typing import Any

import numpy as np

TOKEN = np.int64
EMPTY = np.zeros(0, TOKEN)
_smallest = np.minimum.reduce

#: one packed row: input_ids, segment_ids and position_ids, equal-length int arrays
Row = dict[str, np.ndarray]


def as_tokens(doc: Any, field: Any, signs: bool = True) -> np.ndarray:
    """A document (a list of ints, a 1-D integer array or tensor; or a dict
    holding one under ``field``) as a 1-D int64 array; TypeError/ValueError
    for anything else, a non-integer or (``signs``) a negative token."""
    if field is not None:
        if not isinstance(doc, Mapping):
            raise TypeError(f"expected a dict with the field {field!r}, got {type(doc).__name__}")
        if field not in doc:
            raise KeyError(f"the document has no field {field!r} (fields: {sorted(doc)!r})")
        doc = doc[field]
    if isinstance(doc, np.ndarray):
        arr = doc
    elif isinstance(doc, (list, tuple)):
        if not doc:
            return EMPTY
        try:  # what tokenizers give; unboxing into C uint64 rejects non-ints and ids < 0
            if type(doc[0]) is not bool:  # numpy makes a list of bools a bool array: refused
                return np.frombuffer(array("Q", doc), TOKEN)
        except (TypeError, OverflowError):  # numpy's dtype names the problem below
            pass
        arr = np.asarray(doc)
    elif hasattr(doc, "numpy") and hasattr(doc, "dim"):  # a torch tensor, without importing torch
        arr = doc.detach().cpu().numpy()
    else:
        raise TypeError(
            "a document must be a list of ints, a 1-D integer numpy array or tensor, "
            f"got {type(doc).__name__}"
        )
    if arr.ndim != 1:
        raise ValueError(f"a document must be 1-D, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "i":
        if signs:
            check_signs(arr)
    elif kind != "u":
        if arr.size == 0:
            return EMPTY
        raise TypeError(f"token ids must be integers, got dtype {arr.dtype}")
    return arr


def check_signs(arr: np.ndarray) -> None:
    """ValueError if the token array holds a negative id."""
    if arr.size and _smallest(arr) < 0:
        raise ValueError(f"token ids must be >= 0, got {int(_smallest(arr))}")


def has_negative(ids: np.ndarray) -> bool:
    return bool(ids.size) and _smallest(ids, axis=None) < 0


def with_eos(arr: np.ndarray, eos_id: int | None) -> np.ndarray:
    if eos_id is None:
        return arr
    out = np.empty(arr.size + 1, TOKEN)
    out[:-1] = arr
    out[-1] = eos_id
    return out


class Stream:
    """``concat``'s pending tokens with their positions in their documents;
    rows are cut from the front (``cut`` tokens are already emitted). Only
    per-document arrays (starts, numbers) say which document a token is in."""

    def __init__(self) -> None:
        self.tokens = self.pos = self.starts = self.numbers = EMPTY
        self.cut = 0

    def extend(self, docs: list[tuple[int, np.ndarray]], offset: int = 0) -> None:
        """Append non-empty documents ``(number, tokens)``; the first starts
        at position ``offset`` (the rest of a document cut on a resume)."""
        lens = np.fromiter((len(a) for _, a in docs), np.int64, len(docs))
        starts = np.cumsum(lens) - lens
        tokens = np.concatenate([a for _, a in docs])
        pos = np.arange(tokens.size, dtype=TOKEN)
        pos -= np.repeat(starts, lens)
        if offset:
            pos[: lens[0]] += offset
        pending = self.pending()
        keep = (
            int(np.searchsorted(self.starts, self.cut, "right")) - 1
            if pending
            else len(self.starts)
        )
        self.starts = np.concatenate(
            [np.maximum(self.starts[keep:] - self.cut, 0), starts + pending]
        )
        numbers = np.fromiter((n for n, _ in docs), np.int64, len(docs))
        self.numbers = np.concatenate([self.numbers[keep:], numbers])
        self.tokens = np.concatenate([self.tokens[self.cut :], tokens]).astype(TOKEN, copy=False)
        self.pos = np.concatenate([self.pos[self.cut :], pos])
        self.cut = 0

    def pending(self) -> int:
        return self.tokens.size - self.cut

    def where(self, default: int) -> tuple[int, int]:
        """(document number, position in it) of the next token to emit."""
        if self.cut >= self.tokens.size:
            return default, 0
        doc = int(np.searchsorted(self.starts, self.cut, "right")) - 1
        return int(self.numbers[doc]), int(self.pos[self.cut])

    def rows(self, seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The full rows of pending tokens (views, no copy of the tokens):
        ids, segments, positions. ``cut`` is not moved."""
        n = self.pending() // seq_len
        end = self.cut + n * seq_len
        ids = self.tokens[self.cut : end].reshape(n, seq_len)
        pos = self.pos[self.cut : end].reshape(n, seq_len)
        return ids, segments(pos, seq_len), pos

    def last_row(self, seq_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pending tokens (fewer than ``seq_len``) as one padded row."""
        todo = self.pending()
        ids = np.full((1, seq_len), pad_id, TOKEN)
        pos = np.zeros((1, seq_len), TOKEN)
        ids[0, :todo] = self.tokens[self.cut :]
        pos[0, :todo] = self.pos[self.cut :]
        return ids, segments(pos, todo), pos


def segments(pos: np.ndarray, used: int) -> np.ndarray:
    """Segment ids 1, 2, ... per document within each row of positions (a
    document starts where its position is 0, or at the row's start); 0 from
    column ``used`` on (padding)."""
    starts = pos == 0
    starts[:, 0] = True
    seg = np.cumsum(starts, axis=1, dtype=TOKEN)
    seg[:, used:] = 0
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
