"""parse_csv / parse_csv_as_dict: (path, stream) -> one row per CSV record,
as torchdata's CSVParser and CSVDictParser yield them.

Position: the physical lines consumed (a quoted field may span lines; the
csv module reads no line ahead of the record it returns), so a resume skips
straight to the next record (re-reading the header row first for dicts)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import islice, repeat
from typing import Any

from ..core.ops.readers import DICT_KEYS
from ..runtime.counting import count_of
from .lines import LineReader


class ParseCsvNode(LineReader):
    """Elements: each record as a list of str (a tuple with ``as_tuple``),
    the header row and blank lines (``[]``) included, after ``skip_lines``;
    ``(path, row)`` with ``return_path``. ``fmtparams`` go to ``csv.reader``.
    A ``csv.Error`` (e.g. under ``strict``) or an undecodable line is bad
    input: the file goes on with the next record."""

    def chain(self, lines: Iterator[Any], first_line: int) -> Iterator[Any]:
        p = self.params
        rows: Iterator[Any] = csv.reader(self.text(lines), **(p["fmtparams"] or {}))
        if p["as_tuple"]:
            rows = map(tuple, rows)
        return zip(repeat(self._path), rows) if p["return_path"] else rows

    def text(self, lines: Iterator[Any]) -> Iterator[Any]:
        """What the csv module reads: the lines decoded where ``decode`` asks
        (without it, bytes lines make the csv module raise, as in torchdata)."""
        p = self.params
        return self.decoded(lines, p["errors"]) if p["decode"] else lines

    def recover(self, exc: BaseException) -> Iterator[Any] | None:
        if isinstance(exc, (ValueError, csv.Error)):
            return self.chain(self._lines, 0)
        return None


class ParseCsvDictNode(ParseCsvNode):
    """Elements: each record after the header row as a dict, exactly as
    ``csv.DictReader`` makes them (keyed by the header row, the first row
    after ``skip_lines``, or by ``fieldnames`` in ``fmtparams``; blank lines
    passed over; extra fields under ``restkey``, missing ones ``restval``)."""

    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        fmt = dict(self.params["fmtparams"] or {})
        self._fieldnames: list[str] | None = None
        super().expand(item, None)  # from the first line after skip_lines
        names = fmt.pop("fieldnames", None)
        if names is None:
            for key in DICT_KEYS:
                fmt.pop(key, None)
            names = next(csv.reader(self.text(self._lines), **fmt), None)
            if names is None:
                return iter(())
        self._fieldnames = list(names)
        skip = (at or 0) - count_of(self._counter)
        if skip > 0:
            next(islice(self._lines, skip, skip), None)
        return self.chain(self._lines, 0)

    def chain(self, lines: Iterator[Any], first_line: int) -> Iterator[Any]:
        if self._fieldnames is None:  # the header row is not read yet
            return iter(())
        p = self.params
        fmt = {**(p["fmtparams"] or {}), "fieldnames": self._fieldnames}
        rows = csv.DictReader(self.text(lines), **fmt)
        return zip(repeat(self._path), rows) if p["return_path"] else rows
