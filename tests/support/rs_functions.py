"""Module-level functions for reading-service tests. Kept free of heavy
imports: spawn and forkserver workers import this module to unpickle them."""

from __future__ import annotations

import os
import time


def square(x):
    return x * x


def with_pid(x):
    return (x, os.getpid())


def fail_on_7(x):
    if x == 7:
        raise ValueError(f"bad element {x}")
    return x


def sleep_on_5(x):
    if x == 5:
        time.sleep(30)
    return x


def slow(x):
    time.sleep(0.01)
    return x


def burn(x):
    """CPU work (no sleep): what a profile must find."""
    total = 0
    for i in range(20_000):
        total += i
    return x


def record(path, x):
    """Append ``x`` to the file at ``path``: a side effect a test can watch."""
    with open(path, "a") as f:
        f.write(f"{x}\n")
    return x


def slow_start(worker_id):
    """A worker_init_fn for a worker slow to build its graph: commands sent
    meanwhile are all waiting when it reads its first one."""
    time.sleep(0.5)


def tag_random(x):
    """``x`` with a draw from the worker's global RNG: seeded per worker."""
    import random

    return (x, random.random())


def big_array(x):
    """A 1 MiB array: large enough to travel out of band."""
    import numpy as np

    return np.full(1 << 18, x, dtype=np.int32)


def big_tensor(x):
    """A 1 MiB tensor."""
    import torch

    return torch.full((1 << 18,), x, dtype=torch.int32)


def tensors_of_each_kind(x):
    """Large (bfloat16, a non-contiguous view) and small tensors, in a dict."""
    import torch

    grid = torch.arange(512 * 256, dtype=torch.int32).view(512, 256) + x
    return {
        "bf16": torch.full((256, 256), x, dtype=torch.bfloat16),
        "transposed": grid.t(),
        "small": torch.tensor([x, x + 1]),
    }


def generator_on_3(x):
    """A generator in place of element 3: it cannot be pickled."""
    return (i for i in range(x)) if x == 3 else x


#: values of the ``Counted`` elements unpickled in this process, in order
UNPICKLED: list[int] = []


class Counted:
    """An element that records in ``UNPICKLED`` when a process unpickles it."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self):
        return (_unpickle_counted, (self.value,))


def _unpickle_counted(value: int) -> Counted:
    UNPICKLED.append(value)
    return Counted(value)


def counted_after_a_pause_at_0(x):
    """Element 0 comes 0.5 s late, so the next worker's chunks arrive before it."""
    if x == 0:
        time.sleep(0.5)
    return Counted(x)
