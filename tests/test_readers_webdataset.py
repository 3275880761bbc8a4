"""webdataset(): grouping members into samples as the webdataset package
does, read back sample for sample from shards its TarWriter/ShardWriter
wrote; exact resume; a repeated key under each error policy; samples cut by
a damaged archive or stream upstream."""

from __future__ import annotations

import gzip
import tarfile
import warnings
import zipfile
from functools import partial
from operator import itemgetter

import numpy as np
import pytest
import webdataset as wds

import streamdag as sd
from streamdag.errors import NodeError
from streamdag.testing import assert_resumes, run_epoch
from tests.support.readers import run_with_stats, samples_tar, write_tar


def wds_pipe(*paths, **kwargs):
    dp = sd.IterableWrapper([str(p) for p in paths]).open_files(mode="b").load_from_tar()
    return dp.webdataset(keys="webdataset", **kwargs)


def test_groups_consecutive_members(tmp_path):
    path = write_tar(
        tmp_path / "s.tar",
        [
            ("a/001.jpg", b"J1"),
            ("a/001.seg.PNG", b"S1"),
            ("a/001.cls", b"1"),
            ("a/002.jpg", b"J2"),
            ("noext", b"?"),
            ("__meta__", b"m"),
            ("a/002.cls", b"2"),
        ],
    )
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
            sink.write(
                {
                    "__key__": f"sample{i:04d}",
                    "txt": f"caption {i}",
                    "cls": i % 3,
                    "npy": rng.random((2, 3)),
                    "json": {"i": i},
                    "bin": bytes([i]) * i,
                }
            )
    shards = sorted(str(p) for p in tmp_path.glob("shard-*.tar"))
    assert len(shards) == 3
    theirs = list(wds.WebDataset(shards, shardshuffle=False, empty_check=False))
    ours = list(
        sd.FileLister(str(tmp_path), masks="shard-*.tar")
        .open_files(mode="b")
        .load_from_tar()
        .webdataset(keys="webdataset")
    )
    assert len(ours) == len(theirs) == 20
    for mine, other in zip(ours, theirs, strict=True):
        other = {k: v for k, v in other.items() if k != "__local_path__"}
        assert mine == other
    decoded = list(
        sd.FileLister(str(tmp_path), masks="shard-*.tar")
        .open_files(mode="b")
        .load_from_tar()
        .webdataset(keys="webdataset")
        .decode()
    )
    theirs_decoded = list(wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode())
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
        (f"{i:03d}", f"t{i}".encode(), str(i).encode()) for i in range(5)
    ]


def test_webdataset_resumes_exactly(tmp_path):
    shards = [samples_tar(tmp_path / f"{k}.tar", 30, start=30 * k) for k in range(3)]
    dp = wds_pipe(*shards)
    full = assert_resumes(dp, stops=[0, 1, 2, 15, 31, 32, 33, 45, 64, 89, 90])
    assert [s["__key__"] for s in full] == [f"{i:06d}" for i in range(90)]


def test_webdataset_resumes_behind_shuffles(tmp_path):
    shards = [samples_tar(tmp_path / f"{k}.tar", 25, start=25 * k) for k in range(4)]
    dp = (
        sd.FileLister(str(tmp_path), masks="*.tar")
        .shuffle()
        .open_files(mode="b")
        .load_from_tar()
        .webdataset(keys="webdataset")
        .shuffle(buffer_size=16)
    )
    full = assert_resumes(dp, stops=[0, 7, 33, 50, 99, 100])
    assert sorted(s["__key__"] for s in full) == [f"{i:06d}" for i in range(100)]
    assert len(shards) == 4


def repeated_key_tar(tmp_path):
    return write_tar(
        tmp_path / "dup.tar",
        [
            ("001.jpg", b"a"),
            ("001.cls", b"1"),
            ("002.jpg", b"b"),
            ("002.jpg", b"b again"),
            ("002.cls", b"2"),
            ("003.jpg", b"c"),
            ("003.cls", b"3"),
        ],
    )


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
    with pytest.raises(
        NodeError,
        match=r"webdataset node .*dup\.tar' member '002\.jpg': "
        r"ValueError: field 'jpg' appears twice",
    ):
        run_epoch(wds_pipe(repeated_key_tar(tmp_path)))


# -- samples cut by damage upstream -------------------------------------------------

KEY_AND_CLASS = itemgetter("__key__", "cls")  # a user's map that needs every field


def cut_shard(tmp_path, member: str, where: str = "data"):
    """8 samples (txt + cls), the file cut in the data or the header of ``member``."""
    path = samples_tar(tmp_path / "cut.tar", 8)
    with tarfile.open(path) as tar:
        info = tar.getmember(member)
    cut = info.offset_data if where == "data" else info.offset + 100
    path.write_bytes(path.read_bytes()[:cut])
    return path


