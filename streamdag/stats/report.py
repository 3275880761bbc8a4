"""Per-node statistics of a running pipeline, summed over workers and ranks:
what ``DataLoader2.stats()`` returns and ``streamdag run --profile`` prints."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.node import Node, walk

_TIMES = ("busy_s",)


@dataclass(frozen=True)
class NodeStats:
    """One node of the pipeline, over every copy of it (workers, ranks).

    ``busy_s`` is CPU time spent in the node itself (its own code and the
    user functions it calls, not its inputs), summed over copies. Element counts are None where they cannot be known without counting
    per element (see docs/stats.md)."""

    id: str
    op: str
    name: str | None
    elements_in: int | None
    elements_out: int | None
    busy_s: float
    bytes_read: int
    skipped: int
    retries: int
    copies: int
    reads_storage: bool = False  # the most upstream node that counts bytes
    counters: Mapping[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.op} {self.name!r}" if self.name else self.op


@dataclass(frozen=True)
class PipelineStats:
    """``nodes`` in pipeline order (sources first). ``wall_s``: seconds since
    statistics started (in the main process); ``waited_s``/``outside_s``: time
    the loop over the loader spent waiting for the next element and doing its
    own work (the training step) between elements. ``credit_wait_s`` /
    ``worker_s``: the time the workers spent with every chunk they may make
    ahead made (waiting for the main process to take one), of their time since
    statistics started, summed over workers. ``even_batches_dropped``
    / ``even_batches_repeated``: the loader's elements a
    ``DistributedReadingService`` dropped (``even_batches=True``) or yielded
    again (``"pad"``) to keep every rank's batch count equal."""

    nodes: tuple[NodeStats, ...]
    wall_s: float
    waited_s: float
    outside_s: float
    processes: int
    even_batches_dropped: int = 0
    even_batches_repeated: int = 0
    credit_wait_s: float = 0.0
    worker_s: float = 0.0

    def node(self, key: str) -> NodeStats:
        """The node with this name or id."""
        for stats in self.nodes:
            if key in (stats.name, stats.id):
                return stats
        raise KeyError(f"no node named {key!r}; nodes: {[n.name or n.id for n in self.nodes]}")

    @property
    def bytes_read(self) -> int:
        """Bytes read from storage: by the most upstream nodes that count bytes."""
        return sum(n.bytes_read for n in self.nodes if n.reads_storage)

    def bottleneck(self) -> NodeStats | None:
        """The node with the most time per copy: it sets the pace."""
        timed = [n for n in self.nodes if n.busy_s > 0]
        return max(timed, key=lambda n: n.busy_s / max(n.copies, 1), default=None)

    def table(self) -> str:
        total = sum(n.busy_s for n in self.nodes) or 1.0
        rows = [("node", "in", "out", "out/s", "time s", "time %", "MB read", "skipped", "retries")]
        for n in self.nodes:
            rate = (
                f"{n.elements_out / self.wall_s:,.1f}"
                if n.elements_out is not None and self.wall_s > 0
                else "?"
            )
            rows.append(
                (
                    n.label,
                    _count(n.elements_in),
                    _count(n.elements_out),
                    rate,
                    f"{n.busy_s:.2f}",
                    f"{100 * n.busy_s / total:.1f}",
                    f"{n.bytes_read / 1e6:.1f}" if n.bytes_read else "",
                    str(n.skipped or ""),
                    str(n.retries or ""),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join([*lines, "", self.summary()])

    def summary(self) -> str:
        slow = self.bottleneck()
        lines = [f"{self.wall_s:.2f} s, {self.processes} process(es)"]
        if slow is not None:
            share = slow.busy_s / (sum(n.busy_s for n in self.nodes) or 1.0)
            lines.append(
                f"bottleneck: {slow.label} ({100 * share:.0f}% of pipeline time, "
                f"{slow.copies} cop{'y' if slow.copies == 1 else 'ies'})"
            )
        if self.even_batches_dropped or self.even_batches_repeated:
            lines.append(
                f"even batches over ranks: {self.even_batches_dropped:,} elements "
                f"dropped, {self.even_batches_repeated:,} repeated"
            )
        if self.waited_s or self.outside_s:
            seen = self.waited_s + self.outside_s
            lines.append(
                f"the loop over the loader waited for data "
                f"{100 * self.waited_s / seen:.0f}% of its time"
            )
        if self.worker_s:
            lines.append(
                f"the workers waited for the main process to take their chunks "
                f"{100 * self.credit_wait_s / self.worker_s:.0f}% of their time"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build(
    output: Node,
    snapshots: Iterable[Mapping[str, Any]],
    waited_s: float = 0.0,
    outside_s: float = 0.0,
) -> PipelineStats:
    """Sum the snapshots of every process (and rank) over ``output``'s nodes."""
    snapshots = list(snapshots)
    specs = walk(output)
    first_readers = _first_byte_counters(specs, snapshots)
    nodes = []
    for spec in specs:
        parts = [s["nodes"][spec.id] for s in snapshots if spec.id in s["nodes"]]
        counted = [p for p in parts if "in" in p]
        counters: dict[str, int] = {}
        for part in parts:
            for key, value in part.items():
                if key not in ("in", "out", *_TIMES):
                    counters[key] = counters.get(key, 0) + value
        nodes.append(
            NodeStats(
                id=spec.id,
                op=spec.op,
                name=spec.name,
                elements_in=_total(p["in"] for p in counted),
                elements_out=_total(p["out"] for p in counted),
                busy_s=sum(p.get("busy_s", 0.0) for p in parts),
                bytes_read=counters.get("bytes", 0),
                skipped=counters.get("skipped", 0),
                retries=counters.get("retries", 0),
                copies=len(counted) or 1,
                reads_storage=spec.id in first_readers,
                counters=counters,
            )
        )
    timed = [s for s in snapshots if "wall_s" in s]
    even = [s["even_batches"] for s in snapshots if "even_batches" in s]
    waits = [s["credit_wait"] for s in snapshots if "credit_wait" in s]
    return PipelineStats(
        nodes=tuple(nodes),
        wall_s=max((s["wall_s"] for s in timed), default=0.0),
        waited_s=waited_s,
        outside_s=outside_s,
        processes=len(timed),
        even_batches_dropped=sum(e["dropped"] for e in even),
        even_batches_repeated=sum(e["repeated"] for e in even),
        credit_wait_s=sum(waited for waited, _ in waits),
        worker_s=sum(seconds for _, seconds in waits),
    )


def _first_byte_counters(specs: list[Node], snapshots: list[Mapping[str, Any]]) -> set[str]:
    """Nodes that count bytes with no byte-counting node upstream: their sum
    is what was read from storage, without counting a byte twice."""
    counts = {key for s in snapshots for key, part in s["nodes"].items() if "bytes" in part}
    below: set[str] = set()
    first: set[str] = set()
    for spec in specs:  # sources first
        upstream = any(i.id in below for i in spec.inputs)
        if spec.id in counts and not upstream:
            first.add(spec.id)
        if spec.id in counts or upstream:
            below.add(spec.id)
    return first


def _total(values: Iterable[int | None]) -> int | None:
    values = list(values)
    if not values or None in values:
        return None
    return sum(values)  # type: ignore[arg-type]


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def profile_notes(stats: PipelineStats) -> dict[str, tuple[str, bool]]:
    """``{node id: (one line of throughput and time share, is the bottleneck)}``."""
    total = sum(n.busy_s for n in stats.nodes) or 1.0
    slow = stats.bottleneck()
    notes = {}
    for n in stats.nodes:
        rate = (
            "? el/s"
            if n.elements_out is None or stats.wall_s <= 0
            else f"{n.elements_out / stats.wall_s:,.0f} el/s"
        )
        notes[n.id] = (f"{rate}, {100 * n.busy_s / total:.0f}% time", n is slow)
    return notes
