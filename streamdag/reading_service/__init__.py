"""Executors of the graph (reading services), DataLoader2, seeds.

Kept import-light: the public names are re-exported from ``streamdag``; the
interface a third-party service implements is here."""

from .base import ReadingService
from .capabilities import CollectsStats, PreparesEpochs, Ranked, SpansRanks

__all__ = ["CollectsStats", "PreparesEpochs", "Ranked", "ReadingService", "SpansRanks"]
