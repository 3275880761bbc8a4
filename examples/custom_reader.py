"""A custom reader for a real format: the rows of a SQLite table.

``@sd.reader`` makes the class a pipeline node: it gets its parameters and
the run context (rank, worker, seed, epoch), declares itself shardable (each
worker reads the rows with rowid % shards == its index) and resumes exactly
from a one-number state (the last rowid it delivered), so a restart costs
one indexed query, not a re-read. The graph saves and loads like any other.

Run: ``.venv/bin/python examples/custom_reader.py``."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Any

import streamdag as sd
from streamdag.datapipes import WorkerContext


class SqliteRows:
    """Rows of ``table`` as dicts, in rowid order, ``batch_rows`` per query."""

    def __init__(
        self,
        ctx: sd.ReaderContext,
        path: str,
        table: str,
        columns: list[str] | None = None,
        batch_rows: int = 256,
    ) -> None:
        for name in [table, *(columns or [])]:
            if not name.isidentifier():
                raise ValueError(f"not a plain SQL identifier: {name!r}")
        self.path, self.table, self.batch_rows = path, table, batch_rows
        self.columns = columns
        self.shard, self.shards = ctx.shard_index, ctx.num_shards
        self.last = 0  # rowid of the last row delivered

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # check_same_thread=False: the pipeline may close this generator from another thread
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        with closing(con):
            cols = ", ".join(self.columns) if self.columns else "*"
            query = (
                f"SELECT rowid, {cols} FROM {self.table} WHERE rowid > ? "
                "AND rowid % ? = ? ORDER BY rowid LIMIT ?"
            )
            while True:
                cursor = con.execute(query, (self.last, self.shards, self.shard, self.batch_rows))
                names = [d[0] for d in cursor.description][1:]
                rows = cursor.fetchall()
                if not rows:
                    return
                for rowid, *values in rows:
                    self.last = rowid
                    yield dict(zip(names, values, strict=True))

    def state_dict(self) -> dict[str, int]:
        return {"last": self.last}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.last = state["last"]


# Registering returns a Reader: calling it makes a pipeline node. (Decorating
# the class with @sd.reader(...) works too; then its name is the Reader.)
sqlite_rows = sd.reader("sqlite_rows", shardable=True)(SqliteRows)


def make_database(path: Path, rows: int = 1000) -> None:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE items (name TEXT, label INTEGER)")
        con.executemany(
            "INSERT INTO items VALUES (?, ?)", [(f"item-{i}", i % 10) for i in range(rows)]
        )


@sd.register_function("custom_reader.label_of")  # saved by name: this file may be __main__
def label_of(row: dict[str, Any]) -> int:
    return row["label"]


def build(db: Path) -> sd.DataPipe:
    return sqlite_rows(path=str(db), table="items").map(label_of).shuffle(64).batch(50)


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "items.db"
        make_database(db)
        dp = build(db)
        loader = sd.DataLoader2(dp, seed=7)
        full = list(loader)
        print(f"{len(full)} batches of {len(full[0])} labels; first: {full[0][:10]}")

        loader = sd.DataLoader2(dp, seed=7)
        head = list(islice(iter(loader), 6))
        saved = json.dumps(loader.state_dict())
        resumed = sd.DataLoader2(dp, seed=7)
        resumed.load_state_dict(json.loads(saved))
        exact = head + list(resumed) == full
        print(
            f"stopped after 6 batches, resumed from {len(saved)} bytes of JSON: "
            f"{'identical' if exact else 'DIFFERENT'} epoch"
        )

        shares = []
        for worker in range(2):
            service = sd.InProcessReadingService(
                worker=WorkerContext(worker_id=worker, num_workers=2)
            )
            rows = sqlite_rows(path=str(db), table="items")
            shares.append(len(list(sd.DataLoader2(rows, reading_service=service, seed=7))))
        print(f"two workers read {shares[0]} + {shares[1]} rows of 1000")

        graph_file = Path(tmp) / "pipeline.json"
        sd.save(dp, graph_file)
        reloaded = list(sd.DataLoader2(sd.load(graph_file), seed=7))
        print(
            f"saved to and loaded from {graph_file.name}: "
            f"{'same' if reloaded == full else 'DIFFERENT'} batches"
        )
        return {
            "batches": len(full),
            "exact_resume": exact,
            "shares": shares,
            "reloaded_same": reloaded == full,
        }


if __name__ == "__main__":
    main()
