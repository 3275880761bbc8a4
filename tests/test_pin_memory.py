"""pin_memory(): a thread of the main process pins each element, whatever the
service; order, length, errors, shutdown and the no-CUDA warning on any
machine; pinned tensors on a GPU machine (marked ``gpu``)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections import namedtuple
from itertools import islice

import pytest
import torch

import streamdag as sd
from streamdag.core.placement import find_boundary
from streamdag.datapipes.iter import PinMemory
from tests import test_graph_io_fns as fns

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")

SERVICES = {
    "in_process": sd.InProcessReadingService,
    "threads": functools.partial(sd.MultiThreadingReadingService, 2),
    "processes": functools.partial(sd.MultiProcessingReadingService, 2),
}
Pair = namedtuple("Pair", ["image", "label"])


def pin_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("streamdag-pin_memory")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_pins_in_a_thread_of_the_main_process(service: str) -> None:
    """Each element, once and in order, goes through pin_memory_fn in the
    node's own thread of this process, also when workers run the rest."""
    dp = (
        sd.IterableWrapper(range(20))
        .sharding_filter()
        .map(fns.double)
        .pin_memory(pin_memory_fn=fns.where_pinned, name="pin")
    )
    with sd.DataLoader2(dp, reading_service=SERVICES[service]()) as loader:
        out = list(loader)
    assert sorted(x for x, _, _ in out) == [2 * i for i in range(20)]
    if service == "in_process":
        assert [x for x, _, _ in out] == [2 * i for i in range(20)]
    assert {pid for _, pid, _ in out} == {os.getpid()}
    assert {name for _, _, name in out} == {f"streamdag-pin_memory-{dp.node.id}"}


def test_device_reaches_pin_memory_fn_and_length_is_kept() -> None:
    dp = sd.IterableWrapper(range(5)).pin_memory(torch.device("cuda", 1), fns.with_device)
    assert dp.node.params["device"] == "cuda:1"  # plain data in the graph
    assert len(dp) == 5
    assert list(dp) == [(i, "cuda:1") for i in range(5)]


def test_torchdata_class_name() -> None:
    dp = PinMemory(sd.IterableWrapper(range(3)), pin_memory_fn=fns.with_device)
    assert list(dp) == [(0, None), (1, None), (2, None)]


def test_bad_params_are_refused_naming_the_op() -> None:
    with pytest.raises(sd.ParamError, match="pin_memory: device must be None, a device name"):
        sd.IterableWrapper(range(3)).pin_memory(device=True)
    with pytest.raises(sd.ParamError, match="pin_memory: pin_memory_fn"):
        sd.IterableWrapper(range(3)).pin_memory(pin_memory_fn=3)


def explode_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
def test_upstream_error_keeps_its_message_and_node() -> None:
    dp = sd.IterableWrapper(range(5)).map(explode_on_three, name="late").pin_memory()
    with pytest.raises(sd.NodeError, match="map node 'late' raised ValueError: three is bad"):
        list(dp)


@pytest.mark.timeout(60)
def test_pin_memory_fn_error_names_the_pin_node() -> None:
    dp = sd.IterableWrapper(range(5)).pin_memory(pin_memory_fn=fns.fail_on_three, name="pin")
    with pytest.raises(sd.NodeError, match="cannot pin 3") as info:
        list(dp)
    assert "pin_memory node 'pin'" in str(info.value)


@pytest.mark.timeout(60)
def test_shutdown_mid_epoch_stops_the_thread() -> None:
    """Leaving an epoch early never hangs and leaves no thread behind."""
    dp = sd.IterableWrapper(range(100_000)).pin_memory(pin_memory_fn=fns.with_device)
    loader = sd.DataLoader2(dp)
    it = iter(loader)
    assert [x for x, _ in islice(it, 3)] == [0, 1, 2]
    assert pin_threads()
    loader.shutdown()
    assert all(not t.is_alive() for t in pin_threads())


def test_dataloader2_pin_memory_ends_the_main_process_part() -> None:
    """DataLoader2(pin_memory=True) appends one pin_memory node, which the
    plan runs in the main process: the workers' part ends at its input."""
    dp = sd.IterableWrapper(range(6)).sharding_filter().map(fns.double)
    loader = sd.DataLoader2(dp, pin_memory=True)
    node = loader.datapipe.node
    assert node.op == "pin_memory" and node.inputs == (dp.node,)
    assert find_boundary(node) is dp.node
    pinned = dp.pin_memory()
    assert sd.DataLoader2(pinned, pin_memory=True).datapipe.node is pinned.node


@pytest.mark.timeout(120)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dataloader2_pin_memory_keeps_order_and_resumes(service: str) -> None:
    """pin_memory=True changes neither the seeded order nor what a resumed
    loader yields: a state taken mid-epoch, loaded into a new loader,
    gives the rest of the epoch, each element once."""
    dp = sd.IterableWrapper(range(40)).shuffle(buffer_size=8).sharding_filter().map(fns.double)
    make = SERVICES[service]
    with sd.DataLoader2(dp, reading_service=make(), seed=5) as plain:
        expected = list(plain)
    with sd.DataLoader2(dp, reading_service=make(), seed=5, pin_memory=True) as first:
        it = iter(first)
        head = [next(it) for _ in range(13)]
        state = first.state_dict()
    assert head == expected[:13]
    with sd.DataLoader2(dp, reading_service=make(), seed=5, pin_memory=True) as second:
        second.load_state_dict(state)
        assert list(second) == expected[13:]


