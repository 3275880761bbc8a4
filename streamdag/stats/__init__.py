"""Per-node statistics: element counts, exclusive time, bytes, skips and
retries, collected without per-element hooks and summed over workers and
ranks (``DataLoader2(..., stats=True).stats()``)."""

from .report import NodeStats, PipelineStats

__all__ = ["NodeStats", "PipelineStats"]
