"""decompress on damaged files: nothing of a gzip member, a zstd or lz4
frame or a bz2/xz stream reaches the reader before that unit's checksum
passed (up to ``verify_limit``), a truncated file is an error in every
format, and under skip/warn every verified unit before the damage is kept,
with no partial line after it."""

from __future__ import annotations

import bz2
import gzip
import itertools
import json
import lzma
import warnings
from functools import partial

import lz4.frame
import pytest
import zstandard

import streamdag as sd
from streamdag.errors import NodeError, ParamError
from streamdag.testing import assert_resumes
from tests.support.readers import count_with_peak_memory, run_with_stats

ROWS = [{"i": i, "text": "w" * (i % 61)} for i in range(12_000)]
TEXT = b"".join(json.dumps(row).encode() + b"\n" for row in ROWS)
UNIT = {
    "gz": "gzip member",
    "bz2": "bz2 stream",
    "xz": "xz stream",
    "zst": "zstd frame",
    "lz4": "lz4 frame",
}
CHECKED = {  # each format with its checksums on
    "gz": partial(gzip.compress, mtime=0),
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zst": zstandard.ZstdCompressor(write_checksum=True).compress,
    "lz4": partial(lz4.frame.compress, content_checksum=True),
}
UNCHECKED = {"zst": zstandard.ZstdCompressor().compress, "lz4": lz4.frame.compress}


