"""The reader/IO names ported from torchdata 0.9 give torchdata's elements in
torchdata's order: the same pipeline run by both libraries on the same files
(and the same local HTTP server)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import tarfile
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import streamdag as sd
from tests import test_graph_io_fns as fns
from tests.support import td_io

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchdata.datapipes.iter import FileOpener as TDFileOpener
    from torchdata.datapipes.iter import HttpReader as TDHttpReader
    from torchdata.datapipes.iter import IterableWrapper as TDIterableWrapper

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _same(ours: list[Any], theirs: list[Any]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert _plain(a) == _plain(b)


def _plain(value: Any) -> Any:
    """Tensors and protobuf containers as lists, so values compare with ==."""
    if isinstance(value, torch.Tensor):
        return (str(value.dtype), value.tolist())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)) or type(value).__name__.startswith("Repeated"):
        return [_plain(v) for v in value]
    return value


def _read(pair: tuple[str, Any]) -> tuple[str, bytes]:
    return pair[0], pair[1].read()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "a.txt.bz2").write_bytes(bz2.compress(b"one\ntwo\n"))
    (tmp_path / "lab.bz2").write_bytes(bz2.compress(b"lab\n"))
    (tmp_path / "b.txt.xz").write_bytes(lzma.compress(b"three\n"))
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(b"four\n"))
    with tarfile.open(tmp_path / "d.tar.gz", "w:gz") as tar:
        for name in ("m1.txt", "m2.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    return tmp_path


def _both(paths: list[str]) -> tuple[Any, Any]:
    return sd.IterableWrapper(paths).open_files("rb"), TDFileOpener(
        TDIterableWrapper(paths), mode="b"
    )


def test_load_from_bz2_and_xz(files: Path) -> None:
    paths = [str(files / "a.txt.bz2")]
    ours, theirs = _both(paths)
    _same([_read(p) for p in ours.load_from_bz2()], [_read(p) for p in theirs.load_from_bz2()])
    ours, theirs = _both([str(files / "b.txt.xz")])
    _same([_read(p) for p in ours.load_from_xz()], [_read(p) for p in theirs.load_from_xz()])


def test_load_from_bz2_strips_exactly_the_suffix(files: Path) -> None:
    """The deviation: torchdata's rstrip(".bz2") turned "lab.bz2" into "la"."""
    ours, theirs = _both([str(files / "lab.bz2")])
    assert [p for p, _ in ours.load_from_bz2()] == [str(files / "lab")]
    assert [p for p, _ in theirs.load_from_bz2()] == [str(files / "la")]


def test_extract_streams_and_archives(files: Path) -> None:
    paths = [str(files / n) for n in ("a.txt.bz2", "b.txt.xz", "c.txt.gz")]
    ours, theirs = _both(paths)
    _same([_read(p) for p in ours.extract()], [_read(p) for p in theirs.extract()])
    ours, theirs = _both([str(files / "d.tar.gz")])
    names = [(p, t.getnames()) for p, t in ours.extract()]
    assert names == [(p, t.getnames()) for p, t in theirs.extract()]
    ours, theirs = _both([str(files / "c.txt.gz")])
    _same(
        [_read(p) for p in ours.extract(file_type="GZIP")],
        [_read(p) for p in theirs.extract(file_type="gzip")],
    )


def _png(color: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (3, 2), (color, 10, 200)).save(out, format="PNG")
    return out.getvalue()


PAIRS = [
    ("a.txt", b"text"),
    ("b.json", b'{"k": [1, 2]}'),
    ("c.cls", b"7"),
    ("d.cls", b"x"),
    ("e.png", _png(30)),
    ("f.bin", b"\x00\x01"),
    ("_meta", b"under"),
    ("g", b"plain"),
    ("h.txt", b""),
]


def test_routed_decode_defaults() -> None:
    ours = list(sd.IterableWrapper(PAIRS).routed_decode())
    theirs = list(TDIterableWrapper(PAIRS).routed_decode())
    _same(ours, theirs)


def test_routed_decode_handlers_and_key_fn() -> None:
    handlers = (fns.upper_handler, fns.length_handler)
    ours = list(sd.IterableWrapper(PAIRS[:3]).routed_decode(*handlers, key_fn=fns.base_name))
    theirs = list(TDIterableWrapper(PAIRS[:3]).routed_decode(*handlers, key_fn=fns.base_name))
    _same(ours, theirs)


def test_routed_decode_reads_streams(files: Path) -> None:
    path = files / "x.json"
    path.write_text(json.dumps({"a": 1}))
    ours, theirs = _both([str(path)])
    _same(list(ours.routed_decode()), list(theirs.routed_decode()))


def test_check_hash(files: Path) -> None:
    paths = [str(files / n) for n in ("a.txt.bz2", "b.txt.xz")]
    digests = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}
    ours, theirs = _both(paths)
    _same(
        [_read(p) for p in ours.check_hash(digests)], [_read(p) for p in theirs.check_hash(digests)]
    )
    data = [(p, Path(p).read_bytes()) for p in paths]
    md5 = {p: hashlib.md5(d).hexdigest() for p, d in data}
    _same(
        list(sd.IterableWrapper(data).check_hash(md5, "md5")),
        list(TDIterableWrapper(data).check_hash(md5, "md5")),
    )


def test_check_hash_mismatch_is_a_runtime_error(files: Path) -> None:
    paths = [str(files / "a.txt.bz2")]
    ours, theirs = _both(paths)
    for pipe in (ours.check_hash({paths[0]: "0" * 64}), theirs.check_hash({paths[0]: "0" * 64})):
        with pytest.raises(RuntimeError, match="does not match"):
            list(pipe)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[td_io.FileServer]:
    web = tmp_path / "web"
    web.mkdir()
    for i in range(4):
        (web / f"f{i}.csv").write_bytes(f"row {i}\n".encode() * 3)
    srv = td_io.start_server(web)
    yield srv
    srv.shutdown()
    srv.server_close()


