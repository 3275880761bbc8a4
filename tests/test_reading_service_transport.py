"""The process transport: arrays and tensors round-trip exactly; large ones
through anonymous shared memory (no /dev/shm names), every descriptor closed;
a segment is written again only after the main process dropped every view of it."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest
import torch

from streamdag.reading_service import transport
from streamdag.reading_service.segments import MAX_FREE, SegmentPool, SegmentViews
from tests.support.leaks import open_fds


class Link:
    """Both ends of one worker's connection: the worker's segment pool, the
    main process's views of it."""

    def __init__(self):
        self.main, self.worker = multiprocessing.Pipe(duplex=True)
        self.main_sock, self.worker_sock = map(transport.socket_of, (self.main, self.worker))
        self.pool, self.views = SegmentPool(), SegmentViews()

    def send(self, value):
        message = transport.encode(value, self.pool)
        new_fds = len(message.fds)
        transport.send(self.worker, self.worker_sock, message)
        return new_fds

    def receive(self):
        return transport.receive(self.main, self.main_sock, self.views)

    def give_back(self):
        """What the main process's pool does before each wait: released ids to the
        worker, free or to unmap."""
        self.pool.give_back(*self.views.take_released())

    def close(self):
        self.pool.close()
        for closable in (self.main, self.worker, self.main_sock, self.worker_sock):
            closable.close()


@pytest.fixture
def link():
    link = Link()
    yield link
    link.close()


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


def test_round_trip_of_arrays_and_tensors(link):
    fds = open_fds()
    assert link.send(VALUES) == 5  # the five values of 64 KiB or more, in new segments
    got = link.receive()
    assert all(same(VALUES[k], got[k]) for k in VALUES)
    del got
    link.give_back()
    link.pool.close()
    link.views.forget(list(range(5)))
    assert open_fds() == fds


def test_large_values_are_mapped_not_copied(link):
    link.send([torch.zeros(1 << 20, dtype=torch.uint8)])
    (tensor,) = link.receive()
    tensor += 1  # writable, backed by the shared mapping
    assert int(tensor.sum()) == 1 << 20


def test_plain_python_data_passes_through_pickle(link):
    value = [{"text": "x" * 100, "ids": list(range(1000))}, (1, 2.5, None)]
    assert link.send(value) == 0
    assert link.receive() == value


def batch(fill, n=300_000):
    return torch.full((n,), fill, dtype=torch.uint8)


def test_a_segment_is_reused_once_the_main_process_dropped_it(link):
    assert link.send([batch(1)]) == 1
    (first,) = link.receive()
    view = first[10:20]
    del first
    link.give_back()
    assert link.send([batch(2)]) == 1  # a slice still views the segment: a new one
    assert torch.equal(view, batch(1, 10))
    (second,) = link.receive()
    del view, second
    link.give_back()
    assert link.send([batch(3), batch(4, 200_000)]) == 0  # both fit segments given back
    third, fourth = link.receive()
    assert torch.equal(third, batch(3)) and torch.equal(fourth, batch(4, 200_000))


def test_arrays_held_by_the_main_process_are_never_overwritten(link):
    held = []
    for i in range(10):
        link.send({"image": batch(i), "array": np.full(100_000, i, dtype=np.int32)})
        held.append(link.receive())
        link.give_back()
    assert all(
        torch.equal(m["image"], batch(i)) and (m["array"] == i).all() for i, m in enumerate(held)
    )


def test_free_segments_beyond_the_cap_are_unmapped_on_both_sides(link):
    fds = open_fds()
    link.send([batch(i) for i in range(MAX_FREE + 3)])
    got = link.receive()
    del got
    link.give_back()  # all given back: the main process unmaps 3, and tells the worker
    # each side maps the segments kept, and only them (a mapping holds a descriptor),
    # without waiting for another message
    assert open_fds() == fds + 2 * MAX_FREE
    assert link.pool.retired == []
    link.pool.close()
    link.views.forget(list(range(MAX_FREE + 3)))
    assert open_fds() == fds


def test_free_segments_of_a_size_no_longer_sent_give_way(link):
    """Free segments of a size no longer sent do not stay mapped forever: a
    worker with MAX_FREE free ones that needs another size stops reusing the
    oldest, unmaps it when segments next come back and names it in its next
    message; from then on the new size is kept and reused."""
    fds = open_fds()
    link.send([batch(i) for i in range(MAX_FREE)])
    got = link.receive()
    del got
    link.give_back()
    for _ in range(2):  # the first new segment comes back while the main process
        assert link.send([batch(9, 3_000_000)]) == 1  # still counts MAX_FREE free ones
        (big,) = link.receive()
        del big
        link.give_back()
        link.send("a message names the retired segment")
        link.receive()
    assert link.send([batch(9, 3_000_000)]) == 0  # reused
    assert open_fds() == fds + 2 * MAX_FREE  # three small segments and a big one, each side
    assert link.send([batch(7)]) == 0  # small ones too
    link.pool.close()
    link.views.forget(list(range(MAX_FREE + 2)))


def test_a_message_that_fails_to_pickle_gives_its_segments_back(link):
    """A segment the failed message reused is free again; one it made is
    unmapped, as the main process never learnt of it: reusing it would send
    a message naming a segment the main process does not map."""
    link.send([batch(1)])
    del link.receive()[0]
    link.give_back()
    fds = open_fds()
    with pytest.raises(TypeError):
        transport.encode([batch(2), batch(3), threading.Lock()], link.pool)
    assert open_fds() == fds  # the new segment's descriptor and mapping closed
    assert link.send([batch(4), batch(5)]) == 1  # the free segment reused, a new one made
    fourth, fifth = link.receive()
    assert torch.equal(fourth, batch(4)) and torch.equal(fifth, batch(5))


def test_elements_without_large_tensors_are_deferred_as_bytes(link):
    """Chunks of plain data and small tensors travel as one pickle unpickled
    when the loop takes the chunk; one with a tensor of 64 KiB or more is
    not deferred (its segment goes with the message), and no segment is taken
    by trying."""
    small = [{"ids": list(range(64)), "t": VALUES["small tensor"]}, VALUES["small array"]]
    deferred = transport.defer(small)
    assert isinstance(deferred, transport.Deferred)
    link.send((1, deferred))
    _, got = link.receive()
    assert isinstance(got, transport.Deferred) and got.data == deferred.data
    assert len(got) == 2  # the chunk's element count, without unpickling it
    ids_and_tensor, array = got.load()
    assert ids_and_tensor["ids"] == list(range(64)) and same(ids_and_tensor["t"], small[0]["t"])
    assert same(array, small[1])
    assert transport.defer([1, VALUES["big tensor"]]) is None
    assert transport.defer([VALUES["big array"]]) is None
    assert link.pool.retired == [] and link.send([1]) == 0  # no segment made or taken
    with pytest.raises(TypeError):
        transport.defer([threading.Lock()])
