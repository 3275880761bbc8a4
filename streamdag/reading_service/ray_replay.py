"""What a new actor needs to take over from one that died: the commands that
make it produce exactly the elements the dead one had not delivered yet.

The pool notes every command it sends a worker and every message it
receives from it. The passes since the last RUN (the RUN and the THENs queued
behind it) run one after the other; the first that has not ended is resumed
in a RUN: each of its virtual workers (lanes) that has not ended resumes from
the state of its last chunk the trainer received (everything before it is
already on the trainer's side; a lane that sent nothing yet starts as the
dead worker's did), with the credits it had left; the passes behind it are
queued again. The trainer's merge never notices: the next chunk of each lane
starts at its next element."""

from __future__ import annotations

from typing import Any

from .worker import CREDIT, DATA, ERROR, RUN, STATS, THEN


class _Lane:
    """One virtual worker of a pass: where a new worker resumes it."""

    __slots__ = ("state", "skip", "next_pass", "credits", "ended", "origin")

    def __init__(self, state: Any, skip: int, next_pass: bool, credits: int, origin: list) -> None:
        self.state, self.skip, self.next_pass = state, skip, next_pass
        self.origin = origin  # [] or the virtual worker's context on another rank
        self.credits = credits
        self.ended = False


class _Pass:
    __slots__ = ("command", "lanes")

    def __init__(self, command: tuple, worker: int, num_workers: int) -> None:
        self.command = command
        if command[0] == RUN:
            saved, credits = command[6], command[7]
        else:  # THEN: a fresh pass of the worker's virtual workers (WorkerLoop._run_of)
            saved = [(v, None, 0, False) for v in range(worker, command[5], num_workers)]
            credits = command[4]
        self.lanes = {
            v: _Lane(state, skip, nxt, credits, origin) for v, state, skip, nxt, *origin in saved
        }

    @property
    def ended(self) -> bool:
        return all(lane.ended for lane in self.lanes.values())

    def resume(self) -> list[tuple]:
        """The RUN that continues this pass in a new worker, then a CREDIT for
        each lane with more credits left than the RUN gives every lane."""
        kind, gen, base_seed, epoch = self.command[:4]
        fresh = self.command[4] if kind == RUN else True
        live = {v: lane for v, lane in self.lanes.items() if not lane.ended}
        saved = [
            (v, lane.state, lane.skip, lane.next_pass, *lane.origin) for v, lane in live.items()
        ]
        least = min(lane.credits for lane in live.values())
        out = [(RUN, gen, base_seed, epoch, fresh, self.command[5], saved, least)]
        out.extend(
            (CREDIT, gen, lane.credits - least, v)
            for v, lane in live.items()
            if lane.credits > least
        )
        return out


class Replay:
    """One worker's passes, as far as the trainer has received them.
    ``worker`` of ``num_workers``: which virtual workers a queued pass runs."""

    def __init__(self, worker: int, num_workers: int) -> None:
        self._worker, self._num_workers = worker, num_workers
        self._stats: tuple | None = None
        self._passes: list[_Pass] = []

    def sent(self, command: tuple) -> None:
        kind = command[0]
        if kind in (RUN, THEN):
            run = _Pass(command, self._worker, self._num_workers)
            self._passes = [run] if kind == RUN else [*self._passes, run]
        elif kind == CREDIT:
            if (lane := self._lane(command[1], command[3])) is not None:
                lane.credits += command[2]
        elif kind == STATS:
            self._stats = command

    def received(self, message: tuple) -> None:
        if message[0] not in (DATA, ERROR):
            return
        if (lane := self._lane(message[1], message[2])) is None:
            return  # of a pass abandoned since
        if message[0] == ERROR:
            # the trainer raises it; the worker dropped the passes queued behind
            self._passes = [run for run in self._passes if run.command[1] < message[1]]
        else:
            lane.state, lane.skip, lane.next_pass = message[4], 0, False
            lane.ended = message[5]
            if not lane.ended:
                lane.credits -= 1

    def commands(self) -> list[tuple]:
        """What to send a new worker, in order."""
        out = [self._stats] if self._stats is not None else []
        live = [run for run in self._passes if not run.ended]
        if live:
            out.extend(live[0].resume())
            out.extend(run.command for run in live[1:])
        return out

    def _lane(self, gen: int, v: int) -> _Lane | None:
        run = next((run for run in self._passes if run.command[1] == gen), None)
        return None if run is None else run.lanes.get(v)