_WARN_ONCE = """
import warnings
import streamdag as sd
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    a = sd.IterableWrapper([(1, {"x": [2]})]).pin_memory()
    b = sd.DataLoader2(sd.IterableWrapper(range(4)), pin_memory=True)
    out = [list(a), list(a), list(b), list(b)]
assert out == [[(1, {"x": [2]})]] * 2 + [[0, 1, 2, 3]] * 2, out
print(len(seen), seen[0].message)
"""


@no_cuda
@pytest.mark.slow  # a fresh interpreter imports torch
@pytest.mark.timeout(120)
def test_without_cuda_elements_pass_with_one_warning() -> None:
    """Without CUDA the default pins nothing, and says so once per process."""
    result = subprocess.run(
        [sys.executable, "-c", _WARN_ONCE], capture_output=True, text=True, check=True
    )
    count, message = result.stdout.split(" ", 1)
    assert count == "1", result.stdout
    assert "pin_memory node" in message and "CUDA is not available" in message


def test_to_device_keeps_nesting_order_and_other_values() -> None:
    data = _batches()
    out = list(sd.IterableWrapper(data).to_device(torch.device("cpu")))
    assert len(out) == len(data)
    for got, want in zip(out, data, strict=True):
        _assert_same(got, want, lambda t: None)


@no_cuda
def test_to_device_cuda_without_cuda_is_a_clear_error() -> None:
    dp = sd.IterableWrapper([torch.ones(2)]).to_device("cuda", name="gpu")
    with pytest.raises(
        RuntimeError, match="to_device node 'gpu': to_device\\('cuda'\\) needs CUDA"
    ):
        list(dp)
    with pytest.raises(sd.ParamError, match="to_device: device must be a device name"):
        sd.IterableWrapper([1]).to_device(None)


# -- on a GPU machine ---------------------------------------------------------
def _batches() -> list[object]:
    gen = torch.Generator().manual_seed(0)
    return [
        (
            torch.rand(4, 3, generator=gen),
            {"label": torch.arange(4) + i, "meta": ["a", "b"], "id": i},
            [torch.ones(2) * i],
            Pair(torch.zeros(2, 2) + i, i),
        )
        for i in range(6)
    ]


def _assert_same(got: object, want: object, check: object) -> None:
    assert type(got) is type(want)
    if isinstance(want, torch.Tensor):
        check(got)  # type: ignore[operator]
        assert torch.equal(got.cpu(), want)
    elif isinstance(want, dict):
        assert got.keys() == want.keys()  # type: ignore[attr-defined]
        for key in want:
            _assert_same(got[key], want[key], check)  # type: ignore[index]
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)  # type: ignore[arg-type]
        for g, w in zip(got, want, strict=True):  # type: ignore[call-overload]
            _assert_same(g, w, check)
    else:
        assert got == want


def _is_pinned(t: torch.Tensor) -> None:
    assert t.is_pinned() and not t.is_cuda


@pytest.mark.gpu
@needs_gpu
@pytest.mark.timeout(120)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_gpu_outputs_are_pinned_nested_and_equal(service: str) -> None:
    """Every tensor of tuples, dicts, lists and named tuples comes out pinned,
    with the values it went in with; under worker processes too (pinned in
    the main process, not in a worker)."""
    data = _batches()
    dp = sd.IterableWrapper(data).sharding_filter()
    with sd.DataLoader2(dp, reading_service=SERVICES[service](), pin_memory=True) as loader:
        out = sorted(loader, key=lambda b: b[1]["id"])
    assert len(out) == len(data)
    for got, want in zip(out, data, strict=True):
        _assert_same(got, want, _is_pinned)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.timeout(120)
def test_gpu_non_blocking_copies_of_pinned_batches_are_exact() -> None:
    """The point of pinning: ``.to("cuda", non_blocking=True)`` from the
    pinned batch equals a synchronous copy of the input."""
    data = _batches()
    dp = sd.IterableWrapper(data).pin_memory()
    for got, want in zip(dp, data, strict=True):
        image = got[0].to("cuda", non_blocking=True)
        torch.cuda.current_stream().synchronize()
        assert torch.equal(image, want[0].to("cuda"))


def _big_batches(n: int) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Large enough (32 MB) that a copy not waited for is still running when
    the loop's first kernel reads it."""
    gen = torch.Generator().manual_seed(1)
    return [
        (torch.rand(8, 1024, 1024, generator=gen), {"label": torch.arange(8) + i}) for i in range(n)
    ]


@pytest.mark.gpu
@needs_gpu
@pytest.mark.timeout(300)
@pytest.mark.parametrize("loop_stream", ["default", "own"])
def test_gpu_to_device_is_synchronized_with_the_loop_stream(loop_stream: str) -> None:
    """CUDA tensors equal to a synchronous copy of the input, read at once by
    a kernel on the loop's current stream (the default one or its own),
    without a synchronize: the stream waits for the side-stream copy."""
    data = _big_batches(6)
    dp = sd.IterableWrapper(data).to_device("cuda")
    stream = torch.cuda.Stream() if loop_stream == "own" else torch.cuda.current_stream()
    sums = []
    with torch.cuda.stream(stream):
        for got, want in zip(dp, data, strict=True):
            assert got[0].is_cuda and got[1]["label"].is_cuda
            sums.append((got[0] * 2).sum(dim=(1, 2)))  # queued on the loop's stream
            assert torch.equal(got[1]["label"], want[1]["label"].to("cuda"))
    stream.synchronize()  # the check's own copies below run on the default stream
    for total, (image, _) in zip(sums, data, strict=True):
        assert torch.allclose(total.cpu(), (image.to("cuda") * 2).sum(dim=(1, 2)).cpu())