def cuts(n: int) -> list[int]:
    """Where TEXT is split into ``n`` units: never at a line end."""
    return [len(TEXT) * k // n + 7 for k in range(1, n)]


def units_file(path, compress, damage: str | None = None, bad: int = 2):
    """TEXT in four units, each compressed on its own; ``damage`` (zeros in
    the middle, or the file cut there) hits unit number ``bad`` (0-based)."""
    bounds = [0, *cuts(4), len(TEXT)]
    parts = [compress(TEXT[a:b]) for a, b in itertools.pairwise(bounds)]
    if damage is not None:
        unit = parts[bad]
        mid = len(unit) // 2
        if damage == "zeros":
            parts[bad] = unit[:mid] + bytes(50) + unit[mid + 50 :]
        else:
            parts = [*parts[:bad], unit[:mid]]
    path.write_bytes(b"".join(parts))
    return path


def rows_before(unit: int) -> list:
    """The rows whose line lies wholly in the units before ``unit``."""
    end = cuts(4)[unit - 1] if unit else 0
    return [json.loads(line) for line in TEXT[:end].split(b"\n")[:-1]]


def jsonl(*paths, policy="raise", **kwargs):
    dp = sd.IterableWrapper([str(p) for p in paths]).open_files(mode="b")
    return dp.decompress(on_error=policy, **kwargs).parse_jsonl(on_error=policy)


def until_error(dp):
    """The elements an epoch yields before its error, and the error."""
    out = []
    with pytest.raises(NodeError) as caught:
        for item in dp:
            out.append(item)
    return out, str(caught.value)


@pytest.mark.parametrize("damage", ["zeros", "truncated"])
@pytest.mark.parametrize("suffix", sorted(CHECKED))
@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_skip_keeps_every_verified_unit_and_no_damaged_row(tmp_path, suffix, damage, policy):
    """Units 1-2 come through whole (with no partial line at their end),
    nothing of the damaged unit 3; one skip, counted on decompress only."""
    bad = units_file(tmp_path / f"bad.jsonl.{suffix}", CHECKED[suffix], damage)
    good = tmp_path / "good.jsonl.gz"
    good.write_bytes(gzip.compress(b'{"ok": 1}\n'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = run_with_stats(jsonl(bad, good, policy=policy))
    assert out == [*rows_before(2), {"ok": 1}]
    assert stats["decompress"]["skipped"] == 1
    assert stats["parse_jsonl"]["skipped"] == 0
    messages = [str(w.message) for w in caught]
    assert len(messages) == (1 if policy == "warn" else 0)
    if policy == "warn":
        assert f"bad.jsonl.{suffix}' at byte" in messages[0]


@pytest.mark.parametrize("damage", ["zeros", "truncated"])
@pytest.mark.parametrize("suffix", sorted(CHECKED))
def test_raise_passes_no_damaged_row_and_blames_decompress(tmp_path, suffix, damage):
    path = units_file(tmp_path / f"bad.jsonl.{suffix}", CHECKED[suffix], damage)
    out, message = until_error(jsonl(path))
    assert out == rows_before(2)
    unit = UNIT[suffix]
    assert message.startswith("decompress node ")
    assert f"bad.jsonl.{suffix}' at byte" in message
    assert f"in {unit} 3 from byte " in message
    assert f"{len(TEXT[: cuts(4)[1]])} bytes delivered" in message


@pytest.mark.parametrize(
    "compress",
    [*CHECKED.items(), *[(f"{k} without checksum", f) for k, f in UNCHECKED.items()]],
    ids=lambda c: c[0],
)
def test_truncated_file_is_an_error_in_every_format(tmp_path, compress):
    """A file cut short (one unit: nothing verified) raises EOFError from
    decompress, or is skipped whole and counted there."""
    name, fn = compress
    suffix = name.split()[0]
    data = fn(TEXT)
    path = tmp_path / f"t.jsonl.{suffix}"
    path.write_bytes(data[: len(data) // 2])
    _, message = until_error(jsonl(path))
    assert message.startswith("decompress node ")
    assert f"t.jsonl.{suffix}' at byte {len(data) // 2} (in {UNIT[suffix]} 1" in message
    assert "EOFError: the file ends inside" in message
    out, stats = run_with_stats(jsonl(path, policy="skip"))
    assert out == []
    assert stats["decompress"]["skipped"] == 1 and stats["parse_jsonl"]["skipped"] == 0


def test_the_reported_case_corrupt_single_member_jsonl_gz(tmp_path):
    """200,000 rows, 50 bytes zeroed mid-stream: not one row of the member
    reaches parse_jsonl, under skip or raise."""
    text = b"".join(b'{"row": %d, "pad": "%s"}\n' % (i, b"p" * (i % 40)) for i in range(200_000))
    data = bytearray(gzip.compress(text, mtime=0))
    data[len(data) // 2 : len(data) // 2 + 50] = bytes(50)
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(bytes(data))
    out, stats = run_with_stats(jsonl(path, policy="skip"))
    assert out == []
    assert stats["decompress"]["skipped"] == 1 and stats["parse_jsonl"]["skipped"] == 0
    out, message = until_error(jsonl(path))
    assert out == []
    assert "rows.jsonl.gz' at byte" in message and "in gzip member 1 from byte 0" in message


@pytest.mark.parametrize("limit", [0, 1000, 1 << 16, None])
@pytest.mark.parametrize("suffix", sorted(CHECKED))
def test_intact_files_read_whole_at_any_verify_limit(tmp_path, suffix, limit):
    path = units_file(tmp_path / f"ok.jsonl.{suffix}", CHECKED[suffix])
    kwargs = {} if limit is None else {"verify_limit": limit}
    assert list(jsonl(path, **kwargs)) == ROWS


def test_truncated_unit_beyond_verify_limit_keeps_whole_lines(tmp_path):
    """Beyond the limit the unit's output is not held: under skip the lines
    decompressed before the cut come through, the partial last one does not."""
    data = gzip.compress(TEXT, mtime=0)
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    out, stats = run_with_stats(jsonl(path, policy="skip", verify_limit=1 << 16))
    assert 0 < len(out) < len(ROWS)
    assert out == ROWS[: len(out)]
    assert stats["decompress"]["skipped"] == 1 and stats["parse_jsonl"]["skipped"] == 0


def read_size(item) -> int:
    return sum(len(chunk) for chunk in iter(partial(item[1].read, 1 << 16), b""))


def test_zstd_bomb_decompresses_in_bounded_memory(tmp_path):
    """64 MiB of zeros compress to a few KiB; with verify_limit=0 the output
    still comes in bounded pieces, never 64 MiB at once."""
    path = tmp_path / "zeros.zst"
    path.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(bytes(64 << 20)))
    dp = (
        sd.IterableWrapper([str(path)])
        .open_files(mode="b")
        .decompress(verify_limit=0)
        .map(read_size)
    )
    count, peak = count_with_peak_memory(dp.filter(partial(int.__eq__, 64 << 20)))
    assert count == 1 and peak < 8_000_000, f"peak {peak} bytes"


def test_verify_limit_checked(tmp_path):
    with pytest.raises(ParamError, match="decompress: verify_limit must be an int >= 0"):
        sd.IterableWrapper([]).decompress(verify_limit=-1)


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_resume_over_multi_unit_files(tmp_path, policy):
    paths = []
    for k, fmt in enumerate(["zst", "gz"]):
        text = b"".join(b'{"f": %d, "n": %d}\n' % (k, i) for i in range(9))
        part = len(text) // 2 + 3
        compress = CHECKED[fmt]
        paths.append(tmp_path / f"{k}.jsonl.{fmt}")
        paths[-1].write_bytes(compress(text[:part]) + compress(text[part:]))
    full = assert_resumes(jsonl(*paths, policy=policy), stops=list(range(19)))
    assert full == [{"f": k, "n": i} for k in range(2) for i in range(9)]


@pytest.mark.parametrize("suffix", ["gz", "xz"])
def test_zero_padding_after_a_unit(tmp_path, suffix):
    path = tmp_path / f"padded.jsonl.{suffix}"
    path.write_bytes(CHECKED[suffix](TEXT) + bytes(4096))
    assert list(jsonl(path)) == ROWS


def test_gzip_file_of_zeros_is_damage(tmp_path):
    """Zeros only pad after a member: a file of zeros (space allocated, never
    written) is not an empty gzip file."""
    path = tmp_path / "zeros.jsonl.gz"
    path.write_bytes(bytes(4096))
    _, message = until_error(jsonl(path))
    assert "zeros.jsonl.gz' at byte 4096 (in gzip member 1 from byte 0" in message
