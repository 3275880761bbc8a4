"""What a new actor needs to take over from one that died: the commands that
make it produce exactly the elements the dead one had not delivered yet.

The pool notes every command it sends a worker and every message it
receives from it. The passes since the last RUN (the RUN and the THENs queued
behind it) run one after the other; the first that has not ended is resumed
from the state of its last chunk the trainer received (everything before it
is already on the trainer's side), with the credits the dead worker had
left; the passes behind it are queued again. The trainer's merge never
notices: the next chunk it gets starts at the next element."""

from __future__ import annotations

from typing import Any

from .worker import CREDIT, DATA, ERROR, RUN, STATS, THEN


class _Pass:
    __slots__ = ("command", "credits", "state", "received", "ended")

    def __init__(self, command: tuple) -> None:
        self.command = command
        self.credits = command[8] if command[0] == RUN else command[4]
        self.state: Any = None
        self.received = False
        self.ended = False

    def resume(self) -> tuple:
        """The RUN that continues this pass in a new worker."""
        kind, gen, base_seed, epoch = self.command[:4]
        if self.received:
            return (RUN, gen, base_seed, epoch, False, self.state, 0, False, self.credits)
        if kind == RUN:
            return (*self.command[:8], self.credits)
        return (RUN, gen, base_seed, epoch, True, None, 0, False, self.credits)


class Replay:
    """One worker's passes, as far as the trainer has received them."""

    def __init__(self) -> None:
        self._stats: tuple | None = None
        self._passes: list[_Pass] = []

    def sent(self, command: tuple) -> None:
        kind = command[0]
        if kind == RUN:
            self._passes = [_Pass(command)]
        elif kind == THEN:
            self._passes.append(_Pass(command))
        elif kind == CREDIT:
            if (run := self._find(command[1])) is not None:
                run.credits += command[2]
        elif kind == STATS:
            self._stats = command

    def received(self, message: tuple) -> None:
        if message[0] not in (DATA, ERROR) or (run := self._find(message[1])) is None:
            return
        if message[0] == ERROR:
            run.ended = True  # the trainer raises it; nothing to resume
            return
        run.state, run.received, run.ended = message[4], True, message[5]
        if not run.ended:
            run.credits -= 1

    def commands(self) -> list[tuple]:
        """What to send a new worker, in order."""
        out = [self._stats] if self._stats is not None else []
        live = [run for run in self._passes if not run.ended]
        if live:
            out.append(live[0].resume())
            out.extend(run.command for run in live[1:])
        return out

    def _find(self, gen: int) -> _Pass | None:
        return next((run for run in self._passes if run.command[1] == gen), None)
