"""groupby and max_token_bucketize: torchdata's grouping nodes, which hold
elements until a group or a batch is complete. Their state is the numbers of
the held elements and a checkpoint of the input at or before the oldest
(``runtime.replay``), never the elements: a resume replays from there."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..runtime.node import ResumableNode
from ..runtime.replay import Replayer, restore_source


class HoldingNode(ResumableNode):
    """A node over one input that holds some of the elements it pulled.
    Subclasses list the held numbers (``held()``); ``resume()`` gives back
    the held elements by number after a restore. Elements it drops by its
    rules count as ``skipped`` in its statistics."""

    skipped = 0

    def stats(self) -> dict[str, int]:
        return {"skipped": self.skipped}

    def resume(self, every: int) -> tuple[dict | None, dict[int, Any]]:
        """Start pulling: (the restored state or None, held elements by number)."""
        restored = self.take_restored()
        self._replay = replay = Replayer(self.inputs[0], every)
        items: dict[int, Any] = {}
        if restored is None:
            replay.start()
            return None, items
        replay.start(restored["ckpt"])
        wanted = set(self.restored_seqs(restored))
        while replay.seq < restored["next"]:
            seq = replay.seq
            item = replay.replay(restored["next"], self.label)
            if seq in wanted:
                items[seq] = item
        return restored, items

    def restored_seqs(self, restored: dict) -> Iterable[int]:
        raise NotImplementedError

    def held(self) -> Iterable[int]:
        raise NotImplementedError

    def forget(self) -> None:
        """Drop the checkpoints no resume needs any more."""
        self._replay.forget_before(min(self.held(), default=self._replay.seq))

    def live_state(self) -> dict:
        replay = self._replay
        return {
            "next": replay.seq,
            "ckpt": replay.checkpoint(min(self.held(), default=replay.seq)),
            **self.own_state(),
        }

    def own_state(self) -> dict:
        raise NotImplementedError

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])


class GroupByNode(HoldingNode):
    """torchdata's Grouper: elements gathered by ``group_key_fn`` in a buffer
    of ``buffer_size``; a group leaves when it has ``group_size`` elements,
    the biggest when the buffer is full, all the rest at the end."""

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["group_key_fn"]]

    def iterator(self) -> Iterator[Any]:
        size = self.params["buffer_size"]
        restored, items = self.resume(max(1, (size or 10000) // 4))
        key_fn = self.params["group_key_fn"]
        #: key -> (elements, their numbers), in torchdata's dict order
        self._groups: dict[Any, tuple[list, list[int]]] = {}
        self._count = 0
        for seqs in restored["groups"] if restored else ():
            group = [items[seq] for seq in seqs]
            self._groups[key_fn(group[0])] = (group, list(seqs))
            self._count += len(seqs)
        return self._run(key_fn, size)

    def _run(self, key_fn: Callable[[Any], Any], size: int | None) -> Iterator[Any]:
        p = self.params
        keep_key, group_size = p["keep_key"], p["group_size"]
        groups, replay = self._groups, self._replay
        for seq, x in replay.numbered():
            key = key_fn(x)
            if key not in groups:
                groups[key] = ([], [])
            group, seqs = groups[key]
            group.append(x)
            seqs.append(seq)
            self._count += 1
            if group_size is not None and len(group) == group_size:
                del groups[key]
                self._count -= len(group)
                yield (key, group) if keep_key else group
            if self._count == size:
                out = self._remove_biggest()
                if out is not None:
                    # torchdata pairs it with the key of the element just read
                    yield (key, out) if keep_key else out
            if seq % replay.every == 0:
                self.forget()
        while groups:
            key = next(iter(groups))
            group = groups.pop(key)[0]
            self._count -= len(group)
            yield (key, group) if keep_key else group

    def _remove_biggest(self) -> list | None:
        groups = self._groups
        biggest = max(groups, key=lambda k: len(groups[k][0]))  # the first of the biggest
        group = groups.pop(biggest)[0]
        self._count -= len(group)
        p = self.params
        floor = p["guaranteed_group_size"] or p["group_size"]
        if floor is None or len(group) >= floor:
            return group
        if not p["drop_remaining"]:
            raise RuntimeError(
                f"groupby: the buffer is full and its biggest group ({len(group)} "
                f"elements) is smaller than guaranteed_group_size={floor}: "
                f"{group!r}; raise buffer_size or set drop_remaining=True"
            )
        self.skipped += len(group)
        return None

    def held(self) -> Iterator[int]:
        return (seqs[0] for _, seqs in self._groups.values())

    def restored_seqs(self, restored: dict) -> Iterator[int]:
        return (seq for seqs in restored["groups"] for seq in seqs)

    def own_state(self) -> dict:
        return {"groups": [list(seqs) for _, seqs in self._groups.values()]}


class _Sized:
    """A held element ordered by its length only (as torchdata's heap is),
    so equal lengths leave in the same order as there."""

    __slots__ = ("data", "length", "seq")

    def __init__(self, length: int, seq: int, data: Any) -> None:
        self.length, self.seq, self.data = length, seq, data

    def __lt__(self, other: _Sized) -> bool:
        return self.length < other.length


class MaxTokenBucketizeNode(HoldingNode):
    """torchdata's MaxTokenBucketizer: a min-heap of ``buffer_size`` elements
    by ``len_fn``; batches are taken from the shortest, each up to
    ``max_token_count`` tokens (with the padding to the longest if
    ``include_padding``). Elements outside ``[min_len, max_len]`` are
    dropped and counted as skipped."""

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["len_fn"]]

    def iterator(self) -> Iterator[list]:
        restored, items = self.resume(max(1, self.params["buffer_size"] // 4))
        self._heap: list[_Sized] = []
        self._batch: list[_Sized] = []
        self._tokens = self._longest = 0
        if restored is not None:
            self._heap = [_Sized(n, seq, items[seq]) for seq, n in restored["heap"]]
            self._batch = [_Sized(n, seq, items[seq]) for seq, n in restored["batch"]]
            self._tokens, self._longest = restored["tokens"], restored["longest"]
        return self._run()

    def _run(self) -> Iterator[list]:
        p = self.params
        len_fn, size, replay, heap = p["len_fn"], p["buffer_size"], self._replay, self._heap
        low = p["min_len"]
        high = p["max_len"] if p["max_len"] is not None else p["max_token_count"]
        for seq, x in replay.numbered():
            length = len_fn(x)
            if not low <= length <= high:
                self.skipped += 1
                continue
            heapq.heappush(heap, _Sized(length, seq, x))
            if len(heap) == size:
                out = self._take()
                if out is not None:
                    yield out
            if seq % replay.every == 0:
                self.forget()
        while heap:
            out = self._take()
            if out is not None:
                yield out
        if self._batch:
            out, self._batch = [s.data for s in self._batch], []
            yield out

    def _take(self) -> list | None:
        """Move the shortest held element into the batch; the batch it
        completes, if any."""
        item = heapq.heappop(self._heap)
        if self.params["include_padding"]:
            self._longest = max(item.length, self._longest)
            tokens = (len(self._batch) + 1) * self._longest
        else:
            tokens = self._tokens + item.length
        if tokens <= self.params["max_token_count"]:
            self._batch.append(item)
            self._tokens = tokens
            return None
        out = [s.data for s in self._batch]
        self._batch = [item]
        self._tokens = self._longest = item.length
        return out

    def held(self) -> Iterator[int]:
        return (s.seq for s in (*self._heap, *self._batch))

    def restored_seqs(self, restored: dict) -> Iterator[int]:
        return (seq for seq, _ in (*restored["heap"], *restored["batch"]))

    def own_state(self) -> dict:
        return {
            "heap": [[s.seq, s.length] for s in self._heap],
            "batch": [[s.seq, s.length] for s in self._batch],
            "tokens": self._tokens,
            "longest": self._longest,
        }
