"""A tqdm bar over a loader's epoch: elements/s from tqdm, samples/s and MB/s
from the loader's statistics, refreshed at most twice a second so the bar
costs one ``update`` call per element."""

from __future__ import annotations

from collections.abc import Iterator
from time import perf_counter
from typing import Any, Protocol, TypeVar

from .report import PipelineStats

T = TypeVar("T")
REFRESH_S = 0.5


class HasStats(Protocol):
    def stats(self, all_ranks: bool = False) -> PipelineStats: ...


def progress_bar(
    items: Iterator[T],
    loader: HasStats,
    epoch: int | None = None,
    total: int | None = None,
    disable: bool | None = False,
) -> Iterator[T]:
    from tqdm import tqdm

    desc = None if epoch is None else f"epoch {epoch}"
    with tqdm(
        total=total,
        desc=desc,
        unit="el",
        dynamic_ncols=True,
        disable=disable,
        mininterval=REFRESH_S,
    ) as bar:
        before = _totals(loader.stats())
        since, due = perf_counter(), perf_counter() + REFRESH_S
        for item in items:
            yield item
            bar.update(1)
            now = perf_counter()
            if now >= due:
                due = now + REFRESH_S
                bar.set_postfix_str(
                    _rates(before, _totals(loader.stats()), now - since), refresh=False
                )
        bar.set_postfix_str(_rates(before, _totals(loader.stats()), perf_counter() - since))


def _totals(stats: PipelineStats) -> tuple[int, int]:
    """(samples, bytes read from storage): samples are what the last batch
    node took in, else the elements the pipeline delivered."""
    batches = [n for n in stats.nodes if n.op == "batch" and n.elements_in is not None]
    last = batches[-1].elements_in if batches else stats.nodes[-1].elements_out
    return last or 0, stats.bytes_read


def _rates(before: tuple[int, int], now: tuple[int, int], seconds: float) -> str:
    seconds = max(seconds, 1e-9)
    parts: list[Any] = [f"{(now[0] - before[0]) / seconds:,.0f} samples/s"]
    if now[1]:
        parts.append(f"{(now[1] - before[1]) / seconds / 1e6:,.1f} MB/s")
    return ", ".join(parts)
