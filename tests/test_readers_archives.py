"""load_from_tar and load_from_zip on archives the tests write: plain and
compressed tars, long names, non-seekable streams, member streams, exact
resume, and bad archives under each error policy."""

from __future__ import annotations

import io
import tarfile
import warnings
import zipfile

import pytest

import streamdag as sd
from streamdag.errors import NodeError
from streamdag.readers import MemberPath
from streamdag.testing import assert_resumes, run_epoch
from tests.support.readers import count_with_peak_memory, run_with_stats, write_tar

MEMBERS = [(f"dir/{i:03d}.bin", bytes([i]) * (i * 97 % 1500)) for i in range(12)]


def names_and_data(out):
    return [(p.member, d) for p, d in out]


def tar_pipe(*paths, **kwargs):
    return sd.IterableWrapper([str(p) for p in paths]).open_files(mode="b").load_from_tar(**kwargs)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_members_in_order_any_compression(tmp_path, mode):
    path = write_tar(tmp_path / f"a.tar.{mode[2:] or 'x'}", MEMBERS, mode)
    out = list(tar_pipe(path))
    assert names_and_data(out) == MEMBERS
    assert all(type(p) is MemberPath and p.archive == str(path) for p, _ in out)
    assert out[0][0] == f"{path}/dir/000.bin"


def test_tar_zstd_by_magic(tmp_path):
    import zstandard

    raw = write_tar(tmp_path / "a.tar", MEMBERS).read_bytes()
    (tmp_path / "a.bin").write_bytes(zstandard.ZstdCompressor().compress(raw))
    assert names_and_data(tar_pipe(tmp_path / "a.bin")) == MEMBERS


def test_tar_after_decompress_and_names_like_magic(tmp_path):
    """A .tar.gz already decompressed upstream is not decompressed twice, and
    a plain tar whose first file is named like bz2's magic stays a tar."""
    members = [("BZh9.txt", b"x"), *MEMBERS[:3]]
    gz = write_tar(tmp_path / "a.tar.gz", members, "w:gz")
    dp = sd.IterableWrapper([str(gz)]).open_files(mode="b").decompress().load_from_tar()
    assert names_and_data(dp) == members
    assert names_and_data(tar_pipe(write_tar(tmp_path / "b.tar", members))) == members


def test_tar_long_names_pax_and_dirs(tmp_path):
    """GNU long names, pax headers (non-ASCII, long paths) and directories."""
    long = "d/" + "x" * 150 + ".txt"
    path = tmp_path / "names.tar"
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT):
        with tarfile.open(path, "w", format=fmt) as tar:
            info = tarfile.TarInfo("d")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
            for name in ([long] if fmt != tarfile.USTAR_FORMAT else []) + ["d/é.txt", "d/s.txt"]:
                if fmt == tarfile.USTAR_FORMAT and not name.isascii():
                    continue
                info = tarfile.TarInfo(name)
                info.size = 3
                tar.addfile(info, io.BytesIO(b"abc"))
        with tarfile.open(path) as tar:
            expected = [(m.name, b"abc") for m in tar.getmembers() if m.isreg()]
        assert names_and_data(tar_pipe(path)) == expected, fmt


def test_tar_from_non_seekable_stream(tmp_path):
    """A stream that can neither seek nor peek (an HTTP body) reads the same."""
    raw = write_tar(tmp_path / "a.tar.gz", MEMBERS, "w:gz").read_bytes()

    class Pipe(io.RawIOBase):
        def __init__(self):
            self.buf = io.BytesIO(raw)

        def readable(self):
            return True

        def readinto(self, b):
            data = self.buf.read(min(len(b), 1000))
            b[: len(data)] = data
            return len(data)

    dp = sd.IterableWrapper([0]).map(lambda_free_open_pipe(Pipe)).load_from_tar()
    assert names_and_data(dp) == MEMBERS


def lambda_free_open_pipe(cls):
    def open_pipe(_):
        return "stream.tar.gz", cls()

    return open_pipe


def test_tar_member_streams_read_partially(tmp_path):
    """With streams=True the consumer may leave part of a member unread."""
    path = write_tar(tmp_path / "a.tar", MEMBERS)
    out = [(p.member, s.read(5)) for p, s in tar_pipe(path, streams=True)]
    assert out == [(n, d[:5]) for n, d in MEMBERS]


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_resumes_exactly(tmp_path, mode):
    paths = [write_tar(tmp_path / f"{k}.tar", MEMBERS[k * 4 : k * 4 + 4], mode) for k in range(3)]
    full = assert_resumes(tar_pipe(*paths).map(second), stops=list(range(13)))
    assert full == [d for _, d in MEMBERS]


def test_tar_resume_seeks_instead_of_reading(tmp_path):
    """The resume position is a byte offset: the restored reader seeks to it."""
    path = write_tar(tmp_path / "a.tar", MEMBERS)
    dp = tar_pipe(path).map(second)
    with sd.DataLoader2(dp, seed=0) as loader:
        it = iter(loader)
        for _ in range(5):
            next(it)
        state = loader.state_dict()
    (tar_state,) = [state["graph"]]
    assert tar_state["at"][0] == 5 and tar_state["at"][1] % 512 == 0 and tar_state["at"][1] > 0


def second(pair):
    return pair[1]


