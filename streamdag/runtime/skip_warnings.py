"""The ``SkippedInputWarning``s of one graph: one per input dropped under
``on_error="warn"``, at most ``LIMIT`` per node per epoch, then one summary
at the end of the epoch (the node's ``skipped`` statistic counts them all).

In a worker of a reading service the warnings are held instead and sent to
the main process with the elements that followed them; the main process
replays them into its own graph's ``SkipWarnings`` when the loop takes those
elements. So they are issued in the thread that iterates the loader, and
``warnings.catch_warnings``, ``-W error`` and ``logging.captureWarnings``
treat them as if the node had run there, whatever the service."""

from __future__ import annotations

import warnings
from collections import deque

from ..errors import SkippedInputWarning

LIMIT = 10

#: (node label, message), the message None once the worker's limit was reached
Held = list[tuple[str, str | None]]


class SkipWarnings:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._held: deque[tuple[str, str | None]] | None = None

    def hold(self) -> None:
        """Keep warnings for ``take_held`` instead of issuing them (in a worker)."""
        self._held = deque()

    def warn(self, label: str, message: str | None) -> None:
        """Node ``label`` dropped an input; ``message`` names it (None: only count it)."""
        count = self._counts[label] = self._counts.get(label, 0) + 1
        shown = message if count <= LIMIT else None
        if self._held is not None:
            self._held.append((label, shown))
        elif shown is not None:
            warnings.warn(shown, SkippedInputWarning, stacklevel=4)

    def take_held(self) -> Held:
        """The warnings held since the last call (a deque: nodes running in
        other threads, such as prefetch, may add to it meanwhile)."""
        held, out = self._held, []
        while held:
            out.append(held.popleft())
        return out

    def replay(self, held: Held) -> None:
        """Issue the warnings a worker held, counting them with this process's."""
        for label, message in held:
            self.warn(label, message)

    def reset(self) -> None:
        self._counts = {}

    def finish(self) -> None:
        """The epoch ended: one summary per node whose warnings were not all
        shown (a worker leaves that to the main process)."""
        counts, self._counts = self._counts, {}
        if self._held is not None:
            return
        for label, count in counts.items():
            if count > LIMIT:
                msg = (
                    f"{label}: {count - LIMIT} more inputs skipped in this epoch (a node "
                    f"warns about its first {LIMIT} per epoch; its skipped statistic "
                    "counts them all)"
                )
                warnings.warn(msg, SkippedInputWarning, stacklevel=3)