def test_read_from_http(server: td_io.FileServer) -> None:
    urls = [f"{server.url}/f{i}.csv" for i in range(3)]
    ours = [_read(p) for p in sd.IterableWrapper(urls).read_from_http(timeout=5)]
    theirs = [_read(p) for p in TDHttpReader(TDIterableWrapper(urls), timeout=5)]
    _same(ours, theirs)


def test_read_from_http_error_status(server: td_io.FileServer) -> None:
    urls = [f"{server.url}/missing.csv", f"{server.url}/f0.csv"]
    with pytest.raises(RuntimeError, match="missing.csv"):
        list(sd.IterableWrapper(urls).read_from_http())
    ours = [p for p, _ in sd.IterableWrapper(urls).read_from_http(skip_on_error=True)]
    theirs = [p for p, _ in TDIterableWrapper(urls).read_from_http(skip_on_error=True)]
    assert ours == theirs == urls[1:]


def _cached(lib: str, urls: list[str], root: Path) -> list[str]:
    where = partial(fns.cache_path, str(root))
    if lib == "td":
        cache = TDIterableWrapper(urls).on_disk_cache(filepath_fn=where)
        return list(TDHttpReader(cache).end_caching(mode="wb", same_filepath_fn=True))
    cache = sd.IterableWrapper(urls).on_disk_cache(filepath_fn=where)
    return list(cache.read_from_http().end_caching(mode="wb", same_filepath_fn=True))


@pytest.mark.parametrize("lib", ["sd", "td"])
def test_on_disk_cache_downloads_once(lib: str, server: td_io.FileServer, tmp_path: Path) -> None:
    """First run: the missing files are downloaded (a cached one is not);
    second run: no request. torchdata's order: written first, then cached."""
    if lib == "td":
        pytest.importorskip("portalocker")
    urls = [f"{server.url}/f{i}.csv" for i in range(4)]
    root = tmp_path / "cache"
    root.mkdir()
    (root / "f1.csv").write_bytes(b"row 1\n" * 3)
    first = _cached(lib, urls, root)
    assert sorted(server.hits) == ["/f0.csv", "/f2.csv", "/f3.csv"]
    assert [os.path.basename(p) for p in first] == ["f0.csv", "f2.csv", "f3.csv", "f1.csv"]
    server.hits.clear()
    second = _cached(lib, urls, root)
    assert server.hits == []
    assert second == sorted(first)
    assert (root / "f2.csv").read_bytes() == b"row 2\n" * 3
    assert not [p for p in os.listdir(root) if "promise" in p or p.endswith(".tmp")]


def test_on_disk_cache_same_output_as_torchdata(server: td_io.FileServer, tmp_path: Path) -> None:
    pytest.importorskip("portalocker")
    urls = [f"{server.url}/f{i}.csv" for i in range(4)]
    for run in range(2):
        ours = _cached("sd", urls, tmp_path / "ours")
        theirs = _cached("td", urls, tmp_path / "theirs")
        assert [os.path.basename(p) for p in ours] == [os.path.basename(p) for p in theirs], run


def test_on_disk_cache_one_to_many_lists_the_extracted_files(tmp_path: Path) -> None:
    """An archive whose branch yields its members: they are cached as a list."""
    archive = tmp_path / "arch.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("x.txt", "y.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(name[:1].encode()))
    out = tmp_path / "out"

    def run(lib: str) -> list[str]:
        start = sd.IterableWrapper if lib == "sd" else TDIterableWrapper
        cache = start([str(archive)]).on_disk_cache(
            filepath_fn=partial(fns.cache_path, str(out / lib))
        )
        opened = cache.open_files("rb") if lib == "sd" else TDFileOpener(cache, mode="b")
        members = opened.load_from_tar().map(partial(fns.member_to, str(out / lib)))
        return list(members.end_caching(mode="wb"))

    libs = ["sd", "td"] if _has("portalocker") else ["sd"]
    for lib in libs:
        first = run(lib)
        assert [os.path.basename(p) for p in first] == ["x.txt", "y.txt"]
        assert (out / lib / "arch.tar.torchdata_list").exists()
        assert run(lib) == first  # from the list, without reading the archive
        assert (out / lib / "x.txt").read_bytes() == b"x"


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_load_from_tfrecord(tmp_path: Path) -> None:
    pytest.importorskip("crc32c")
    protobuf = pytest.importorskip("google.protobuf")
    if int(protobuf.__version__.split(".")[0]) > 3:
        pytest.skip("torchdata 0.9's TFRecordLoader runs only with protobuf <= 3.20")
    records = td_io.examples(3) + [
        td_io.sequence_example(
            {"id": [9], "label": [b"seq"]},
            {"frames": [[1.0, 2.0], [3.0, 4.0]], "tokens": [[1, -2], [3, 4]]},
        )
    ]
    path = tmp_path / "r.tfrecord"
    path.write_bytes(td_io.tfrecord(records))
    ours, theirs = _both([str(path)])
    _same(list(ours.load_from_tfrecord()), list(theirs.load_from_tfrecord()))
    spec = {
        "frames": ((-1, 2), torch.float64),
        "tokens": ((2, 2), torch.int32),
        "id": ((1,), torch.int64),
        "label": ((1,), None),
    }
    seq_only = [records[-1]]
    path.write_bytes(td_io.tfrecord(seq_only))
    ours, theirs = _both([str(path)])
    _same(list(ours.load_from_tfrecord(spec)), list(theirs.load_from_tfrecord(spec)))
