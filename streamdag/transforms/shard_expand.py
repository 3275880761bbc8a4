"""shard_expand: shard URL patterns in shell brace notation
(``"s3://b/train-{000000..000099}.tar"``) to the URLs they name, as
torchdata's ShardExpander: no listing, so the same on every storage system."""

from __future__ import annotations

import re
from itertools import product

from .flatmap import FlatMapNode

_RANGE = re.compile(r"\{([0-9]+)\.\.([0-9]+)\}")


class ShardExpandNode(FlatMapNode):
    def setup(self) -> None:
        super().setup()
        self.fn = expand_shards


def expand_shards(pattern: str) -> list[str]:
    """Every ``{lo..hi}`` range expanded, the first range outermost. Bounds of
    equal length starting with 0 are zero-padded (``{00..10}``); a range must
    go up (lo < hi), and a shorter low bound must not start with 0."""
    if not isinstance(pattern, str):
        msg = f"shard_expand: expects shard patterns (str), got {type(pattern).__name__}"
        raise TypeError(msg)
    parts = _RANGE.split(pattern)  # text, lo, hi, text, lo, hi, ..., text
    ranges = [_numbers(pattern, lo, hi) for lo, hi in zip(parts[1::3], parts[2::3], strict=True)]
    texts = parts[::3]
    out = []
    for numbers in product(*ranges):
        pieces = [texts[0]]
        for number, text in zip(numbers, texts[1:], strict=True):
            pieces += (number, text)
        out.append("".join(pieces))
    return out


def _numbers(pattern: str, lo: str, hi: str) -> list[str]:
    if len(lo) > len(hi) or (len(lo) < len(hi) and lo.startswith("0") and lo != "0"):
        msg = (
            f"shard_expand: bad range {{{lo}..{hi}}} in {pattern!r}: the low bound must "
            "be as long as the high bound (zero-padded) or shorter without a leading 0"
        )
        raise ValueError(msg)
    if int(lo) >= int(hi):
        msg = f"shard_expand: bad range {{{lo}..{hi}}} in {pattern!r}: lo must be < hi"
        raise ValueError(msg)
    width = len(hi) if len(lo) == len(hi) and lo.startswith("0") else 0
    return [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
