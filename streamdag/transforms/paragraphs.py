"""lines_to_paragraphs: ``(file, line)`` pairs into ``(file, paragraph)``
(torchdata's ParagraphAggregator): consecutive non-empty lines of one file
are joined; an empty line or a new file ends a paragraph."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..runtime.node import ResumableTransform


def join_lines(lines: list[str]) -> str:
    """torchdata's default joiner."""
    return "\n".join(lines)


class LinesToParagraphsNode(ResumableTransform):
    """State: the file and lines of the paragraph being gathered (at most one
    paragraph of text) and the input's state."""

    def user_functions(self) -> list[Any]:
        return [self.params["joiner"]] if self.params["joiner"] else []

    def iterator(self) -> Iterator[tuple[Any, Any]]:
        restored = self.take_restored()
        self._file, self._lines = (None, []) if restored is None else restored
        return self._run(self.inputs[0].iterator())

    def _run(self, pairs: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
        join = self.params["joiner"] or join_lines
        for file, line in pairs:
            if self._file is None:
                self._file = file
            if line and self._file == file:
                self._lines.append(line)
                continue
            done, lines = self._file, self._lines
            self._file, self._lines = file, [line] if line else []
            if lines:
                yield done, join(lines)
        if self._lines:
            lines, self._lines = self._lines, []
            yield self._file, join(lines)

    def live_state(self) -> list:
        return [self._file, list(self._lines)]
