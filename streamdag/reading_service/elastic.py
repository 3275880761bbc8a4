"""Elastic resume across ranks: a state saved on R ranks loaded on R'.

Each rank saves its own loader state. On R' ranks, every rank loads the
list of all R old ranks' states; ``rank_state`` makes this rank's state of
it: on the same world size, the rank's own state as saved (the exact rest
of its epoch, in order); otherwise a state holding every old rank's part,
which the worker service deals with ``deal``. The unit that moves is a
virtual worker: ``u = rank * V + v`` of ``U = R * V`` in the run that
started the epoch. Its shard, seeds and state depend on that identity only
(``WorkerContext(rank, R, v, V)``, whichever rank or worker runs it), so it
resumes exactly anywhere; rank ``r'`` of ``R'`` takes those with
``u % R' == r'``."""

from __future__ import annotations

from typing import Any

from ..errors import ResumeError
from .merge import BACK

RANKS = "ranks"  # the key of a graph state holding every old rank's part
START = "start"  # the part of a rank that had yielded nothing of the epoch


def rank_state(states: list[dict[str, Any]], rank: int, world_size: int) -> dict[str, Any]:
    """This rank's loader state from the loader states of all old ranks
    (any order). Refuses what cannot cover every virtual worker."""
    if not states:
        raise ResumeError("load_state_dict got an empty list of rank states")
    epochs = {(s["epoch"], s["seed"]) for s in states}
    if len(epochs) > 1:
        raise ResumeError(
            "the rank states are of different epochs or seeds "
            f"({sorted(epochs, key=str)}): load the states all ranks saved at the same step"
        )
    own: dict[int, dict] = {}  # old rank -> its loader state
    for state in states:
        old = _rank_of(state)
        if old is not None and old in own:
            raise ResumeError(f"two of the rank states given are rank {old}'s")
        own[-1 - len(own) if old is None else old] = state
    # states that do not say their rank (of a worker service told its rank by
    # hand, or of earlier releases) take the ranks left, in list order
    left = iter(r for r in range(len(states)) if r not in own)
    own = {r if r >= 0 else next(left, r): state for r, state in own.items()}
    worlds = {w for w in map(_world_of, states) if w is not None} or {len(states)}
    if len(worlds) > 1:
        raise ResumeError(f"the rank states were saved with different world sizes {worlds}")
    old_world = worlds.pop()
    missing = sorted(set(range(old_world)) - set(own))
    if missing or len(own) != old_world:
        raise ResumeError(
            f"the state was saved on {old_world} ranks: resuming needs the states of all "
            f"of them, missing rank {missing} (got the states of ranks {sorted(own)}); "
            "each old rank's virtual workers resume from that rank's state only"
        )
    replayed = sorted(r for r, s in own.items() if s.get("replay", 0))
    if old_world != world_size and replayed:
        raise ResumeError(
            f"the states of ranks {replayed} replay elements in their old merged order "
            "(taken with in_flight where the service could not say each virtual worker's "
            f"position back: more than {BACK} elements, a main-process part, across a pass of "
            "cycle() or a round of sync_every > 1): resume them on the same world size"
        )
    parts = [_part(own[r]) for r in range(old_world)]
    if all(p is None for p in parts):  # every rank had finished: the next epoch starts
        return states[0]
    if all(p in (None, START) for p in parts):
        if all(p == START for p in parts):  # nothing yielded: the epoch starts afresh
            return own[rank] if rank in own else states[0]
        if old_world == world_size:
            return own[rank]
        raise ResumeError(
            "no rank had yielded an element since it resumed, but some had ended the "
            "epoch: resume on the world size that saved it"
        )
    dealt = [p for p in parts if isinstance(p, dict) and RANKS in p]
    if dealt:  # saved after a resume on another world size, before any element
        if len(dealt) != len(parts) or any(p != dealt[0] for p in dealt):
            raise ResumeError(
                "the rank states mix states resumed from other ranks' before their first "
                "element with others: resume them on the world size that saved them"
            )
        return {**own[0], "yielded": 0, "graph": dealt[0]}
    if old_world == world_size and parts[rank] != START:  # its own part, exactly
        return own[rank]
    # (a rank that had not begun, while others had, starts its own share of
    # the epoch as it was laid out then, not afresh under this service)
    started = next(s for s in states if _part(s) not in (None, START))
    return {**started, "yielded": 0, "graph": {RANKS: parts}}


