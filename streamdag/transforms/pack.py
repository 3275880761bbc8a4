"""pack: token documents into rows of ``seq_len`` tokens with segment and
position ids, so attention can stay inside documents.

``concat`` cuts the concatenated stream into rows (a document continues in
the next row, its positions continuing); ``bfd`` packs whole documents
best-fit-decreasing within a buffer of ``buffer_size`` documents. State is
document numbers and a position (replayed from an input checkpoint on a
resume), never the tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..runtime.node import ResumableNode
from ..runtime.policy import ErrorPolicy
from ..runtime.replay import Replayer, restore_source
from .packing import (
    Row,
    Stream,
    as_tokens,
    best_fit_decreasing,
    check_signs,
    has_negative,
    with_eos,
)

#: concat: documents between input checkpoints, and tokens gathered per vectorized step
CHECKPOINT_EVERY = 64
CHUNK_TOKENS = 1 << 16


def _row(ids: np.ndarray, segs: np.ndarray, pos: np.ndarray) -> Row:
    return {"input_ids": ids, "segment_ids": segs, "position_ids": pos}


def _short(doc: Any) -> str:
    text = repr(doc)
    return text if len(text) <= 60 else text[:57] + "..."


class PackNode(ErrorPolicy, ResumableNode):
    """Statistics: ``skipped`` bad documents, ``truncated_tokens`` and
    ``dropped_documents`` under ``overflow="truncate"|"drop"``."""

    def setup(self) -> None:
        super().setup()
        self.truncated_tokens = 0
        self.dropped_documents = 0

    def stats(self) -> dict[str, int]:
        return {
            "skipped": self.skipped,
            "truncated_tokens": self.truncated_tokens,
            "dropped_documents": self.dropped_documents,
        }

    def iterator(self) -> Iterator[Row]:
        restored = self.take_restored()
        bfd = self.params["strategy"] == "bfd"
        every = self.params["buffer_size"] if bfd else CHECKPOINT_EVERY
        self._replay = Replayer(self.inputs[0], every)
        return self._bfd(restored) if bfd else self._concat(restored)

    def _pull(
        self, count: bool, target: int | None = None, signs: bool = True
    ) -> tuple[int, Any, np.ndarray | None]:
        """The next document as ``(number, document, tokens)``, tokens None
        for a bad one (``count``: apply ``on_error``; False while replaying
        what was counted before; ``signs``: False leaves negative ids to the
        caller). StopIteration at the end of the input, or, replaying towards
        document ``target``, a ResumeError."""
        replay = self._replay
        seq = replay.seq
        doc = replay.pull() if target is None else replay.replay(target, self.label)
        try:
            tokens = as_tokens(doc, self.params["field"], signs)
        except (TypeError, ValueError, KeyError) as exc:
            self._bad(exc, seq, doc, count)
            return seq, doc, None
        return seq, doc, with_eos(tokens, self.params["eos_id"])

    def _bad(self, exc: Exception, seq: int, doc: Any, count: bool) -> None:
        if count:
            self.fail(exc, f"document {seq} {_short(doc)}")

    # -- concat ------------------------------------------------------------------
    def _concat(self, restored: dict | None) -> Iterator[Row]:
        self._stream = stream = Stream()
        replay = self._replay
        if restored is None:
            replay.start()
            return self._concat_rows()
        replay.start(restored["ckpt"])
        replay.skip_to(restored["first"], self.label)
        docs = []
        while replay.seq < restored["next"]:
            seq, _, tokens = self._pull(False, restored["next"])
            if tokens is not None and tokens.size:
                docs.append((seq, tokens))
        if docs:
            first, tokens = docs[0]
            offset = restored["offset"] if first == restored["first"] else 0
            docs[0] = (first, tokens[offset:])
            stream.extend(docs, offset)
        return self._concat_rows()

    def _concat_rows(self) -> Iterator[Row]:
        seq_len, pad_id = self.params["seq_len"], self.params["pad_id"]
        stream, replay = self._stream, self._replay
        chunk = max(seq_len, CHUNK_TOKENS)
        ended = False
        while not ended:
            docs, size = [], stream.pending()
            while size < chunk:
                try:
                    seq, _, tokens = self._pull(True)
                except StopIteration:
                    ended = True
                    break
                if tokens is not None and tokens.size:
                    docs.append((seq, tokens))
                    size += tokens.size
            if docs:
                stream.extend(docs)
            ids, segs, pos = stream.rows(seq_len)
            for i in range(len(ids)):
                stream.cut += seq_len
                yield _row(ids[i], segs[i], pos[i])
            if ended and stream.pending():
                ids, segs, pos = stream.last_row(seq_len, pad_id)
                stream.cut = stream.tokens.size
                yield _row(ids[0], segs[0], pos[0])
            replay.forget_before(stream.where(replay.seq)[0])

    # -- best-fit decreasing -----------------------------------------------------
    def _bfd(self, restored: dict | None) -> Iterator[Row]:
        replay = self._replay
        if restored is None:
            replay.start()
            self._start = self._row = 0
            return self._bfd_rows(0, True)
        replay.start(restored["ckpt"])
        replay.skip_to(restored["start"], self.label)
        self._start, self._row = restored["start"], restored["row"]
        return self._bfd_rows(self._row, False)

    def _bfd_rows(self, skip: int, count: bool) -> Iterator[Row]:
        """Rows of one buffer after another; the first buffer's first
        ``skip`` rows were emitted before a resume."""
        replay, size = self._replay, self.params["buffer_size"]
        ended = False
        while not ended:
            self._start, self._row = replay.seq, skip
            replay.forget_before(self._start)
            docs: list[tuple[int, Any, np.ndarray]] = []
            pulled = 0
            while pulled < size:
                try:
                    seq, doc, tokens = self._pull(count, signs=False)
                except StopIteration:
                    ended = True
                    break
                pulled += 1
                if tokens is not None:
                    docs.append((seq, doc, tokens))
            ids, segs, pos = self._pack(docs, count)
            for i in range(skip, len(ids)):
                self._row = i + 1
                yield _row(ids[i], segs[i], pos[i])
            skip, count = 0, True

    def _pack(
        self, docs: list[tuple[int, Any, np.ndarray]], count: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A buffer's documents packed best-fit decreasing. Negative ids are
        looked for once in the packed rows (one per document costs ~30% of
        packing); a buffer holding one is packed again without its bad
        documents, the statistics of its first packing undone."""
        stats = self.truncated_tokens, self.dropped_documents
        pieces = [piece for _, _, tokens in docs for piece in self._fit(tokens, count)]
        packed = best_fit_decreasing(pieces, self.params["seq_len"], self.params["pad_id"])
        if not has_negative(packed[0]):
            return packed
        self.truncated_tokens, self.dropped_documents = stats
        good = []
        for seq, doc, tokens in docs:
            try:
                check_signs(tokens)
                good.append((seq, doc, tokens))
            except ValueError as exc:
                self._bad(exc, seq, doc, count)
        return self._pack(good, count)

    def _fit(self, tokens: np.ndarray, count: bool) -> list[tuple[np.ndarray, int]]:
        """A document as pieces ``(tokens, first position)`` of at most
        ``seq_len`` tokens, as ``overflow`` says."""
        seq_len = self.params["seq_len"]
        if tokens.size <= seq_len:
            return [(tokens, 0)]
        overflow = self.params["overflow"]
        if overflow == "split":
            return [(tokens[i : i + seq_len], i) for i in range(0, tokens.size, seq_len)]
        if overflow == "truncate":
            self.truncated_tokens += (tokens.size - seq_len) * count
            return [(tokens[:seq_len], 0)]
        self.dropped_documents += count
        return []

    # -- state ---------------------------------------------------------------------
    def live_state(self) -> dict:
        replay = self._replay
        if self.params["strategy"] == "bfd":
            return {"ckpt": replay.checkpoint(self._start), "start": self._start, "row": self._row}
        first, offset = self._stream.where(replay.seq)
        return {
            "ckpt": replay.checkpoint(first),
            "first": first,
            "offset": offset,
            "next": replay.seq,
        }

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])
