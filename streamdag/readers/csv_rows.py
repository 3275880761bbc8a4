"""parse_csv: (path, stream) -> one dict per row, keyed by the header."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import islice, repeat
from typing import Any

from ..runtime.counting import count_of
from .lines import LineReader


class ParseCsvNode(LineReader):
    """Rows as dicts by the header (the file's first row, or the ``header``
    list given); blank lines are ignored. A row with a different number of
    fields than the header, or an undecodable line, is bad input. Position:
    the physical lines consumed (quoted fields may span lines), so a resume
    reads the header and skips straight to the next row."""

    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        header = self.params["header"]
        self._header: list[str] | None = None if header is True else list(header)
        rows = super().expand(item, 0)  # the header is re-read, then lines are skipped
        if self._header is None:
            first = next(rows, None)
            if first is None:
                return iter(())
            self._header = list(first)
        skip = (at or 0) - count_of(self._counter)
        if skip > 0:
            next(islice(self._lines, skip, skip), None)
        return self.chain(self._lines, 0)

    def chain(self, lines: Iterator[Any], first_line: int) -> Iterator[Any]:
        p = self.params
        rows = filter(None, csv.reader(self.decoded(lines), delimiter=p["delimiter"],
                                       quotechar=p["quotechar"]))
        if self._header is None:
            return rows
        values = map(self._row, rows)
        return zip(repeat(self._path), values) if p["return_path"] else values

    def _row(self, row: list[str]) -> dict[str, str]:
        header = self._header
        if len(row) != len(header):
            raise ValueError(f"row has {len(row)} fields, the header has {len(header)}")
        return dict(zip(header, row, strict=True))

    def recover(self, exc: BaseException) -> Iterator[Any] | None:
        if isinstance(exc, (ValueError, csv.Error)):
            return self.chain(self._lines, 0)
        return None
