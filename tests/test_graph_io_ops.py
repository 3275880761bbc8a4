"""Reader, decoder and placement ops round-trip through graph_io like the
transforms do (test_graph_io.py): same document, same elements for a seed."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import streamdag as sd
from streamdag.datapipes import registered_ops
from streamdag.graph_io import dumps, loads_node
from streamdag.graph_io.document import op_origin
from streamdag.testing import assert_round_trips
from tests import test_graph_io_fns as fns
from tests.support import td_io, text_data
from tests.test_graph_io import PIPELINES

TRUST = ["tests.test_graph_io_fns"]
INTERNAL_OPS = {"_worker_stream"}  # made by worker services at run time, never saved


def _png(color: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (color, 0, 0)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small files of every kind the readers take."""
    root = tmp_path_factory.mktemp("data")
    (root / "a.txt").write_text("alpha\nbeta\ngamma\n")
    (root / "b.txt").write_text("delta\n")
    (root / "rows.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(4)))
    (root / "rows.csv").write_text("x,y\n1,2\n3,4\n")
    (root / "c.txt.gz").write_bytes(gzip.compress(b"one\ntwo\n"))
    (root / "d1.json").write_text('{"doc": 1, "tags": ["a"]}')
    (root / "d2.json").write_text("[2, null]")
    members = {
        f"s{i}.{ext}": payload
        for i in range(3)
        for ext, payload in (
            ("txt", f"text {i}".encode()),
            ("json", json.dumps([i]).encode()),
            ("png", _png(40 * i)),
        )
    }
    with tarfile.open(root / "shard.tar", "w") as tar:
        for member, payload in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with zipfile.ZipFile(root / "archive.zip", "w") as zf:
        zf.writestr("z1.txt", "zip one")
        zf.writestr("z2.txt", "zip two")
    return root


def files(root: Path, mask: str) -> sd.DataPipe[str]:
    return sd.FileLister(str(root), masks=mask)


OPS: dict[str, Callable[[Path], sd.DataPipe[Any]]] = {
    "file_lister": lambda d: sd.FileLister(str(d), masks=["*.txt", "*.csv"], recursive=True),
    "open_files": lambda d: files(d, "*.txt").open_files().readlines(),
    "readlines": lambda d: files(d, "*.txt").shuffle(2).open_files().readlines(strip_newline=False),
    "parse_jsonl": lambda d: files(d, "*.jsonl").open_files().parse_jsonl(),
    "parse_csv": lambda d: files(d, "*.csv").open_files().parse_csv(delimiter=","),
    "decompress": lambda d: files(d, "*.gz").open_files(mode="b").decompress().readlines(),
    "load_from_tar": lambda d: (
        files(d, "*.tar").open_files(mode="b").load_from_tar().map(fns.first)
    ),
    "load_from_zip": lambda d: files(d, "*.zip").open_files(mode="b").load_from_zip(),
    "webdataset": lambda d: (
        files(d, "*.tar").open_files(mode="b").load_from_tar().webdataset().map(fns.keys)
    ),
    "decode": lambda d: (
        files(d, "*.tar")
        .open_files(mode="b")
        .load_from_tar()
        .webdataset()
        .decode(by_ext={"txt": fns.shout}, image="numpy")
        .map(fns.drop_path)
    ),
    "decode_images": lambda d: (
        files(d, "*.tar")
        .open_files(mode="b")
        .load_from_tar()
        .webdataset(keys="webdataset")
        .batch(3)
        .decode_images(
            backend="pillow", size=[2, 2], mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], field="png"
        )
        .map(fns.field_png)
    ),
    "open_files_retrying": lambda d: (
        files(d, "*.txt").open_files(retry={"chunk_size": 4}).readlines()
    ),
    "main_process": lambda d: files(d, "*.txt").main_process(),
    "test_graph_io.countdown": lambda d: fns.countdown(start=7, step=2).shuffle(3),
    # reader/IO ops ported from torchdata (files: tests/support/td_io.py)
    "routed_decode": lambda d: files(d, "*.txt").open_files("rb").routed_decode(),
    "extract": lambda d: files(io_files(d), "*.bz2").open_files("rb").extract().readlines(),
    "load_from_bz2": lambda d: (
        files(io_files(d), "*.bz2").open_files("rb").load_from_bz2().readlines()
    ),
    "load_from_xz": lambda d: (
        files(io_files(d), "*.xz").open_files("rb").load_from_xz().readlines()
    ),
    "load_from_tfrecord": lambda d: tfrecords(d).load_from_tfrecord().map(fns.tensors_as_lists),
    "check_hash": lambda d: (
        files(d, "*.txt").open_files("rb").check_hash(hashes(d, "*.txt"), "md5").readlines()
    ),
    "read_from_http": lambda d: sd.IterableWrapper(urls(d)).read_from_http().readlines(),
    "on_disk_cache": lambda d: cached_download(d),
    "end_caching": lambda d: cached_download(d),
    "parse_csv_as_dict": lambda d: files(d, "*.csv").open_files().parse_csv_as_dict(),
    "parse_json_files": lambda d: files(d, "*.json").open_files(mode="b").parse_json_files(),
    "list_files": lambda d: sd.IterableWrapper([str(d), str(d / "a.txt"), str(d)]).list_files(
        masks=["*.txt", "*.json"]
    ),
    # text and LLM pipelines (files: tests/support/text_data.py)
    "tokenize": lambda d: (
        files(d, "*.txt")
        .open_files()
        .readlines(return_path=False)
        .tokenize(text_data.tokenizer_json(d), batch_size=2)
    ),
    "load_parquet": lambda d: (
        files(text_data.parquet_folder(d), "*.parquet")
        .open_files(mode="b")
        .load_parquet(columns=["id"])
    ),
    # torchdata's StreamReader
    "read_from_stream": lambda d: files(d, "*.txt").open_files(mode="b").read_from_stream(4),
}


