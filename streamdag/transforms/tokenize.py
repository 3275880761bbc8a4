"""tokenize: text -> token ids with a Hugging Face ``tokenizers`` tokenizer
(Rust, releases the GIL), encoded ``batch_size`` elements at a time.

The tokenizer is the path or URL of a ``tokenizer.json`` (plain data, so the
graph stays saveable), read once per worker through fsspec. The state is the
input's state and the inputs of the current batch not yet passed on (at most
``batch_size - 1`` elements): a resume encodes those again, then goes on."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, islice
from operator import length_hint
from typing import Any

import fsspec
import tokenizers

from ..runtime.node import ResumableTransform


def load_tokenizer(url: str) -> tokenizers.Tokenizer:
    """The tokenizer saved at ``url`` (a local path or any fsspec URL)."""
    with fsspec.open(url, "r", encoding="utf-8") as f:
        return tokenizers.Tokenizer.from_str(f.read())


class TokenizeNode(ResumableTransform):
    def setup(self) -> None:
        super().setup()
        self._tokenizer = load_tokenizer(self.params["tokenizer"])
        self._batch: list[Any] = []
        self._outs: Iterator[Any] = iter(())

    def iterator(self) -> Iterator[Any]:
        pending = self.take_restored() or []
        self._batch, self._outs = [], iter(())
        elements = self.inputs[0].iterator()
        size = self.params["batch_size"]
        batches = iter(lambda: list(islice(elements, size)), [])
        return self._run(chain([pending], batches) if pending else batches)

    def _run(self, batches: Iterator[list[Any]]) -> Iterator[Any]:
        for batch in batches:
            self._batch = batch
            self._outs = iter(self._encode(batch))
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

    def live_state(self) -> list[Any]:
        left = length_hint(self._outs)
        return self._batch[len(self._batch) - left :] if left else []
