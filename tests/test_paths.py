"""torchdata's import paths (streamdag.datapipes.iter, streamdag.dataloader2)
and torchdata's arguments of DataLoader2 and the reading services: bad input
fails clearly, naming the class or argument."""

from __future__ import annotations

import importlib
import inspect
import warnings
from typing import Any

import pytest

import streamdag as sd
import streamdag.dataloader2 as dl2
import streamdag.datapipes.iter as it
from streamdag.dataloader2.adapter import Shuffle
from streamdag.reading_service.init_fns import takes_datapipe
from streamdag.runtime.node import WorkerContext


def tag_worker(datapipe: Any, worker_info: Any) -> Any:
    return datapipe.map(str)


def torch_style(worker_id: int) -> None:
    pass


def returns_nothing(datapipe: Any, worker_info: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("streamdag.datapipes.iter", "HuggingFaceHubReader"),
        ("streamdag.datapipes.iter", "IoPathFileOpener"),
        ("streamdag.datapipes.iter", "DataFrameMaker"),
        ("streamdag.dataloader2", "PauseIteration"),
    ],
)
def test_a_torchdata_name_not_provided_says_why_and_where(module: str, name: str) -> None:
    """An AttributeError naming the guide's section (hasattr and getattr with a
    default work); under ``from ... import`` an ImportError with the same text."""
    with pytest.raises(ImportError, match=rf"{name}.*migrating-from-torchdata.md"):
        exec(f"from {module} import {name}", {})
    namespace = importlib.import_module(module)
    with pytest.raises(AttributeError, match=rf"{name}.*'Every torchdata 0.9 name'"):
        getattr(namespace, name)
    assert not hasattr(namespace, name)


def test_an_unknown_name_is_a_plain_attribute_error() -> None:
    assert not hasattr(it, "NoSuchPipe")
    assert getattr(dl2, "NoSuchThing", None) is None
    with pytest.raises(ImportError, match="cannot import name"):
        exec("from streamdag.datapipes.iter import NoSuchPipe", {})


def test_star_imports_give_every_listed_name() -> None:
    for module in (
        "streamdag.datapipes.iter",
        "streamdag.dataloader2",
        "streamdag.dataloader2.reading_service",
        "streamdag.dataloader2.adapter",
    ):
        namespace: dict[str, Any] = {}
        exec(f"from {module} import *", namespace)
        assert set(importlib.import_module(module).__all__) <= set(namespace)


def test_class_style_names_take_the_method_signature_after_the_source() -> None:
    for name, method in [
        ("Mapper", sd.DataPipe.map),
        ("Batcher", sd.DataPipe.batch),
        ("Filter", sd.DataPipe.filter),
    ]:
        params = list(inspect.signature(getattr(it, name)).parameters)
        assert params == ["datapipe", *list(inspect.signature(method).parameters)[1:]]
        assert getattr(it, name).__name__ == name
    opener = list(inspect.signature(it.FileOpener).parameters)  # torchdata's, then open_files'
    assert opener == ["datapipe", "mode", "encoding", "length", "kwargs"]


def test_class_style_name_given_a_list_names_the_class() -> None:
    with pytest.raises(sd.ParamError, match="Mapper"):
        it.Mapper([1, 2], str)
    with pytest.raises(sd.ParamError, match="Zipper"):
        it.Zipper(it.IterableWrapper([1]), [2])
    with pytest.raises(TypeError, match="Concater needs at least one"):
        it.Concater()


def test_in_memory_cache_holder_refuses_a_size_in_megabytes() -> None:
    with pytest.raises(TypeError, match="max_items"):
        it.InMemoryCacheHolder(it.IterableWrapper([1]), 100)


def test_services_are_the_same_objects_as_streamdags() -> None:
    assert dl2.DataLoader2 is sd.DataLoader2
    assert dl2.MultiProcessingReadingService is sd.MultiProcessingReadingService
    assert dl2.ReadingServiceInterface is sd.ReadingService
    assert dl2.CheckpointableReadingServiceInterface is sd.ReadingService
    with pytest.warns(DeprecationWarning, match="MultiProcessingReadingService"):
        service = dl2.PrototypeMultiProcessingReadingService(2)
    assert isinstance(service, sd.MultiProcessingReadingService)


# -- DataLoader2(datapipe, datapipe_adapter_fn, reading_service) -----------------
def test_adapters_apply_in_order() -> None:
    pipe = sd.IterableWrapper(range(5))
    loader = sd.DataLoader2(pipe, [lambda dp: dp.map(str), lambda dp: dp.header(2)])
    assert list(loader) == ["0", "1"]


def test_a_service_given_second_is_still_the_service() -> None:
    service = sd.InProcessReadingService()
    loader = sd.DataLoader2(sd.IterableWrapper(range(3)), service)
    assert loader.reading_service is service and list(loader) == [0, 1, 2]


@pytest.mark.parametrize("bad", [3, [3], [lambda dp: [1, 2]]])
def test_bad_adapters_are_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="DataLoader2.*adapter"):
        sd.DataLoader2(sd.IterableWrapper(range(3)), bad)


