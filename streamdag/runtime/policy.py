"""The error policy of reader and decoder nodes at run time: ``on_error="raise"|"skip"|"warn"``.

Bad input (a corrupt JPEG, a truncated tar, an invalid JSON line) either
stops the pipeline with an error naming the node, the file and the member or
line, or is dropped and counted. Counting happens only on the error path: a
plain attribute increment, so the good path costs nothing. Under ``warn`` the
graph's ``skip_warnings`` issues the warning (``datapipes/skip_warnings.py``:
rate-limited, and sent on to the main process from a worker)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from ..errors import NodeError


class StreamCut(Exception):
    """Raised by reads from a stream whose producer dropped the rest of it
    under ``on_error="skip"|"warn"`` (decompress, at a corrupt or truncated
    unit). The damage was counted there; a reader drops the element it was
    reading (a partial line, member or sample) without counting it again."""


class ErrorPolicy:
    """Mixin for runtime nodes: ``self.skipped`` counts the inputs dropped
    under ``skip``/``warn`` in this run (never reset between epochs, never
    part of the resume state: it is a statistic, not a position)."""

    skipped: int = 0
    label: str
    params: Mapping[str, Any]
    spec: Any
    graph: Any

    @property
    def on_error(self) -> str:
        return self.params.get("on_error", "raise")

    def stats(self) -> dict[str, int]:
        """Counters of this node in this process."""
        return {"skipped": self.skipped}

    def error(self, exc: BaseException, where: str) -> NodeError:
        msg = f"{self.label} failed on {where}: {type(exc).__name__}: {exc}"
        return NodeError(msg, op=self.spec.op, name=self.spec.name, node_id=self.spec.id)

    def fail(self, exc: BaseException, where: str) -> None:
        """Apply the policy to ``exc`` (raised while handling ``where``):
        raise a NodeError from it, or count it (and warn) and return. A
        ``StreamCut`` was counted upstream: it returns at once."""
        if isinstance(exc, StreamCut):
            return
        if self.on_error == "raise":
            raise self.error(exc, where) from exc
        self.skipped += 1
        if self.on_error == "warn":
            self.graph.skip_warnings.warn(self.label, f"{self.error(exc, where)} (skipped)")

    def dropped(self, path: str, member: str | None = None) -> None:
        """Part of the input ``path`` was dropped: the archive member
        ``member``, or (None) everything from a point where no member was
        being read. Nodes that group members (webdataset) read this to drop
        a group the damage cut."""
        self.graph.dropped.setdefault(path, []).append(member)

    def reraise(self, exc: BaseException, where: str) -> NoReturn:
        """Raise regardless of the policy (a broken pipeline, not bad data)."""
        raise self.error(exc, where) from exc
