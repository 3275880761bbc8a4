"""load_parquet: (path, stream) of Parquet files -> one dict per row, or
dicts of column arrays of at most ``batch_rows`` rows (a batch never spans
two row groups).

pyarrow reads the footer, then only the row groups and columns needed, from
the stream (any fsspec filesystem). The position is (row group, row): a
resume reads that row group again and starts at that row. A file that is not
Parquet (or truncated: its footer is at the end) is dropped as a whole; a row
group that fails to read drops that row group, and reading goes on at the next."""

from __future__ import annotations

from collections.abc import Iterator
from operator import length_hint
from typing import Any

import pyarrow.parquet as pq

from .expand import ExpandingNode


class ParquetRowGroupError(ValueError):
    """A row group that does not read: the next one may."""


class LoadParquetNode(ExpandingNode):
    def expand(self, item: Any, at: Any) -> Iterator[Any]:
        path, stream = self.split(item, binary=True)
        self._path = path
        self._group, row = at or (0, 0)
        self._rows: Iterator[Any] = iter(())
        self._first, self._count, self._unit = row, 0, 1
        self._file = pq.ParquetFile(stream)
        columns = self.params["columns"]
        if columns is not None:
            names = self._file.schema_arrow.names
            missing = [c for c in columns if c not in names]
            if missing:
                raise KeyError(f"no column {missing[0]!r} (columns: {names})")
        self._pos = self._position
        return self._groups()

    def _groups(self) -> Iterator[Any]:
        size = self.params["batch_rows"]
        self._unit = size or 1
        while self._group < self._file.num_row_groups:
            try:
                table = self._file.read_row_group(self._group, columns=self.params["columns"])
            except Exception as exc:
                raise ParquetRowGroupError(f"row group {self._group}: {exc}") from exc
            table = table.slice(self._first)
            if size is None:
                parts = table.to_pylist()
                self._rows, self._count = iter(parts), len(parts)
                yield from self._rows
            else:
                parts = [table.slice(i, size) for i in range(0, table.num_rows, size)]
                self._rows, self._count = iter(parts), len(parts)
                yield from map(_columns, self._rows)
            self._next_group()

    def _next_group(self) -> None:
        self._group += 1
        self._first, self._count = 0, 0
        self._rows = iter(())

    def _position(self) -> list[int]:
        done = self._count - length_hint(self._rows)
        return [self._group, self._first + done * self._unit]

    def recover(self, exc: BaseException) -> Iterator[Any] | None:
        if not isinstance(exc, ParquetRowGroupError):
            return None
        self._next_group()
        return self._groups()

    def where(self, item: Any) -> str:
        if self._pos is None:
            return super().where(item)
        return f"{self._path!r}, row group {self._group}"


def _columns(table: Any) -> dict[str, Any]:
    return {
        name: col.to_numpy() for name, col in zip(table.column_names, table.columns, strict=True)
    }
