"""torchdata's ``SeedGenerator``, the third argument of a reset fn: seeds
derived from streamdag's (base seed, epoch, global worker), so a reset fn that
reseeds things is reproducible for a given ``seed=`` and exact on resume. Its
numbers differ from torchdata's (which draws them from a Philox engine)."""

from __future__ import annotations

from ..core.seeds import derive_seed, draw_base_seed
from ..runtime.node import WorkerContext

_UINT64_BOUND = 2**64
_SHARED, _OWN, _EPOCH = 0x5A4ED, 0x0D, 0xE90C
_ROOT = 0  # the worker key before any ``spawn``


class SeedGenerator:
    """``generate_shared_seed()``: the same sequence on every worker and rank;
    ``generate_seed()``: a sequence of this worker's own (after ``spawn``).
    Each call returns the next seed of its sequence (63-bit ints)."""

    def __init__(self, seed: int | None = None) -> None:
        self._key = _ROOT
        self.seed(seed)

    def seed(self, seed: int | None = None) -> None:
        """Start both sequences again from ``seed`` (None: a random one); as in
        torchdata this also drops what ``spawn(inplace=True)`` did."""
        if seed is None:
            seed = draw_base_seed()
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < _UINT64_BOUND:
            raise ValueError(f"Expected an uint64 seed, but got {seed!r}.")
        self._base, self._key, self._shared, self._own = seed, _ROOT, 0, 0

    def generate_shared_seed(self) -> int:
        """The next seed that every worker and rank draws alike."""
        self._shared += 1
        return derive_seed(self._base, _SHARED, self._shared)

    def generate_seed(self) -> int:
        """The next seed of this generator's own sequence."""
        self._own += 1
        return derive_seed(self._base, _OWN, self._key, self._own)

    def spawn(self, worker_id: int, inplace: bool = False) -> SeedGenerator:
        """A generator whose own sequence is ``worker_id``'s (the shared one
        continues where this one is); ``inplace``: change this one instead."""
        if isinstance(worker_id, bool) or not isinstance(worker_id, int) or worker_id < 0:
            raise ValueError(f"Expected `worker_id` >= 0, but got {worker_id!r}.")
        target = self if inplace else self._copy()
        target._key, target._own = derive_seed(self._key, worker_id + 1), 0
        return target

    def _copy(self) -> SeedGenerator:
        other = SeedGenerator(self._base)
        other._key, other._shared, other._own = self._key, self._shared, self._own
        return other

    def __repr__(self) -> str:
        return f"SeedGenerator(seed={self._base})"


def epoch_seed_generator(base_seed: int, epoch: int, context: WorkerContext) -> SeedGenerator:
    """The generator a reset fn gets in the worker of ``context``: seeded from
    (base seed, epoch), spawned for the global worker index."""
    generator = SeedGenerator(derive_seed(base_seed, epoch, _EPOCH))
    return generator.spawn(context.shard_index, inplace=True)