def io_files(root: Path) -> Path:
    return td_io.io_files(str(root))


def tfrecords(root: Path) -> sd.DataPipe[Any]:
    pytest.importorskip("crc32c")  # the tfrecord extra
    return files(io_files(root), "*.tfrecord").open_files("rb")


def hashes(root: Path, mask: str) -> dict[str, str]:
    return {str(p): hashlib.md5(p.read_bytes()).hexdigest() for p in root.glob(mask)}


def urls(root: Path) -> list[str]:
    server = td_io.served(str(io_files(root) / "web"))
    return [f"{server.url}/f{i}.txt" for i in range(4)]


def cached_download(root: Path) -> sd.DataPipe[Any]:
    where = partial(fns.cache_path, str(io_files(root) / "cache"))
    # sharded: two workers racing for one file make its order depend on timing
    cache = sd.IterableWrapper(urls(root)).sharding_filter().on_disk_cache(filepath_fn=where)
    return cache.read_from_http().end_caching(same_filepath_fn=True).open_files("rb").readlines()


def test_every_registered_op_has_a_pipeline() -> None:
    """Together with test_graph_io.PIPELINES, every op registered at import is covered."""
    missing = {
        op
        for op in set(registered_ops) - set(OPS) - set(PIPELINES) - INTERNAL_OPS
        if not (op_origin(op) or "").startswith("tests.")  # ops other tests register
    }
    assert not missing, sorted(missing)


@pytest.mark.parametrize("op", sorted(OPS))
def test_reader_and_decoder_ops_round_trip(op: str, data: Path) -> None:
    pipe = OPS[op](data)
    assert any(n.op == op for n in sd.Graph(pipe))
    assert_round_trips(pipe, TRUST, seed=2)


def test_user_reader_is_saved_by_name_with_its_module() -> None:
    doc = json.loads(dumps(fns.countdown(start=3, name="cd"), "json"))
    assert doc["nodes"][0]["op"] == "test_graph_io.countdown"
    assert doc["nodes"][0]["params"] == {"start": 3, "on_error": "raise"}
    assert doc["requires"] == {"ops": {"test_graph_io.countdown": "tests.test_graph_io_fns"}}


def test_storage_options_are_saved_as_plain_data(data: Path) -> None:
    """fsspec options are params like any other (so keep secrets out of shared graphs)."""
    pipe = sd.FileLister(str(data), masks="*.txt", storage_options={"auto_mkdir": False})
    doc = json.loads(dumps(pipe, "json"))
    assert doc["nodes"][0]["params"]["storage_options"] == {"dict": {"auto_mkdir": False}}
    assert loads_node(dumps(pipe)).params["storage_options"] == {"auto_mkdir": False}
