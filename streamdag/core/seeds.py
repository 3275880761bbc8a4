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
