"""Seed derivation. One base seed per epoch; every random node derives its own
seed from (base seed, epoch, node position[, global worker]) so that nodes
upstream of the sharding point agree on every rank and worker, and nodes
downstream differ. Never from pid or time."""

from __future__ import annotations

import hashlib
import random
import secrets
import struct
import sys

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
        sys.modules["torch"].manual_seed(seed)


def global_rng_states() -> dict[str, list]:
    """The global RNGs' states as plain data (Python's random, and numpy's and
    torch's where imported; their words as hex text, cheaper to make than
    lists of ints): a worker process's resume state holds them, so a user
    function drawing from them resumes where it was."""
    version, internal, gauss = random.getstate()
    states: dict[str, list] = {"random": [version, list(internal), gauss]}
    if "numpy" in sys.modules:
        name, keys, pos, has_gauss, cached = sys.modules["numpy"].random.get_state()
        states["numpy"] = [name, keys.tobytes().hex(), pos, has_gauss, cached]
    if "torch" in sys.modules:
        states["torch"] = [sys.modules["torch"].get_rng_state().numpy().tobytes().hex()]
    return states


def set_global_rng_states(states: dict[str, list]) -> None:
    """Restore what ``global_rng_states`` returned."""
    version, internal, gauss = states["random"]
    random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        import numpy as np

        name, keys, pos, has_gauss, cached = states["numpy"]
        words = np.frombuffer(bytes.fromhex(keys), dtype=np.uint32)
        np.random.set_state((name, words, pos, has_gauss, cached))
    if "torch" in states:
        import torch

        data = bytearray.fromhex(states["torch"][0])
        torch.set_rng_state(torch.frombuffer(data, dtype=torch.uint8))
