"""Specs of the placement ops: the ``main_process`` boundary a user writes,
and the ``_worker_stream`` source a worker service puts in its place in the
main-process graph (never saved: it exists only while a graph runs)."""

from __future__ import annotations

from ..spec import OpSpec, Param

SPECS = (
    OpSpec(
        "main_process",
        "streamdag.transforms.main_process:MainProcessNode",
        params={},
        passthrough=True,
        placement="main",
    ),
    OpSpec(
        "_worker_stream",
        "streamdag.reading_service.worker_stream:WorkerStreamNode",
        inputs=(0, 0),
        params={"boundary": Param(), "batch_size": Param(None)},
        runtime_only=True,
    ),
)
