"""The process transport: arrays and tensors round-trip exactly; large ones
through anonymous shared memory (no /dev/shm names), every descriptor closed."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest
import torch

from streamdag.reading_service import transport


@pytest.fixture
def pair():
    a, b = multiprocessing.Pipe(duplex=True)
    sa, sb = transport.socket_of(a), transport.socket_of(b)
    yield (a, sa), (b, sb)
    for closable in (a, b, sa, sb):
        closable.close()


def open_fds():
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


VALUES = {
    "big array": np.arange(40_000, dtype=np.float32).reshape(200, 200),
    "strided array": np.arange(60_000, dtype=np.int64).reshape(300, 200)[::2, ::3],
    "small array": np.arange(5),
    "object array": np.array([None, "x"], dtype=object),
    "big tensor": torch.arange(50_000, dtype=torch.float32).reshape(250, 200),
    "transposed bf16": torch.arange(40_000, dtype=torch.bfloat16).reshape(200, 200).t(),
    "bool tensor": torch.ones(100_000, dtype=torch.bool),
    "small tensor": torch.tensor([1, 2, 3]),
    "scalar tensor": torch.tensor(3.5),
    "empty tensor": torch.empty(0, 4),
}


def same(x, y):
    if isinstance(x, torch.Tensor):
        return x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
    return x.dtype == y.dtype and x.shape == y.shape and (x == y).all()


def test_round_trip_of_arrays_and_tensors(pair):
    (a, sa), (b, sb) = pair
    fds = open_fds()
    message = transport.encode(VALUES)
    assert len(message.fds) == 5  # the five values of 64 KiB or more
    transport.send(b, sb, message)
    got = transport.receive(a, sa)
    assert all(same(VALUES[k], got[k]) for k in VALUES)
    del got
    assert open_fds() == fds


def test_large_values_are_mapped_not_copied(pair):
    (a, sa), (b, sb) = pair
    transport.send(b, sb, transport.encode([torch.zeros(1 << 20, dtype=torch.uint8)]))
    (tensor,) = transport.receive(a, sa)
    tensor += 1  # writable, backed by the shared mapping
    assert int(tensor.sum()) == 1 << 20


def test_plain_python_data_passes_through_pickle(pair):
    (a, sa), (b, sb) = pair
    value = [{"text": "x" * 100, "ids": list(range(1000))}, (1, 2.5, None)]
    message = transport.encode(value)
    assert message.fds == []
    transport.send(b, sb, message)
    assert transport.receive(a, sa) == value
