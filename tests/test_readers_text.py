"""decompress, readlines, parse_jsonl and parse_csv on files the tests
write: every compression, line numbers, exact resume, bounded memory, and
bad input (corrupt gzip/zstd, non-UTF-8 lines, invalid JSON) under each
error policy with exact counts."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import warnings

import lz4.frame
import pytest
import zstandard

import streamdag as sd
from streamdag.errors import NodeError, ParamError
from streamdag.testing import assert_resumes, run_epoch
from tests.support.readers import count_with_peak_memory, run_with_stats

TEXT = "".join(f"line {i}\n" for i in range(50)).encode()
COMPRESSORS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zst": zstandard.ZstdCompressor().compress,
    "lz4": lz4.frame.compress,
}


def lines_of(*paths, **kwargs):
    dp = sd.IterableWrapper([str(p) for p in paths]).open_files(mode="b")
    return dp.decompress().readlines(return_path=False, decode=True, **kwargs)


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_decompress_by_suffix_and_by_magic(tmp_path, suffix):
    by_suffix = tmp_path / f"a.txt.{suffix}"
    by_suffix.write_bytes(COMPRESSORS[suffix](TEXT))
    by_magic = tmp_path / "a.data"
    by_magic.write_bytes(COMPRESSORS[suffix](TEXT))
    expected = [f"line {i}" for i in range(50)]
    assert list(lines_of(by_suffix)) == expected
    assert list(lines_of(by_magic)) == expected


def test_decompress_explicit_type_and_passthrough(tmp_path):
    (tmp_path / "odd.name").write_bytes(gzip.compress(TEXT))
    (tmp_path / "plain.txt").write_bytes(TEXT)
    dp = sd.IterableWrapper([str(tmp_path / "odd.name")]).open_files(mode="b").decompress("gz")
    assert [s.read() for _, s in dp] == [TEXT]
    assert len(list(lines_of(tmp_path / "plain.txt"))) == 50
    with pytest.raises(ParamError, match="decompress: file_type"):
        sd.IterableWrapper([]).decompress("rar")


def test_multi_member_gzip(tmp_path):
    (tmp_path / "m.gz").write_bytes(gzip.compress(b"a\n") + gzip.compress(b"b\n"))
    assert list(lines_of(tmp_path / "m.gz")) == ["a", "b"]


def test_readlines_paths_and_line_numbers(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"x\r\ny\nz")
    dp = sd.IterableWrapper([str(tmp_path / "a.txt")]).open_files()
    path = str(tmp_path / "a.txt")
    assert list(dp.readlines()) == [(path, "x"), (path, "y"), (path, "z")]
    assert list(dp.readlines(line_numbers=True)) == [(path, 1, "x"), (path, 2, "y"), (path, 3, "z")]
    assert list(dp.readlines(return_path=False, line_numbers=True)) == [
        (1, "x"),
        (2, "y"),
        (3, "z"),
    ]
    binary = sd.IterableWrapper([path]).open_files(mode="b")
    assert list(binary.readlines(strip_newline=False, return_path=False)) == [
        b"x\r\n",
        b"y\n",
        b"z",
    ]


@pytest.mark.parametrize("suffix", ["txt", "txt.gz", "txt.zst"])
def test_readlines_resume_exactly(tmp_path, suffix):
    paths = []
    for k in range(3):
        p = tmp_path / f"{k}.{suffix}"
        data = "".join(f"{k}:{i}\n" for i in range(7)).encode()
        p.write_bytes(COMPRESSORS[suffix.split(".")[1]](data) if "." in suffix else data)
        paths.append(p)
    full = assert_resumes(lines_of(*paths, line_numbers=True), stops=list(range(22)))
    assert full[8] == (2, "1:1")


def test_decompressed_stream_memory_is_bounded(tmp_path):
    """A gzip file that expands to 9 MB streams with a peak far below that
    once its member is larger than verify_limit (below it, the member is
    held until its checksum passed)."""
    big = tmp_path / "big.jsonl.gz"
    row = json.dumps({"text": "y" * 150}) + "\n"
    with gzip.open(big, "wt") as f:
        for _ in range(60_000):
            f.write(row)
    dp = sd.IterableWrapper([str(big)]).open_files(mode="b").decompress(verify_limit=1 << 20)
    count, peak = count_with_peak_memory(dp.parse_jsonl())
    assert count == 60_000
    assert peak < 3_000_000, f"peak {peak} bytes for 9 MB of decompressed text"


# -- bad compressed input -------------------------------------------------------


def corrupt(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes(32) + data[mid + 32 :]


def bad_compressed_files(tmp_path):
    big = "".join(f"row {i} {'z' * (i % 37)}\n" for i in range(2000)).encode()
    files = {
        "corrupt.gz": corrupt(gzip.compress(big, mtime=0)),
        "truncated.gz": gzip.compress(big, mtime=0)[:-200],
        "corrupt.zst": corrupt(zstandard.ZstdCompressor(write_checksum=True).compress(big)),
        "empty.gz": b"",
        "good.gz": gzip.compress(b"ok 1\nok 2\n"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_corrupt_compressed_files_counted(tmp_path, policy):
    """Each bad file counts one skip on decompress (corrupt midway, in its
    only member or frame: none of its lines, as none passed a checksum;
    empty: nothing), and the good file after them is read whole."""
    dp = sd.IterableWrapper([str(p) for p in bad_compressed_files(tmp_path)]).open_files(mode="b")
    dp = dp.decompress(on_error=policy).readlines(return_path=False, decode=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = run_with_stats(dp)
    assert stats["decompress"]["skipped"] == 4
    assert stats["readlines"]["skipped"] == 0
    assert out[-2:] == [b"ok 1", b"ok 2"]
    assert len(caught) == (4 if policy == "warn" else 0)


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("corrupt.gz", r"decompress node .*corrupt\.gz' at byte \d+"),
        ("truncated.gz", r"truncated\.gz.*EOFError"),
        ("corrupt.zst", r"corrupt\.zst"),
        ("empty.gz", r"empty\.gz.*empty file"),
    ],
)
def test_corrupt_compressed_file_raises(tmp_path, name, pattern):
    bad_compressed_files(tmp_path)
    dp = lines_of(tmp_path / name)
    with pytest.raises(NodeError, match=pattern):
        run_epoch(dp)


# -- bad lines ------------------------------------------------------------------


def bad_jsonl(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\n{"a": \xff}\n{not json}\n{"a": 3}\n')
    return path


@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_invalid_and_non_utf8_json_lines_skipped(tmp_path, policy):
    dp = (
        sd.IterableWrapper([str(bad_jsonl(tmp_path))])
        .open_files(mode="b")
        .parse_jsonl(on_error=policy)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = run_with_stats(dp)
    assert out == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert stats["parse_jsonl"]["skipped"] == 2
    messages = [str(w.message) for w in caught]
    assert len(messages) == (2 if policy == "warn" else 0)
    if policy == "warn":
        assert "line 4" in messages[0] and "line 5" in messages[1]


def test_invalid_json_line_raises_with_line_number(tmp_path):
    dp = (
        sd.IterableWrapper([str(bad_jsonl(tmp_path))]).open_files(mode="b").parse_jsonl(name="rows")
    )
    with pytest.raises(
        NodeError,
        match=r"parse_jsonl node 'rows' .*rows\.jsonl' line 4: "
        r"UnicodeDecodeError",
    ):
        run_epoch(dp)


def test_jsonl_resume_across_skipped_lines(tmp_path):
    dp = (
        sd.IterableWrapper([str(bad_jsonl(tmp_path))] * 2)
        .open_files(mode="b")
        .parse_jsonl(on_error="skip", return_path=True)
    )
    full = assert_resumes(dp, stops=list(range(7)))
    assert [v for _, v in full] == [{"a": 1}, {"a": 2}, {"a": 3}] * 2


@pytest.mark.parametrize(
    ("policy", "expected", "skipped"),
    [
        ("skip", [(1, "good"), (3, "also good")], 1),
        ("warn", [(1, "good"), (3, "also good")], 1),
    ],
)
def test_non_utf8_line_in_readlines(tmp_path, policy, expected, skipped):
    (tmp_path / "t.txt").write_bytes(b"good\n\xff\xfe bad\nalso good\n")
    dp = (
        sd.IterableWrapper([str(tmp_path / "t.txt")])
        .open_files(mode="b")
        .readlines(
            return_path=False, line_numbers=True, decode=True, errors="strict", on_error=policy
        )
    )
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        out, stats = run_with_stats(dp)
    assert out == expected
    assert stats["readlines"]["skipped"] == skipped
    with pytest.raises(NodeError, match=r"t\.txt' line 2: UnicodeDecodeError"):
        run_epoch(
            sd.IterableWrapper([str(tmp_path / "t.txt")])
            .open_files(mode="b")
            .readlines(decode=True, errors="strict")
        )


@pytest.mark.parametrize("mode", ["rb", "r"])
def test_jsonl_byte_order_mark_opening_the_file_is_dropped(tmp_path, mode):
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"a": 2}\n')
    dp = sd.IterableWrapper([str(tmp_path / "bom.jsonl")]).open_files(mode=mode).parse_jsonl()
    assert list(dp) == [{"a": 1}, {"a": 2}]
    assert assert_resumes(dp, stops=[0, 1, 2]) == [{"a": 1}, {"a": 2}]


def test_a_bad_first_jsonl_line_is_skipped_alone(tmp_path):
    (tmp_path / "r.jsonl").write_bytes(b'{bad\n{"a": 1}\n')
    out, stats = run_with_stats(
        sd.IterableWrapper([str(tmp_path / "r.jsonl")]).open_files().parse_jsonl(on_error="skip")
    )
    assert out == [{"a": 1}] and stats["parse_jsonl"]["skipped"] == 1


def test_empty_file_has_no_lines(tmp_path):
    (tmp_path / "e.jsonl").write_bytes(b"")
    out, stats = run_with_stats(
        sd.IterableWrapper([str(tmp_path / "e.jsonl")]).open_files().parse_jsonl()
    )
    assert out == [] and stats["parse_jsonl"]["skipped"] == 0


# -- csv ------------------------------------------------------------------------

CSV = 'id,name,note\n1,a,"multi\nline"\n\n2,b,plain\n3,c\n4,d,"x,y"\n'


def test_parse_csv_as_dict_rows_as_csv_dictreader_makes_them(tmp_path):
    """Keyed by the header row, blank lines passed over, a short row filled
    with None (csv.DictReader's restval), as torchdata's CSVDictParser."""
    (tmp_path / "t.csv").write_text(CSV)
    dp = sd.IterableWrapper([str(tmp_path / "t.csv")]).open_files().parse_csv_as_dict()
    assert list(dp) == [
        {"id": "1", "name": "a", "note": "multi\nline"},
        {"id": "2", "name": "b", "note": "plain"},
        {"id": "3", "name": "c", "note": None},
        {"id": "4", "name": "d", "note": "x,y"},
    ]


def test_parse_csv_bad_record_is_bad_input(tmp_path):
    (tmp_path / "t.csv").write_text('a,b\n"x"y,1\nc,d\n')
    dp = sd.IterableWrapper([str(tmp_path / "t.csv")]).open_files()
    out, stats = run_with_stats(dp.parse_csv(strict=True, on_error="skip"))
    assert out == [["a", "b"], ["c", "d"]]
    assert stats["parse_csv"]["skipped"] == 1
    with pytest.raises(NodeError, match=r"t\.csv' line 2: Error: ',' expected"):
        run_epoch(dp.parse_csv(strict=True))


def test_parse_csv_given_fieldnames_delimiter_and_resume(tmp_path):
    (tmp_path / "t.tsv.gz").write_bytes(
        gzip.compress(b"".join(f"{i}\t{i * i}\n".encode() for i in range(9)))
    )
    dp = (
        sd.IterableWrapper([str(tmp_path / "t.tsv.gz")] * 2)
        .open_files(mode="b")
        .decompress()
        .parse_csv_as_dict(fieldnames=["n", "sq"], delimiter="\t", return_path=True)
    )
    full = assert_resumes(dp, stops=list(range(19)))
    assert full[3][1] == {"n": "3", "sq": "9"} and len(full) == 18
    headed = sd.IterableWrapper([str(tmp_path / "t.tsv.gz")]).open_files(mode="b").decompress()
    assert_resumes(headed.parse_csv_as_dict(delimiter="\t"), stops=list(range(9)))
    rows = assert_resumes(headed.parse_csv(delimiter="\t", skip_lines=2), stops=list(range(8)))
    assert rows[0] == ["2", "4"] and len(rows) == 7
