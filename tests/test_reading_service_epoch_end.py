"""A state saved after the last element of an epoch, before the loop saw the
epoch end (the usual checkpoint after the last training step), resumes in
every service: the resumed epoch yields nothing and the following epochs are
those of an uninterrupted loader with the same seed."""

from __future__ import annotations

from functools import partial
from itertools import islice

import msgpack
import pytest

import streamdag as sd
from tests.support.leaks import no_leaks  # noqa: F401 - fixture
from tests.support.rs_functions import square

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_leaks")]

MP = sd.MultiProcessingReadingService
SERVICES = {
    "in_process": sd.InProcessReadingService,
    "processes_0": partial(MP, 0),
    "processes": partial(MP, 2),
    "persistent_processes": partial(MP, 2, persistent_workers=True),
    "threads": partial(sd.MultiThreadingReadingService, 2),
    "sequential": lambda: sd.SequentialReadingService(MP(2, persistent_workers=True)),
}


def pipeline():
    return (
        sd.IterableWrapper(range(23)).shuffle(buffer_size=8).sharding_filter().map(square).batch(3)
    )


def epochs(service, count):
    with sd.DataLoader2(pipeline(), reading_service=service(), seed=3) as loader:
        return [list(loader) for _ in range(count)]


@pytest.mark.parametrize("name", list(SERVICES))
def test_a_state_saved_after_the_last_batch_resumes_into_the_next_epochs(name):
    service = SERVICES[name]
    uninterrupted = epochs(service, 3)
    with sd.DataLoader2(pipeline(), reading_service=service(), seed=3) as loader:
        last_epoch = list(islice(loader, len(uninterrupted[0])))  # no StopIteration seen
        state = msgpack.unpackb(msgpack.packb(loader.state_dict()), strict_map_key=False)
    assert last_epoch == uninterrupted[0]
    with sd.DataLoader2(pipeline(), reading_service=service(), seed=3) as loader:
        loader.load_state_dict(state)
        resumed = [list(loader) for _ in range(3)]
    assert resumed == [[], uninterrupted[1], uninterrupted[2]]
