"""Functions, a registered callable and a custom op that graph_io tests save
by reference. A module of its own so that CLI subprocesses can trust it
(``--trust tests.test_graph_io_fns``) without importing the tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import streamdag as sd
from streamdag.core.params import check_int
from streamdag.runtime.node import RuntimeNode


def double(x: int) -> int:
    return 2 * x


def is_even(x: int) -> bool:
    return x % 2 == 0


def parity(x: int) -> int:
    return x % 2


def add(x: int, y: int) -> int:
    return x + y


def scale(x: int, factor: int = 1, offset: int = 0) -> int:
    return x * factor + offset


def apply(fn: Any, x: int) -> Any:
    return fn(x)


def pair(x: int) -> list[int]:
    return [x, -x]


class Ops:
    @staticmethod
    def negate(x: int) -> int:
        return -x

    @classmethod
    def tag(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"

    def bound(self, x: int) -> int:  # only as an instance's bound method (refused)
        return x


class Tokenizer:
    """A callable object: saved by its registered name."""

    def __init__(self, sep: str) -> None:
        self.sep = sep

    def __call__(self, x: int) -> str:
        return f"{x}{self.sep}"


tokenize = sd.register_function("test_graph_io.tokenize", Tokenizer("|"))


@sd.register_function("test_graph_io.triple")
def triple(x: int) -> int:
    return 3 * x


@sd.register_op("test_graph_io.repeat_each")
class RepeatEach(RuntimeNode):
    """A user-defined op: each element ``times`` times."""

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        check_int("test_graph_io.repeat_each", "times", params.get("times"), minimum=1)

    def iterator(self) -> Iterator[Any]:
        times = self.params["times"]
        return (x for x in self.inputs[0].iterator() for _ in range(times))


def repeat_each(pipe: sd.DataPipe[Any], times: int, name: str | None = None) -> sd.DataPipe[Any]:
    from streamdag.datapipes.datapipe import make_node

    return sd.DataPipe(make_node("test_graph_io.repeat_each", {"times": times}, [pipe.node], name))


@sd.reader("test_graph_io.countdown")
def countdown(ctx: sd.ReaderContext, start: int, step: int = 1) -> Iterator[int]:
    """A user reader: saved by its registered name."""
    yield from range(start, 0, -step)


def shout(data: bytes) -> str:
    return data.decode().upper()


def first(pair: tuple[str, Any]) -> Any:
    return pair[0]


def keys(sample: dict[str, Any]) -> list[str]:
    return sorted(sample)


def drop_path(sample: dict[str, Any]) -> dict[str, Any]:
    """Decoded webdataset sample without its source path; arrays as lists."""
    return {
        k: v.tolist() if hasattr(v, "tolist") else v for k, v in sample.items() if k != "__url__"
    }


def field_png(batch: dict[str, Any]) -> list[Any]:
    return batch["png"].tolist()


@sd.register_op("test_graph_io.careless")
class Careless(RuntimeNode):
    """An op whose validate raises TypeError (not ParamError) on a bad param."""

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        params["n"] + 1

    def iterator(self) -> Iterator[Any]:
        return self.inputs[0].iterator()


# -- reader/IO ops ported from torchdata -----------------------------------
def read_pair(pair: tuple[str, Any]) -> tuple[str, bytes]:
    """(path, stream) -> (path, its bytes)."""
    return pair[0], pair[1].read()


def cache_path(root: str, url: str) -> str:
    """Where the on-disk cache keeps ``url``: ``root``/<its file name>."""
    return f"{root}/{url.rsplit('/', 1)[-1]}"


def base_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def tensors_as_lists(sample: dict[str, Any]) -> dict[str, Any]:
    return {k: v.tolist() if hasattr(v, "tolist") else v for k, v in sample.items()}


def upper_handler(key: str, data: bytes) -> Any:
    return data.upper() if key.endswith("txt") else None


def length_handler(key: str, data: bytes) -> int:
    return len(data)


def member_to(root: str, pair: tuple[str, Any]) -> tuple[str, Any]:
    """(archive/member, data) -> (``root``/member, data): where to write a member."""
    return f"{root}/{pair[0].rsplit('/', 1)[-1]}", pair[1]


# -- torchdata's remaining transform names (td-newops) ---------------------------
def as_row(x: int) -> dict[str, int]:
    return {"x": x}


def file_line(x: int) -> tuple[str, str]:
    """(file, line) pairs with empty lines, for lines_to_paragraphs."""
    return f"f{x // 7}", "" if x % 5 == 0 else str(x)


def identity(x: Any) -> Any:
    return x


def parity_name(x: int) -> str:
    return "odd" if x % 2 else "even"


def mod3(x: int) -> int:
    return x % 3


def size_of(x: int) -> int:
    """A token count for ints: 1 to 5."""
    return x % 5 + 1


#: token documents for pack and pad_collate: empty ones and ones longer than a row
TOKEN_DOCS = [list(range(2, 2 + n)) for n in (3, 0, 11, 5, 1, 7, 20, 2, 0, 6, 9, 4, 13, 1)]


def with_device(data: Any, device: Any) -> tuple[Any, Any]:
    """A ``pin_memory_fn``: the element with the device it was pinned for."""
    return data, device


def where_pinned(data: Any, device: Any) -> tuple[Any, int, str]:
    """A ``pin_memory_fn``: the element with the process and thread pinning it."""
    import os
    import threading

    return data, os.getpid(), threading.current_thread().name


def fail_on_three(data: Any, device: Any) -> Any:
    if data == 3:
        raise ValueError(f"cannot pin {data}")
    return data


def jitter(x: Any, rng: Any) -> tuple[Any, int]:
    """A map(rng=True) function: the element and a draw from its generator."""
    return x, int(rng.integers(1 << 30))


def with_size(batch: list[Any]) -> list[Any]:
    """A map_batches function: the batch doubled, then its size (outputs != inputs)."""
    return [2 * x for x in batch] + [len(batch)]


def below(x: int) -> list[int]:
    """A (shuffled_)flatmap function: 0 to 3 elements (none for multiples of 4)."""
    return [x * 10 + i for i in range(x % 4)]


async def later_double(x: int) -> int:
    """An async_map_batches function: 2 * x, after a yield to the event loop."""
    import asyncio

    await asyncio.sleep(0)
    return 2 * x


def random_sampler(data_source: Any, num_samples: int | None = None) -> Any:
    """A Sampler's sampler: torch's RandomSampler (from a module graph files trust)."""
    from torch.utils.data import RandomSampler

    return RandomSampler(data_source, num_samples=num_samples)
