"""FileLister and open_files: listing any fsspec filesystem in a sorted,
deterministic order; opening lazily; missing files under each policy."""

from __future__ import annotations

import os
import warnings

import fsspec
import pytest

import streamdag as sd
from streamdag.errors import NodeError, ParamError
from streamdag.testing import assert_resumes, run_epoch
from tests.support.readers import count_with_peak_memory, run_with_stats


@pytest.fixture
def tree(tmp_path):
    for rel in ["b.txt", "a.txt", "c.jsonl", "sub/d.txt", "sub/deeper/e.txt", "sub/f.bin"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    return tmp_path


def test_lister_sorted_masked_flat(tree):
    """Only the root's own files, filtered by mask, in sorted order."""
    out = list(sd.FileLister(str(tree), masks="*.txt"))
    assert out == [str(tree / "a.txt"), str(tree / "b.txt")]


def test_lister_recursive_several_masks(tree):
    """torchdata's order: a directory's files, then its subdirectories."""
    out = list(sd.FileLister(str(tree), masks=["*.txt", "*.bin"], recursive=True))
    rel = [os.path.relpath(p, tree) for p in out]
    assert rel == ["a.txt", "b.txt", "sub/d.txt", "sub/f.bin", "sub/deeper/e.txt"]


def test_lister_roots_file_glob_and_list(tree):
    """A list of roots keeps its order; a file root is taken as is; globs expand."""
    out = list(sd.FileLister([str(tree / "sub"), str(tree / "c.jsonl"), str(tree / "*.txt")]))
    rel = [os.path.relpath(p, tree) for p in out]
    assert rel == ["sub/d.txt", "sub/f.bin", "c.jsonl", "a.txt", "b.txt"]


def test_lister_named_file_ignores_masks_and_empty_dir_lists_nothing(tree, tmp_path):
    assert list(sd.FileLister(str(tree / "c.jsonl"), masks="*.txt")) == [str(tree / "c.jsonl")]
    (tmp_path / "empty").mkdir()
    assert list(sd.FileLister(str(tmp_path / "empty"))) == []


def test_lister_missing_root_names_node(tmp_path):
    with pytest.raises(NodeError, match=r"file_lister node .*nope"):
        list(sd.FileLister(str(tmp_path / "nope")))


def test_lister_bad_params_fail_at_construction():
    with pytest.raises(ParamError, match="file_lister: masks"):
        sd.FileLister(".", masks=3)
    with pytest.raises(ParamError, match="file_lister: recursive"):
        sd.FileLister(".", recursive="yes")


def test_lister_resumes(tree):
    assert_resumes(sd.FileLister(str(tree), recursive=True))


def test_memory_filesystem_urls_and_storage_options():
    """Any fsspec URL: paths keep their protocol and open_files reads them."""
    fs = fsspec.filesystem("memory")
    for i in (2, 0, 1):
        fs.pipe(f"/sdtest/part-{i}.txt", f"line {i}\n".encode())
    dp = sd.FileLister("memory://sdtest", masks="part-*", storage_options={})
    paths = list(dp)
    assert paths == [f"memory:///sdtest/part-{i}.txt" for i in range(3)]
    lines = list(dp.open_files().readlines(return_path=False))
    assert lines == ["line 0", "line 1", "line 2"]


def test_open_files_inherits_lister_storage_options(tree):
    options = {"auto_mkdir": False}
    dp = sd.FileLister(str(tree), storage_options=options).shuffle().open_files()
    assert dp.node.params["storage_options"] == options


def test_open_files_text_mode(tree):
    out = list(
        sd.FileLister(str(tree), masks="a.txt").open_files(mode="r", encoding="utf-8").readlines()
    )
    assert out == [(str(tree / "a.txt"), "a.txt")]


def test_open_files_alias_and_pathlike(tree):
    dp = sd.IterableWrapper([tree / "a.txt"]).open_files_by_fsspec()
    ((path, stream),) = list(dp)
    assert path == str(tree / "a.txt")


@pytest.mark.parametrize(("policy", "yielded", "skipped"), [("skip", 2, 1), ("warn", 2, 1)])
def test_missing_file_skipped_and_counted(tree, policy, yielded, skipped):
    paths = [str(tree / "a.txt"), str(tree / "missing.txt"), str(tree / "b.txt")]
    dp = sd.IterableWrapper(paths).open_files(on_error=policy).readlines()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = run_with_stats(dp)
    assert len(out) == yielded
    assert stats["open_files"]["skipped"] == skipped
    assert len([w for w in caught if issubclass(w.category, sd.SkippedInputWarning)]) == (
        skipped if policy == "warn" else 0
    )


def test_missing_file_raises_with_node_and_path(tree):
    dp = sd.IterableWrapper([str(tree / "missing.txt")]).open_files(name="opener")
    with pytest.raises(NodeError, match=r"open_files node 'opener'.*missing\.txt.*FileNotFound"):
        run_epoch(dp)


def test_open_files_streams_without_reading_whole_file(tmp_path):
    """A file far larger than the memory limit streams through readlines."""
    big = tmp_path / "big.txt"
    line = "x" * 99 + "\n"
    with open(big, "w") as f:
        for _ in range(80_000):  # 8 MB
            f.write(line)
    dp = sd.IterableWrapper([str(big)]).open_files().readlines(return_path=False)
    count, peak = count_with_peak_memory(dp)
    assert count == 80_000
    assert peak < 2_000_000, f"peak {peak} bytes while streaming an 8 MB file"


@pytest.mark.s3
@pytest.mark.timeout(60)
def test_s3_listing_and_reading(tmp_path, s3_fs, s3_bucket, s3_storage_options):
    """s3:// through s3fs against the moto server: sorted listing, tar shards
    read with the lister's storage_options, exact resume."""
    from tests.support.readers import samples_tar

    for k in (1, 0):
        s3_fs.put_file(
            str(samples_tar(tmp_path / f"{k}.tar", 4, start=4 * k)), f"{s3_bucket}/shards/{k}.tar"
        )
    s3_fs.pipe_file(f"{s3_bucket}/shards/notes.txt", b"x")
    lister = sd.FileLister(
        f"s3://{s3_bucket}/shards", masks="*.tar", storage_options=s3_storage_options
    )
    assert list(lister) == [f"s3://{s3_bucket}/shards/{k}.tar" for k in (0, 1)]
    dp = lister.open_files(mode="b").load_from_tar().webdataset(keys="webdataset")
    full = assert_resumes(dp, stops=[0, 3, 8])
    assert [s["__key__"] for s in full] == [f"{i:06d}" for i in range(8)]


@pytest.mark.s3
@pytest.mark.timeout(60)
def test_s3_listing_a_prefix_is_one_request(s3_fs, s3_bucket, s3_proxy):
    """On an object store every round trip delays the first batch: listing a
    prefix asks no HEAD and no 'is it a directory' first."""
    from tests.support.s3 import storage_options

    for name in ("b.tar", "a.tar", "notes.txt"):
        s3_fs.pipe_file(f"{s3_bucket}/shards/{name}", b"x")
    lister = sd.FileLister(
        f"s3://{s3_bucket}/shards/",
        masks="*.tar",
        storage_options=storage_options(s3_proxy.endpoint, skip_instance_cache=True),
    )
    assert list(lister) == [f"s3://{s3_bucket}/shards/{k}.tar" for k in "ab"]
    assert [r.method for r in s3_proxy.requests] == ["GET"]