def test_tar_streams_mode_resumes_with_readlines(tmp_path):
    members = [(f"{k}.txt", "".join(f"{k}-{i}\n" for i in range(7)).encode()) for k in range(3)]
    path = write_tar(tmp_path / "lines.tar", members)
    dp = tar_pipe(path, streams=True).readlines(return_path=False, decode=True)
    full = assert_resumes(dp, stops=list(range(22)))
    assert full == [f"{k}-{i}" for k in range(3) for i in range(7)]


def test_large_tar_member_streams_in_bounded_memory(tmp_path):
    big = b"".join(b"%099d\n" % i for i in range(64_000))  # 6.4 MB
    path = write_tar(tmp_path / "big.tar", [("a.txt", b"small\n"), ("big.txt", big)])
    dp = tar_pipe(path, streams=True).readlines(return_path=False)
    count, peak = count_with_peak_memory(dp)
    assert count == 64_001
    assert peak < 1_500_000, f"peak {peak} bytes for a 6.4 MB member"


# -- bad archives ------------------------------------------------------------


def truncated_tar(tmp_path):
    raw = write_tar(tmp_path / "t.tar", MEMBERS[:6]).read_bytes()
    cut = raw.index(MEMBERS[3][1]) + 10  # inside the 4th member's data
    (tmp_path / "t.tar").write_bytes(raw[:cut])
    return tmp_path / "t.tar"


def bad_archives(tmp_path):
    good = write_tar(tmp_path / "good.tar", MEMBERS[:2])
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive" * 40)
    return [truncated_tar(tmp_path), empty, garbage, good]


@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_bad_tars_skipped_with_exact_counts(tmp_path, policy):
    """Truncated: its 3 whole members, then skipped; empty and garbage:
    skipped; the good archive after them is read in full."""
    archives = bad_archives(tmp_path)
    dp = tar_pipe(*archives, on_error=policy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = run_with_stats(dp)
    assert [p.member for p, _ in out] == [n for n, _ in MEMBERS[:3]] + [n for n, _ in MEMBERS[:2]]
    good_bytes = run_with_stats(tar_pipe(archives[3]))[1]["load_from_tar"]["bytes"]
    # the truncated archive is read to its end, the garbage one to its first header
    read = archives[0].stat().st_size + 0 + 512 + good_bytes
    assert stats["load_from_tar"] == {"skipped": 3, "bytes": read}
    assert len(caught) == (3 if policy == "warn" else 0)


@pytest.mark.parametrize(
    ("index", "pattern"),
    [
        (0, r"load_from_tar node .*/t\.tar' after member 3 .*'dir/003.bin' is truncated"),
        (1, r"empty\.tar.*empty file"),
        (2, r"garbage\.tar.*checksum"),
    ],
)
def test_bad_tar_raises_naming_node_file_and_member(tmp_path, index, pattern):
    dp = tar_pipe(bad_archives(tmp_path)[index])
    with pytest.raises(NodeError, match=pattern):
        run_epoch(dp)


def test_corrupt_gzip_tar(tmp_path):
    raw = bytearray(write_tar(tmp_path / "c.tar.gz", MEMBERS, "w:gz").read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 20] = bytes(20)
    (tmp_path / "c.tar.gz").write_bytes(bytes(raw))
    with pytest.raises(NodeError, match=r"load_from_tar node .*c\.tar\.gz"):
        run_epoch(tar_pipe(tmp_path / "c.tar.gz"))
    out, stats = run_with_stats(tar_pipe(tmp_path / "c.tar.gz", on_error="skip"))
    assert len(out) < len(MEMBERS) and stats["load_from_tar"]["skipped"] == 1


# -- zip ------------------------------------------------------------------------


def write_zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("dir/", b"")
        for name, data in members:
            zf.writestr(name, data)
    return path


def zip_pipe(*paths, **kwargs):
    return sd.IterableWrapper([str(p) for p in paths]).open_files(mode="b").load_from_zip(**kwargs)


def test_zip_members_and_streams(tmp_path):
    path = write_zip(tmp_path / "a.zip", MEMBERS)
    assert names_and_data(zip_pipe(path)) == MEMBERS
    assert [(p.member, s.read()) for p, s in zip_pipe(path, streams=True)] == MEMBERS


def test_zip_resumes(tmp_path):
    paths = [write_zip(tmp_path / f"{k}.zip", MEMBERS[k * 6 : k * 6 + 6]) for k in range(2)]
    assert assert_resumes(zip_pipe(*paths).map(second)) == [d for _, d in MEMBERS]


def test_zip_bad_member_and_bad_archives(tmp_path):
    """A member failing its CRC is skipped alone; a truncated or empty
    archive is skipped whole: 1 + 2 skips, the rest delivered."""
    path = write_zip(tmp_path / "crc.zip", [("a.txt", b"a" * 100), ("b.txt", b"b" * 100)])
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("a.txt")
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len("a.txt")
    raw[start : start + 4] = b"\x00\xff\x00\xff"  # corrupt the deflate stream of a.txt
    path.write_bytes(bytes(raw))
    truncated = tmp_path / "trunc.zip"
    truncated.write_bytes(write_zip(tmp_path / "full.zip", MEMBERS).read_bytes()[:300])
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    out, stats = run_with_stats(zip_pipe(path, truncated, empty, on_error="skip"))
    assert [p.member for p, _ in out] == ["b.txt"]
    assert stats["load_from_zip"]["skipped"] == 3
    with pytest.raises(NodeError, match=r"load_from_zip node .*crc\.zip.*member 'a\.txt'"):
        run_epoch(zip_pipe(path))
