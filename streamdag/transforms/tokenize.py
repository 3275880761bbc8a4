"""tokenize: text -> token ids with a Hugging Face ``tokenizers`` tokenizer
(Rust, releases the GIL), encoded ``batch_size`` elements at a time.

The tokenizer is the path or URL of a ``tokenizer.json`` (plain data, so the
graph stays saveable), read once per worker through fsspec. State is
positions, never text: the input's checkpoint at the start of the current
batch and how many of the batch's outputs were passed on. A resume replays
the batch from the input, encodes it again and skips those outputs."""

from __future__ import annotations

from collections.abc import Iterator
from operator import length_hint
from typing import Any

import fsspec
import tokenizers

from ..errors import ResumeError
from ..runtime.node import ResumableNode
from ..runtime.replay import Replayer, restore_source


def load_tokenizer(url: str) -> tokenizers.Tokenizer:
    """The tokenizer saved at ``url`` (a local path or any fsspec URL)."""
    with fsspec.open(url, "r", encoding="utf-8") as f:
        return tokenizers.Tokenizer.from_str(f.read())


class TokenizeNode(ResumableNode):
    def setup(self) -> None:
        super().setup()
        self._tokenizer = load_tokenizer(self.params["tokenizer"])

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        # every batch starts at a checkpoint: the batch is the replay window
        self._replay = Replayer(self.inputs[0], self.params["batch_size"])
        self._outs: Iterator[Any] = iter(())
        if restored is None:
            self._start = self._size = 0
            self._replay.start()
            return self._run(0)
        self._replay.start(restored["ckpt"])
        self._start, self._size = self._replay.seq, restored["done"]
        return self._run(restored["done"])

    def _run(self, skip: int) -> Iterator[Any]:
        """Encoded batches; the first batch's first ``skip`` outputs were
        passed on before a resume."""
        replay, size = self._replay, self.params["batch_size"]
        while True:
            start = replay.seq
            batch = replay.take(size)
            if len(batch) < skip:
                raise replay.ended(start + skip, self.label)
            if not batch:
                return
            replay.forget_before(start)
            outs = self._encode(batch)
            self._start, self._size, self._outs = start, len(outs), iter(outs[skip:])
            skip = 0
            yield from self._outs  # its position is the state: no work per element

    def _encode(self, batch: list[Any]) -> list[Any]:
        field = self.params["field"]
        texts = [e if type(e) is str else self._text(e, field) for e in batch]
        encodings = self._tokenizer.encode_batch(
            texts, add_special_tokens=self.params["add_special_tokens"]
        )
        out_field = self.params["output_field"]
        return [
            enc.ids if type(e) is str else {**e, out_field: enc.ids}
            for e, enc in zip(batch, encodings, strict=True)
        ]

    def _text(self, element: Any, field: str) -> str:
        if not isinstance(element, dict):
            raise TypeError(
                f"tokenize takes str elements or dicts with a {field!r} field, "
                f"got {type(element).__name__}: {str(element)[:80]!r}"
            )
        if field not in element:
            raise KeyError(
                f"tokenize: element has no field {field!r} (fields: {sorted(element)[:10]})"
            )
        text = element[field]
        if not isinstance(text, str):
            raise TypeError(f"tokenize: field {field!r} must be str, got {type(text).__name__}")
        return text

    def live_state(self) -> dict:
        done = self._size - length_hint(self._outs)
        return {"ckpt": self._replay.checkpoint(self._start), "done": done}

    def restore(self, state: dict | None) -> None:
        if state is not None and not isinstance(state, dict):
            msg = (
                f"{self.label}: this state was saved by a streamdag before tokenize's "
                "state became positions (it holds the texts of a batch); it cannot be "
                "resumed: start the epoch again, or resume with the version that saved it"
            )
            raise ResumeError(msg)
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])