def classes(keys):
    return [(f"{i:06d}", str(i % 10).encode()) for i in keys]


@pytest.mark.parametrize(
    ("member", "where", "kept"),
    [
        ("000005.cls", "data", range(5)),  # sample 5 lost its cls: dropped
        ("000005.txt", "data", range(5)),  # sample 4 was whole: kept
        ("000005.cls", "header", range(5)),  # no member known: the last sample goes
    ],
)
@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_truncated_tar_drops_the_sample_it_cut(tmp_path, member, where, kept, policy):
    """Only whole samples reach the user's map; the cut counts one skip, on
    load_from_tar (warned there under warn), none on webdataset."""
    good = samples_tar(tmp_path / "good.tar", 3, start=100)
    dp = (
        sd.IterableWrapper([str(cut_shard(tmp_path, member, where)), str(good)])
        .open_files(mode="b")
        .load_from_tar(on_error=policy)
        .webdataset(keys="webdataset")
        .map(KEY_AND_CLASS)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = run_with_stats(dp)
    assert out == classes([*kept, 100, 101, 102])
    assert stats["load_from_tar"]["skipped"] == 1 and stats["webdataset"]["skipped"] == 0
    assert [str(w.message).split(" failed on ")[0] for w in caught] == (
        ["load_from_tar node " + dp.node.inputs[0].inputs[0].id] if policy == "warn" else []
    )


def test_stream_cut_by_decompress_drops_the_partial_sample(tmp_path):
    """A .tar.gz of two gzip members, the second corrupt: decompress (skip)
    passes on the first; load_from_tar drops the member it was reading and
    webdataset the sample it belonged to, both without counting again."""
    raw = samples_tar(tmp_path / "s.tar", 8).read_bytes()
    with tarfile.open(tmp_path / "s.tar") as tar:
        split = tar.getmember("000005.cls").offset_data
    second = bytearray(gzip.compress(raw[split:], mtime=0))
    second[20:30] = bytes(10)
    (tmp_path / "s.tar.gz").write_bytes(gzip.compress(raw[:split], mtime=0) + bytes(second))
    dp = (
        sd.IterableWrapper([str(tmp_path / "s.tar.gz")])
        .open_files(mode="b")
        .decompress(on_error="skip")
        .load_from_tar()
        .webdataset(keys="webdataset")
        .map(KEY_AND_CLASS)
    )
    out, stats = run_with_stats(dp)
    assert out == classes(range(5))
    assert stats["decompress"]["skipped"] == 1
    assert stats["load_from_tar"]["skipped"] == 0 and stats["webdataset"]["skipped"] == 0


def test_zip_member_failing_its_crc_drops_its_sample(tmp_path):
    path = tmp_path / "s.zip"
    with zipfile.ZipFile(path, "w") as zf:  # stored: the data is in the file as is
        for i in range(5):
            zf.writestr(f"{i:06d}.txt", f"text {i}")
            zf.writestr(f"{i:06d}.cls", str(i))
    raw = path.read_bytes()
    at = raw.index(b"text 3")
    path.write_bytes(raw[:at] + b"TEXT 3" + raw[at + 6 :])
    dp = (
        sd.IterableWrapper([str(path)])
        .open_files(mode="b")
        .load_from_zip(on_error="skip")
        .webdataset(keys="webdataset")
        .map(KEY_AND_CLASS)
    )
    out, stats = run_with_stats(dp)
    assert out == classes([0, 1, 2, 4])
    assert stats["load_from_zip"]["skipped"] == 1 and stats["webdataset"]["skipped"] == 0


def cut_pipe(tmp_path):
    good = [samples_tar(tmp_path / f"g{k}.tar", 4, start=100 * (k + 1)) for k in range(2)]
    paths = [str(cut_shard(tmp_path, "000005.cls")), *map(str, good)]
    return (
        sd.IterableWrapper(paths)
        .sharding_filter()
        .open_files(mode="b")
        .load_from_tar(on_error="skip")
        .webdataset(keys="webdataset")
        .map(KEY_AND_CLASS)
    )


def test_cut_sample_dropped_exactly_on_resume(tmp_path):
    full = assert_resumes(cut_pipe(tmp_path), stops=list(range(14)))
    assert full == classes([*range(5), *range(100, 104), *range(200, 204)])


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "service", [sd.MultiThreadingReadingService, sd.MultiProcessingReadingService]
)
def test_cut_sample_dropped_in_workers_and_on_resume(tmp_path, service):
    full = assert_resumes(
        cut_pipe(tmp_path), stops=[0, 3, 6, 13], reading_service=partial(service, 2)
    )
    assert sorted(full) == classes([*range(5), *range(100, 104), *range(200, 204)])