def _rank_of(state: dict) -> int | None:
    """The rank that saved a loader state, where it says."""
    graph = state["graph"]
    if "rank" not in state and isinstance(graph, dict):
        return graph.get("rank")
    return state.get("rank")


def _world_of(state: dict) -> int | None:
    """The world size that saved a loader state (None: not known)."""
    if "world_size" in state:
        return state["world_size"]
    graph = state["graph"]
    if isinstance(graph, dict) and RANKS not in graph:
        return graph.get("world_size", 1)
    return None


def _part(state: dict) -> Any:
    """A loader state's service state: None where the rank had finished its
    epoch, START where it had not yielded an element of it."""
    if state["done"]:
        return None
    return START if state["graph"] is None else state["graph"]


def deal(parts: list[Any], rank: int, world_size: int, who: str) -> dict[str, Any]:
    """The merge state (``merge.py``) of rank ``rank`` of ``world_size``:
    the virtual workers ``u % world_size == rank`` of the old ranks'
    ``parts`` (a worker service's state each, maybe under the distributed
    service's; None where the rank had finished its epoch, START where it
    had not begun it), in order of ``u``. On the same world size each rank
    takes its own part (only a rank that had not begun comes here)."""
    found: dict[int, tuple[list[int], dict]] = {}
    home: dict[int, int] = {}  # u -> the old rank that ran it
    total: int | None = None
    for old_rank, part in enumerate(parts):
        merge = None if part == START else _merge_state(part, who)
        if merge is None:
            continue
        merge, old_world = merge
        workers = merge["workers"]
        origins = merge.get("virtual") or [
            [old_rank, old_world, v, len(workers)] for v in range(len(workers))
        ]
        for origin, entry in zip(origins, workers, strict=True):
            r, world, v, count = origin
            u = r * count + v
            total = world * count if total is None else total
            if world * count != total or u in found:
                raise ResumeError(
                    f"{who}: the rank states overlap or come from different runs "
                    f"(virtual worker {v} of rank {r} twice, or {world * count} "
                    f"virtual workers against {total})"
                )
            found[u], home[u] = (origin, entry), old_rank
    if START in parts:  # those ranks' virtual workers start the epoch
        count = (total or len(parts)) // len(parts)
        for old_rank in (r for r, part in enumerate(parts) if part == START):
            for v in range(count):
                u = old_rank * count + v
                found[u], home[u] = ([old_rank, len(parts), v, count], _FRESH), old_rank
    same = len(parts) == world_size
    mine = sorted(u for u in found if (home[u] if same else u % world_size) == rank)
    return {
        "turn": 0,
        "workers": [found[u][1] for u in mine],
        "virtual": [found[u][0] for u in mine],
    }


_FRESH = {"state": None, "skip": 0, "ended": False, "next_pass": False}


def _merge_state(part: Any, who: str) -> tuple[dict, int] | None:
    """The merge state in one old rank's service state and its world size;
    None where the rank had nothing left of its own (done, or repeating
    under even_batches='pad')."""
    if part is None:
        return None
    if isinstance(part, dict) and "inner" in part:  # the distributed service's
        if part.get("pass", 0):
            return None
        if part.get("skip"):
            raise ResumeError(
                f"{who}: a rank's state was saved in the middle of a round of "
                f"sync_every elements ({part['skip']} taken): resume it on the same "
                "world size, or save with sync_every=1"
            )
        part = part["inner"]
    if not isinstance(part, dict) or not part.get("num_workers"):
        raise ResumeError(
            f"{who}: resuming on another world size needs states saved with worker "
            "processes or threads (num_workers >= 1) on every rank"
        )
    merge = part["graph"]
    if not isinstance(merge, dict) or "workers" not in merge:
        raise ResumeError(
            f"{who}: resuming on another world size needs a graph without a "
            "main-process part (main_process(), a main-placed op or main_prefetch_cnt): "
            "that part's state is each rank's own"
        )
    return merge, part.get("world_size", 1)
