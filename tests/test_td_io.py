"""Bad input and edge cases of the reader/IO ops ported from torchdata:
clear errors naming the op, the file and the record."""

from __future__ import annotations

import bz2
from functools import partial
from pathlib import Path

import pytest

import streamdag as sd
from streamdag.errors import NodeError, ParamError
from tests import test_graph_io_fns as fns
from tests.support import td_io

pytestmark = pytest.mark.timeout(60)


def test_tfrecord_values_without_protobuf(tmp_path: Path) -> None:
    pytest.importorskip("crc32c")
    path = tmp_path / "r.tfrecord"
    path.write_bytes(td_io.tfrecord(td_io.examples(2)))
    out = list(sd.IterableWrapper([str(path)]).open_files("rb").load_from_tfrecord())
    assert [fns.tensors_as_lists(s) for s in out] == [
        {"id": [0], "score": [0.0, 1.0], "name": [b"n0"]},
        {"id": [1], "score": [0.5, 1.0], "name": [b"n1"]},
    ]


@pytest.mark.parametrize(("offset", "what"), [(9, "length"), (14, "data")])
def test_tfrecord_bad_checksum_names_file_and_record(
    tmp_path: Path, offset: int, what: str
) -> None:
    pytest.importorskip("crc32c")
    data = bytearray(td_io.tfrecord(td_io.examples(3)))
    first = len(td_io.tfrecord(td_io.examples(1)))
    data[first + offset] ^= 0xFF  # inside record 1
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(data))
    pipe = sd.IterableWrapper([str(path)]).open_files("rb")
    with pytest.raises(NodeError, match=rf"bad.tfrecord.*record 1: the {what} fails"):
        list(pipe.load_from_tfrecord())
    kept = list(pipe.load_from_tfrecord(on_error="skip"))
    assert len(kept) == (2 if what == "data" else 1)  # a bad length loses the rest


def test_extract_unknown_suffix_and_bad_file_type() -> None:
    with pytest.raises(ParamError, match="extract: file_type"):
        sd.IterableWrapper([]).extract(file_type="rar")
    with pytest.raises(NodeError, match="extract.*'.bin'"):
        list(sd.IterableWrapper([("x.bin", b"data")]).extract())


def test_bz2_loader_rejects_non_pairs_and_corrupt_data() -> None:
    with pytest.raises(NodeError, match="load_from_bz2 expects"):
        list(sd.IterableWrapper(["x.bz2"]).load_from_bz2())
    good = ("g.bz2", bz2.compress(b"ok\n"))
    pipe = sd.IterableWrapper([("c.bz2", b"BZh9 not bz2"), good]).load_from_bz2(on_error="skip")
    assert [path for path, _ in pipe.readlines()] == ["g"]  # damage found as it is read


def test_check_hash_params_and_missing_entry() -> None:
    with pytest.raises(ParamError, match="check_hash: hash_type"):
        sd.IterableWrapper([]).check_hash({}, "sha1")
    with pytest.raises(NodeError, match="no hash given for file 'a'"):
        list(sd.IterableWrapper([("a", b"x")]).check_hash({}))


def test_end_caching_needs_a_cache_and_one_filepath_fn() -> None:
    with pytest.raises(ParamError, match="no on_disk_cache upstream"):
        sd.IterableWrapper([]).end_caching()
    cache = sd.IterableWrapper([]).on_disk_cache(filepath_fn=fns.base_name)
    with pytest.raises(ParamError, match="exclude each other"):
        cache.end_caching(filepath_fn=fns.base_name, same_filepath_fn=True)


def test_nested_caches_end_in_order(tmp_path: Path) -> None:
    """The second end_caching ends the nearest cache not ended yet."""
    src = tmp_path / "src.txt.bz2"
    src.write_bytes(bz2.compress(b"payload"))
    first = sd.IterableWrapper([str(src)]).on_disk_cache(
        filepath_fn=partial(fns.cache_path, str(tmp_path / "c1"))
    )
    copied = first.open_files("rb").end_caching(same_filepath_fn=True)
    second = copied.on_disk_cache(filepath_fn=partial(fns.cache_path, str(tmp_path / "c2")))
    done = (
        second.open_files("rb")
        .load_from_bz2()
        .end_caching(filepath_fn=partial(fns.cache_path, str(tmp_path / "c2")))
    )
    holders = [n for n in sd.Graph(done) if n.op == "on_disk_cache"]
    assert len(holders) == 2
    assert list(done) == [str(tmp_path / "c2" / "src.txt")]
    assert (tmp_path / "c2" / "src.txt").read_bytes() == b"payload"


def test_a_stale_promise_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    server = td_io.start_server(td_io.io_files(str(tmp_path)) / "web")
    try:
        root = tmp_path / "cache"
        root.mkdir()
        (root / "f0.txt.promise").write_text(f"{td_io_host()} 999999999")
        cache = sd.IterableWrapper([f"{server.url}/f0.txt"]).on_disk_cache(
            filepath_fn=partial(fns.cache_path, str(root))
        )
        out = list(cache.read_from_http().end_caching(same_filepath_fn=True))
        assert out == [str(root / "f0.txt")] and server.hits == ["/f0.txt"]
        assert not (root / "f0.txt.promise").exists()
    finally:
        server.shutdown()
        server.server_close()


def td_io_host() -> str:
    import socket

    return socket.gethostname()


def test_iterating_an_unended_cache_says_what_to_do() -> None:
    with pytest.raises(NodeError, match="call end_caching"):
        list(sd.IterableWrapper(["x"]).on_disk_cache())
