"""cycle() over nodes that buffer or replay their input resumes exactly in
every pass: a state taken in the second pass names the input's positions in
that pass, never where the first pass ended (which made a resume replay an
empty input: "input ended at item 0 while replaying"), and a state restored
upstream is used up in the resumed pass, never carried into the next one."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import streamdag as sd
from streamdag.testing import SERVICES, assert_resumes, run_epoch
from tests import test_graph_io_fns as fns
from tests.support import text_data
from tests.support.services import SERVICE_PARAMS

pytestmark = pytest.mark.filterwarnings("ignore::streamdag.errors.ShardingWarning")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tar shards of five webdataset samples (``.txt`` and ``.cls``) each."""
    root = tmp_path_factory.mktemp("shards")
    for shard in range(2):
        with tarfile.open(root / f"shard{shard}.tar", "w") as tar:
            for i in range(5):
                for ext, payload in (("txt", f"text {shard}-{i}"), ("cls", str(i))):
                    info = tarfile.TarInfo(f"s{shard}_{i}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload.encode()))
    (root / "lines.txt").write_text("".join(f"line {i} of the text\n" for i in range(7)))
    return root


def tar_samples(root: Path) -> sd.DataPipe[dict[str, Any]]:
    return sd.FileLister(str(root), masks="*.tar").open_files(mode="b").load_from_tar().webdataset()


def decoded_batches(root: Path, decode_late: bool) -> sd.DataPipe[list[dict[str, Any]]]:
    return (
        tar_samples(root)
        .decode(by_ext={"txt": fns.shout})
        .map(fns.drop_path)
        .shuffle(buffer_size=3, initial=2, decode_late=decode_late)
        .cycle(2)
        .batch(3)
    )


def src(n: int) -> sd.DataPipe[int]:
    return sd.IterableWrapper(range(n))


# Each example cycles twice over a node that buffers or replays its input.
CYCLES: dict[str, Callable[[Path], sd.DataPipe[Any]]] = {
    "shuffle_tar": lambda d: tar_samples(d).shuffle(buffer_size=4).cycle(2).map(fns.drop_path),
    # the decode-late rule moves the decode after the shuffle, or leaves it before
    "shuffle_tar_decode_late": lambda d: decoded_batches(d, decode_late=True),
    "shuffle_tar_decode_early": lambda d: decoded_batches(d, decode_late=False),
    "open_files_retrying": lambda d: (
        sd.FileLister(str(d), masks="*.tar")
        .open_files(mode="b", retry={"chunk_size": 64})
        .load_from_tar()
        .webdataset()
        .map(fns.drop_path)
        .shuffle(buffer_size=3)
        .cycle(2)
    ),
    "shuffle": lambda d: src(20).shuffle(buffer_size=8).cycle(2),
    "load_from_tar": lambda d: (
        sd.FileLister(str(d), masks="*.tar").open_files(mode="b").load_from_tar().map(fns.first)
    ).cycle(2),
    "readlines": lambda d: sd.FileLister(str(d), masks="*.txt").open_files().readlines().cycle(2),
    "flatmap": lambda d: src(9).flatmap(fns.pair).cycle(2),
    "prefetch": lambda d: src(12).prefetch(3).cycle(2),
    # a fork under cycle() is refused (its branches would be read twice): cycle first
    "fork": lambda d: (lambda a, b: a.map(fns.double).zip(b))(
        *src(9).shuffle(buffer_size=3).cycle(2).fork(2)
    ),
    "groupby": lambda d: (
        src(20).groupby(fns.mod3, buffer_size=5, group_size=3, guaranteed_group_size=1).cycle(2)
    ),
    "bucketbatch": lambda d: src(20).bucketbatch(3, batch_num=2, bucket_num=2).cycle(2),
    "max_token_bucketize": lambda d: (
        src(20).max_token_bucketize(8, len_fn=fns.size_of, max_len=4, buffer_size=6).cycle(2)
    ),
    "pack": lambda d: (
        sd.IterableWrapper(fns.TOKEN_DOCS).pack(8, strategy="bfd", buffer_size=5).cycle(2)
    ),
    "tokenize": lambda d: (
        sd.FileLister(str(d), masks="*.txt")
        .open_files()
        .readlines(return_path=False)
        .tokenize(text_data.tokenizer_json(d), batch_size=3)
        .cycle(2)
    ),
    "concat": lambda d: src(3).shuffle(buffer_size=2).concat(src(4)).cycle(2),
    # a pass that ends at once after a resume must not leave the state it
    # restored upstream for the next pass: a shuffle draining its buffer pulls nothing
    "concat_shuffled": lambda d: src(4).concat(src(3)).shuffle(buffer_size=3).cycle(2),
    "cycle_shuffled": lambda d: src(4).cycle(2).shuffle(buffer_size=3).cycle(2),
    "header": lambda d: src(12).shuffle(buffer_size=4).header(7).cycle(2),
    "mux": lambda d: src(5).mux(src(7).shuffle(buffer_size=3)).cycle(2),
    "repeat": lambda d: src(6).shuffle(buffer_size=3).repeat(2).cycle(2),
    "nested_cycle": lambda d: src(5).shuffle(buffer_size=3).cycle(2).cycle(2),
}


def second_pass_stops(count: int) -> list[int]:
    """Stops around the start of the second pass and within it, as well as the defaults."""
    half = count // 2
    return sorted({0, 1, half - 1, half, half + 1, half + 2, (3 * count) // 4, count - 1, count})


@pytest.mark.timeout(240)
@pytest.mark.parametrize("service", SERVICE_PARAMS)
@pytest.mark.parametrize("example", sorted(CYCLES))
def test_cycle_resumes_in_its_second_pass(example: str, service: str, shards: Path) -> None:
    pipe = CYCLES[example](shards)
    count = len(run_epoch(pipe, reading_service=SERVICES[service]))
    assert count >= 4, f"{example}: too small an example ({count} elements)"
    assert_resumes(pipe, second_pass_stops(count), reading_service=SERVICES[service])
