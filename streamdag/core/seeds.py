"""Seed derivation. One base seed per epoch; every random node derives its own
seed from (base seed, epoch, node position[, global worker]) so that nodes
upstream of the sharding point agree on every rank and worker, and nodes
downstream differ. Never from pid or time."""

from __future__ import annotations

import functools
import hashlib
import random
import secrets
import struct
import sys
from typing import Any

from .rng_state import decode_random_state, encode_random_state, pack_words, unpack_words

_MASK64 = (1 << 64) - 1


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from a tuple of ints, stable across processes and runs."""
    data = struct.pack(f"<{len(parts)}Q", *(p & _MASK64 for p in parts))
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def draw_base_seed() -> int:
    """A fresh random base seed for an epoch when the user gave none."""
    return secrets.randbits(63)


def seed_global_rngs(seed: int) -> None:
    """Seed Python's random, and numpy's and torch's global RNGs if they are
    already imported (a worker does this so user functions are reproducible)."""
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed % (1 << 32))
    if "torch" in sys.modules:
        _seed_torch(sys.modules["torch"], seed)


def _seed_torch(torch: Any, seed: int) -> None:
    """``torch.manual_seed(seed)``, without its accelerator calls where torch
    has no accelerator built: each queues a lazy seed with a formatted stack
    trace, 5-30 ms in a freshly forked worker. The CPU generator ends the same."""
    if _torch_has_accelerators(torch):
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


@functools.cache
def _torch_has_accelerators(torch: Any) -> bool:
    """Whether torch was built with a device ``torch.manual_seed`` seeds (a
    check missing from this torch version counts as built)."""
    built = (
        getattr(torch.backends.cuda, "is_built", None),
        getattr(torch.backends.mps, "is_built", None),
        getattr(torch.xpu, "_is_compiled", None),
        getattr(torch.mtia, "_is_compiled", None),
    )
    custom = getattr(torch._C, "_get_privateuse1_backend_name", None)
    if custom is None or hasattr(torch, custom()):  # a registered out-of-tree device
        return True
    return any(check is None or check() for check in built)


def import_global_rngs() -> None:
    """Import what ``seed_global_rngs`` will use: numpy imports ``numpy.random``
    on first use (20-40 ms), which a forked worker would otherwise do after
    every fork."""
    if "numpy" in sys.modules:
        sys.modules["numpy"].random  # noqa: B018


def global_rng_states(seed: int) -> dict[str, Any]:
    """The global RNGs' states as plain data (Python's random, and numpy's and
    torch's where imported), given the ``seed`` that ``seed_global_rngs`` gave
    them: a worker process's resume state holds them, so a user function
    drawing from them resumes where it was. An RNG still as that seeding left
    it (the common case: nothing draws from it) is None, re-derived from
    ``seed`` on restore; one that moved is its words (``core/rng_state.py``).
    Checking costs a comparison with a cached seeded state, per call only."""
    now = random.getstate()
    states: dict[str, Any] = {
        "seed": seed,
        "random": None if now == _seeded_random(seed) else encode_random_state(now),
    }
    if "numpy" in sys.modules:
        name, keys, pos, has_gauss, cached = np_now = sys.modules["numpy"].random.get_state()
        fresh = _seeded_numpy(seed)
        if np_now[2:] == fresh[2:] and (keys == fresh[1]).all():
            states["numpy"] = None
        else:
            words = pack_words(keys.astype("<u4", copy=False).tobytes())
            states["numpy"] = [name, words, pos, has_gauss, cached]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch_now = torch.get_rng_state()
        same = torch.equal(torch_now, _seeded_torch(seed))
        states["torch"] = None if same else [pack_words(torch_now.numpy().tobytes())]
    return states


def set_global_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``global_rng_states`` returned, or the form earlier
    releases saved (no ``"seed"``: int lists and hex text)."""
    seed = states.get("seed")
    words = bytes.fromhex if seed is None else unpack_words
    saved = states["random"]
    random.setstate(_seeded_random(seed) if saved is None else decode_random_state(saved))
    if "numpy" in states:
        import numpy as np

        saved = states["numpy"]
        if saved is None:
            np.random.set_state(_seeded_numpy(seed))
        else:
            name, keys, pos, has_gauss, cached = saved
            keys = np.frombuffer(words(keys), dtype="<u4")
            np.random.set_state((name, keys, pos, has_gauss, cached))
    if "torch" in states:
        import torch

        saved = states["torch"]
        if saved is None:
            torch.set_rng_state(_seeded_torch(seed))
        else:
            data = bytearray(words(saved[0]))
            torch.set_rng_state(torch.frombuffer(data, dtype=torch.uint8))


# What ``seed_global_rngs(seed)`` leaves in each RNG, made with private
# generators; a worker process has a seed per virtual worker and epoch.
@functools.lru_cache(maxsize=32)
def _seeded_random(seed: int) -> tuple:
    return random.Random(seed).getstate()


@functools.lru_cache(maxsize=32)
def _seeded_numpy(seed: int) -> tuple:
    return sys.modules["numpy"].random.RandomState(seed % (1 << 32)).get_state()


@functools.lru_cache(maxsize=32)
def _seeded_torch(seed: int) -> Any:
    return sys.modules["torch"].Generator().manual_seed(seed).get_state()