def test_shuffle_adapter_turns_every_shuffle_off_and_adds_one_when_asked() -> None:
    left = sd.IterableWrapper(range(10)).shuffle()
    pipe = left.zip(sd.IterableWrapper(range(10)).shuffle(buffer_size=3)).shuffle()
    assert list(sd.DataLoader2(pipe, Shuffle(False))) == [(i, i) for i in range(10)]
    assert list(sd.DataLoader2(pipe, Shuffle(None), seed=0)) == list(sd.DataLoader2(pipe, seed=0))
    with pytest.warns(UserWarning, match="no shuffle"):
        loader = sd.DataLoader2(sd.IterableWrapper(range(50)), Shuffle(True), seed=0)
    assert sorted(loader) == list(range(50)) and list(loader) != list(range(50))


def test_shuffle_adapter_turns_shuffles_set_off_back_on() -> None:
    """As torchdata's: Shuffle(True) overrides set_shuffle(False) (the end of
    every torchtext dataset), Shuffle(False) overrides set_shuffle(True)."""
    off = sd.IterableWrapper(range(40)).shuffle(buffer_size=8).set_shuffle(False)
    assert list(sd.DataLoader2(off, seed=1)) == list(range(40))
    shuffled = list(sd.DataLoader2(off, Shuffle(True), seed=1))
    assert sorted(shuffled) == list(range(40)) and shuffled != list(range(40))
    on = sd.IterableWrapper(range(40)).shuffle(buffer_size=8)
    assert list(sd.DataLoader2(on, Shuffle(False), seed=1)) == list(range(40))


# -- the services' torchdata arguments -------------------------------------------
@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (tag_worker, True),
        (torch_style, False),
        (lambda *args: None, False),
        (lambda dp, info, extra=None: dp, True),
        (print, False),
    ],
)
def test_worker_init_fn_style_is_read_from_its_signature(fn: Any, expected: bool) -> None:
    assert takes_datapipe(fn) is expected


def test_torchdata_style_init_fn_returns_the_pipe_to_run() -> None:
    pipe = sd.IterableWrapper(range(4)).sharding_filter()
    service = sd.MultiProcessingReadingService(2, worker_init_fn=tag_worker)
    with sd.DataLoader2(pipe, reading_service=service) as loader:
        assert sorted(loader) == ["0", "1", "2", "3"]
    service = sd.MultiProcessingReadingService(2, worker_init_fn=torch_style)
    with sd.DataLoader2(pipe, reading_service=service) as loader:
        assert sorted(loader) == [0, 1, 2, 3]
    with sd.DataLoader2(
        pipe, reading_service=sd.InProcessReadingService(init_fn=tag_worker)
    ) as loader:
        assert list(loader) == ["0", "1", "2", "3"]


def test_an_init_fn_that_returns_no_pipe_is_named() -> None:
    service = sd.InProcessReadingService(init_fn=returns_nothing)
    with pytest.raises(TypeError, match=r"init_fn\(datapipe, worker_info\) must return"):
        sd.DataLoader2(sd.IterableWrapper(range(3)), reading_service=service)


def test_multiprocessing_takes_torchdatas_positional_order() -> None:
    service = sd.MultiProcessingReadingService(2, "spawn", 5, 6, torch_style)
    assert service.multiprocessing_context.get_start_method() == "spawn"
    assert (service.worker_prefetch_cnt, service.main_prefetch_cnt) == (5, 6)
    assert service.worker_init_fn is torch_style


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: sd.MultiProcessingReadingService(2, worker_prefetch_cnt=-1),
            "worker_prefetch_cnt",
        ),
        (lambda: sd.MultiProcessingReadingService(2, main_prefetch_cnt="x"), "main_prefetch_cnt"),
        (lambda: sd.InProcessReadingService(-1), "prefetch_cnt"),
        (lambda: sd.DistributedReadingService(0), "timeout"),
    ],
)
def test_bad_service_arguments_are_named(make: Any, match: str) -> None:
    with pytest.raises(sd.ParamError, match=match):
        make()


def test_in_process_prefetch_keeps_order_and_resumes() -> None:
    pipe = sd.IterableWrapper(range(20)).shuffle(buffer_size=5)
    service = sd.InProcessReadingService(prefetch_cnt=4)
    with sd.DataLoader2(pipe, reading_service=service, seed=3) as loader:
        it_ = iter(loader)
        head = [next(it_) for _ in range(7)]
        state = loader.state_dict()
        rest = list(it_)
    assert head + rest == list(sd.DataLoader2(pipe, seed=3))
    with sd.DataLoader2(
        pipe, reading_service=sd.InProcessReadingService(prefetch_cnt=4), seed=3
    ) as again:
        again.load_state_dict(state)
        assert list(again) == rest


def test_a_worker_context_given_first_is_still_the_worker() -> None:
    pipe = sd.IterableWrapper(range(6)).sharding_filter()
    service = sd.InProcessReadingService(WorkerContext(worker_id=1, num_workers=2))
    assert list(sd.DataLoader2(pipe, reading_service=service)) == [1, 3, 5]


def test_distributed_timeout_is_kept() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sd.DistributedReadingService(60).timeout == 60
