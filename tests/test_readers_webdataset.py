"""webdataset(): grouping members into samples as the webdataset package
does, read back sample for sample from shards its TarWriter/ShardWriter
wrote; exact resume; a repeated key under each error policy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import webdataset as wds

import streamdag as sd
from streamdag.errors import NodeError
from streamdag.testing import assert_resumes, run_epoch
from tests.support.readers import run_with_stats, samples_tar, write_tar


def wds_pipe(*paths, **kwargs):
    return sd.IterableWrapper([str(p) for p in paths]).open_files().load_from_tar().webdataset(
        **kwargs)


def test_groups_consecutive_members(tmp_path):
    path = write_tar(tmp_path / "s.tar", [
        ("a/001.jpg", b"J1"), ("a/001.seg.PNG", b"S1"), ("a/001.cls", b"1"),
        ("a/002.jpg", b"J2"), ("noext", b"?"), ("__meta__", b"m"), ("a/002.cls", b"2"),
    ])
    out = list(wds_pipe(path))
    assert out == [
        {"__key__": "a/001", "__url__": str(path), "jpg": b"J1", "seg.png": b"S1", "cls": b"1"},
        {"__key__": "a/002", "__url__": str(path), "jpg": b"J2", "cls": b"2"},
    ]


def test_samples_never_span_archives(tmp_path):
    """The same key at the end of one shard and the start of the next is two samples."""
    a = write_tar(tmp_path / "a.tar", [("k.txt", b"1")])
    b = write_tar(tmp_path / "b.tar", [("k.cls", b"2")])
    assert [s["__url__"] for s in wds_pipe(a, b)] == [str(a), str(b)]


def test_interop_with_webdataset_writer(tmp_path):
    """Shards written by webdataset's ShardWriter read back as webdataset reads them."""
    pattern = str(tmp_path / "shard-%03d.tar")
    rng = np.random.default_rng(0)
    with wds.ShardWriter(pattern, maxcount=7) as sink:
        for i in range(20):
            sink.write({"__key__": f"sample{i:04d}", "txt": f"caption {i}", "cls": i % 3,
                        "npy": rng.random((2, 3)), "json": {"i": i}, "bin": bytes([i]) * i})
    shards = sorted(str(p) for p in tmp_path.glob("shard-*.tar"))
    assert len(shards) == 3
    theirs = list(wds.WebDataset(shards, shardshuffle=False, empty_check=False))
    ours = list(sd.FileLister(str(tmp_path), masks="shard-*.tar").open_files().load_from_tar()
                .webdataset())
    assert len(ours) == len(theirs) == 20
    for mine, other in zip(ours, theirs, strict=True):
        other = {k: v for k, v in other.items() if k != "__local_path__"}
        assert mine == other
    decoded = list(sd.FileLister(str(tmp_path), masks="shard-*.tar").open_files()
                   .load_from_tar().webdataset().decode())
    theirs_decoded = list(wds.WebDataset(shards, shardshuffle=False, empty_check=False)
                          .decode())
    for mine, other in zip(decoded, theirs_decoded, strict=True):
        assert mine["txt"] == other["txt"] and mine["cls"] == other["cls"]
        assert mine["json"] == other["json"] and np.array_equal(mine["npy"], other["npy"])


def test_tar_writer_single_shard(tmp_path):
    path = str(tmp_path / "one.tar")
    with wds.TarWriter(path) as sink:
        for i in range(5):
            sink.write({"__key__": f"{i:03d}", "txt": f"t{i}", "cls": i})
    out = list(wds_pipe(path))
    assert [(s["__key__"], s["txt"], s["cls"]) for s in out] == [
        (f"{i:03d}", f"t{i}".encode(), str(i).encode()) for i in range(5)]


def test_webdataset_resumes_exactly(tmp_path):
    shards = [samples_tar(tmp_path / f"{k}.tar", 30, start=30 * k) for k in range(3)]
    dp = wds_pipe(*shards)
    full = assert_resumes(dp, stops=[0, 1, 2, 15, 31, 32, 33, 45, 64, 89, 90])
    assert [s["__key__"] for s in full] == [f"{i:06d}" for i in range(90)]


def test_webdataset_resumes_behind_shuffles(tmp_path):
    shards = [samples_tar(tmp_path / f"{k}.tar", 25, start=25 * k) for k in range(4)]
    dp = (sd.FileLister(str(tmp_path), masks="*.tar").shuffle().open_files().load_from_tar()
          .webdataset().shuffle(buffer_size=16))
    full = assert_resumes(dp, stops=[0, 7, 33, 50, 99, 100])
    assert sorted(s["__key__"] for s in full) == [f"{i:06d}" for i in range(100)]
    assert len(shards) == 4


def repeated_key_tar(tmp_path):
    return write_tar(tmp_path / "dup.tar", [
        ("001.jpg", b"a"), ("001.cls", b"1"),
        ("002.jpg", b"b"), ("002.jpg", b"b again"), ("002.cls", b"2"),
        ("003.jpg", b"c"), ("003.cls", b"3"),
    ])


@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_repeated_key_drops_that_sample(tmp_path, policy):
    dp = wds_pipe(repeated_key_tar(tmp_path), on_error=policy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = run_with_stats(dp)
    assert [s["__key__"] for s in out] == ["001", "003"]
    assert stats["webdataset"]["skipped"] == 1
    assert len(caught) == (1 if policy == "warn" else 0)


def test_repeated_key_raises_naming_archive_and_member(tmp_path):
    with pytest.raises(NodeError, match=r"webdataset node .*dup\.tar' member '002\.jpg': "
                                        r"ValueError: field 'jpg' appears twice"):
        run_epoch(wds_pipe(repeated_key_tar(tmp_path)))
