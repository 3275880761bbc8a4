"""readlines: (path, stream) -> (path, line), streaming, and the line
machinery parse_jsonl and parse_csv share.

Lines are read in C (the stream's own line iterator), counted in C
(``compress`` over a counter) and decoded in C (``map(bytes.decode, ...)``):
no Python call per line unless the output needs one. State: the input's state
before the current file and the number of lines consumed in it; a resume
re-opens the file and skips that many lines."""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import partial
from itertools import count, repeat
from operator import itemgetter
from typing import Any

from ..runtime.counting import count_of, counted
from .expand import ExpandingNode

_SWAP = itemgetter(1, 0)
_PATH_NUMBER_LINE = itemgetter(0, 2, 1)


class LineReader(ExpandingNode):
    """Base of the line-based readers: subclasses build ``chain(lines,
    first_line)`` over the raw (bytes or str) lines of the current file,
    after its first ``skip_lines`` (a param of the subclasses that take it).
    A ValueError from the chain (undecodable or unparsable line) is a bad
    line: the file goes on with the next one."""

    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        path, stream = self.split(item)
        self._path = path
        self._text = isinstance(stream, io.TextIOBase)
        at = max(at or 0, self.params.get("skip_lines", 0))
        self._lines, self._counter = counted(stream, at)
        self._pos = partial(count_of, self._counter)
        return self.chain(self._lines, at + 1)

    def chain(self, lines: Iterator[Any], first_line: int) -> Iterator[Any]:
        raise NotImplementedError

    def decoded(self, lines: Iterator[Any], errors: str = "strict") -> Iterator[Any]:
        """Lines as text: a text stream's as they are, bytes decoded in C."""
        if self._text:
            return lines
        return map(bytes.decode, lines, repeat(self.params["encoding"]), repeat(errors))

    def recover(self, exc: BaseException) -> Iterator[Any] | None:
        if isinstance(exc, ValueError):
            return self.chain(self._lines, count_of(self._counter) + 1)
        return None

    def where(self, item: Any) -> str:
        counter = getattr(self, "_counter", None)
        if self._pos is None or counter is None:
            return super().where(item)
        return f"{self._path!r} line {count_of(counter)}"


class ReadLinesNode(LineReader):
    """Elements: ``(path, line)``, or ``line`` without ``return_path``, as
    torchdata's readlines: the line's ends stripped of "\\r\\n" characters,
    then (``decode``) bytes decoded with ``errors``; a binary stream without
    ``decode`` gives bytes. With ``line_numbers`` (a streamdag extra) the
    1-based line number comes before the line."""

    def chain(self, lines: Iterator[Any], first_line: int) -> Iterator[Any]:
        p = self.params
        text = self._text
        if p["strip_newline"]:
            lines = map(
                str.strip if text else bytes.strip, lines, repeat("\r\n" if text else b"\r\n")
            )
        if p["decode"]:
            lines = self.decoded(lines, p["errors"])
        with_path = p["return_path"]
        if not p["line_numbers"]:
            return zip(repeat(self._path), lines) if with_path else lines
        # the number is pulled after the line, so a bad line does not advance it
        if with_path:
            return map(_PATH_NUMBER_LINE, zip(repeat(self._path), lines, count(first_line)))
        return map(_SWAP, zip(lines, count(first_line)))
