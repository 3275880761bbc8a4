"""The readers give torchdata 0.9's elements in torchdata's order: the same
pipeline on the same files, run by torchdata and by streamdag."""

from __future__ import annotations

import io
import json
import os
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import streamdag as sd

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torchdata's deprecation notice
    from torchdata.datapipes.iter import FileLister as TDFileLister
    from torchdata.datapipes.iter import IterableWrapper as TDIterableWrapper

CSV = 'id,name,note\r\n1,a,"multi\r\nline"\n\n2,b,plain\n3,c\n4,d,"x;y",extra\n\xff5,é,f\n'


def read_pair(pair: tuple[str, Any]) -> tuple[str, Any]:
    """(path, stream) -> (path, its content), so streams compare."""
    path, stream = pair
    data = stream.read()
    stream.close()
    return path, data


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("td")
    (root / "a.csv").write_bytes(CSV.encode("latin-1"))
    (root / "b.txt").write_bytes(b"\r\nline1\r\n\rline2\nlast\xe9")
    (root / "c.txt").write_bytes("caf\u00e9\r\nmac\rend\n".encode())
    (root / "d1.json").write_text('{"a": [1, 2.5, null]}')
    (root / "d2.json").write_bytes(b'\xef\xbb\xbf["bom"]')
    for rel in [
        "tree/z.txt",
        "tree/b.bin",
        "tree/sub/x.txt",
        "tree/sub/deep/y.txt",
        "tree/a/q.txt",
        "tree/sub-1.txt",
        "tree/A/w.txt",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    members = [
        ("000.jpg", b"j0"),
        ("000.cls", b"0"),
        ("000.seg.PNG", b"p0"),
        ("dir.v2/001.jpg", b"j1"),
        ("dir.v2/001.cls", b"1"),
        ("README", b"r"),
        ("002.JPG", b"j2"),
        ("002.cls", b"2"),
        ("dir/.hidden", b"h"),
        ("__meta__.json", b"{}"),
        ("003.cls", b"3"),
    ]
    for name, part in [("s0.tar", members), ("s1.tar", members[:3])]:
        with tarfile.open(root / name, "w") as tar:
            for member, payload in part:
                info = tarfile.TarInfo(member)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return root


def same(td: Any, ours: sd.DataPipe[Any]) -> list[Any]:
    """Both pipelines' elements, equal element by element."""
    expected = list(td)
    assert list(ours) == expected
    return expected


def both(paths: list[str], build: Callable[[Any], Any]) -> tuple[Any, Any]:
    return build(TDIterableWrapper(paths)), build(sd.IterableWrapper(paths))


# -- open_files ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "r"},
        {"mode": "t"},
        {"mode": "rt"},
        {"mode": "b"},
        {"mode": "rb"},
        {"mode": "r", "encoding": "latin-1"},
    ],
)
def test_open_files(files: Path, kwargs: dict[str, Any]) -> None:
    paths = [str(files / "c.txt"), str(files / "a.csv")]
    if "encoding" not in kwargs and "b" not in kwargs.get("mode", ""):
        paths = paths[:1]  # a.csv is latin-1
    td, ours = both(paths, lambda dp: dp.open_files(**kwargs).map(read_pair))
    out = same(td, ours)
    assert isinstance(out[0][1], bytes if "b" in kwargs.get("mode", "") else str)


# -- readlines -----------------------------------------------------------------

READLINES = [
    {},
    {"decode": True},
    {"skip_lines": 2},
    {"strip_newline": False},
    {"return_path": False, "decode": True, "errors": "replace"},
    {"decode": True, "encoding": "latin-1"},
    {"skip_lines": 9},
]


@pytest.mark.parametrize("mode", ["r", "b"])
@pytest.mark.parametrize("kwargs", READLINES)
def test_readlines(files: Path, mode: str, kwargs: dict[str, Any]) -> None:
    paths = [str(files / "b.txt"), str(files / "c.txt")]
    encoding = "latin-1" if mode == "r" else None
    td, ours = both(paths, lambda dp: dp.open_files(mode, encoding).readlines(**kwargs))
    same(td, ours)


# -- csv -----------------------------------------------------------------------

CSV_ARGS = [
    {},
    {"skip_lines": 1},
    {"as_tuple": True, "return_path": True},
    {"delimiter": ";"},
    {"encoding": "latin-1"},
    {"errors": "replace"},
    {"quotechar": "'", "skipinitialspace": True},
]


@pytest.mark.parametrize("mode", ["r", "b"])
@pytest.mark.parametrize("kwargs", CSV_ARGS)
def test_parse_csv(files: Path, mode: str, kwargs: dict[str, Any]) -> None:
    encoding = "latin-1" if mode == "r" else None
    td, ours = both(
        [str(files / "a.csv")] * 2, lambda dp: dp.open_files(mode, encoding).parse_csv(**kwargs)
    )
    assert same(td, ours)


DICT_ARGS = [
    {},
    {"skip_lines": 1},
    {"return_path": True},
    {"fieldnames": ["p", "q"]},
    {"restkey": "more", "restval": "-"},
    {"delimiter": ";"},
    {"encoding": "latin-1"},
]


@pytest.mark.parametrize("mode", ["r", "b"])
@pytest.mark.parametrize("kwargs", DICT_ARGS)
def test_parse_csv_as_dict(files: Path, mode: str, kwargs: dict[str, Any]) -> None:
    encoding = "latin-1" if mode == "r" else None
    td, ours = both(
        [str(files / "a.csv")] * 2,
        lambda dp: dp.open_files(mode, encoding).parse_csv_as_dict(**kwargs),
    )
    assert same(td, ours)


# -- parse_json_files ----------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"parse_float": str}])
def test_parse_json_files(files: Path, kwargs: dict[str, Any]) -> None:
    td, ours = both(
        [str(files / "d1.json"), str(files / "d2.json")],
        lambda dp: dp.open_files("b").parse_json_files(**kwargs),
    )
    assert same(td, ours)[1][1] == ["bom"]


# -- FileLister, list_files, list_files_by_fsspec ------------------------------

LISTER_ARGS = [
    {},
    {"recursive": True},
    {"masks": "*.txt", "recursive": True},
    {"masks": ["*.bin", "q*"], "recursive": True},
    {"abspath": True, "recursive": True},
    {"masks": ""},
]


@pytest.mark.parametrize("kwargs", LISTER_ARGS)
@pytest.mark.parametrize(
    "root", ["tree", "tree/", "./tree", "ABS", ["tree/sub", "tree/a"], "tree/z.txt"]
)
def test_file_lister(
    files: Path, monkeypatch: pytest.MonkeyPatch, root: Any, kwargs: dict[str, Any]
) -> None:
    """torchdata's order (a directory's files, then its subdirectories, depth
    first) and its paths (relative roots stay relative)."""
    monkeypatch.chdir(files)
    root = str(files / "tree") if root == "ABS" else root
    if root == "tree/z.txt" and kwargs.get("masks"):
        pytest.skip("a file named as a root is listed whatever the masks (a deviation)")
    out = same(TDFileLister(root, **kwargs), sd.FileLister(root, **kwargs))
    assert out


@pytest.mark.parametrize("kwargs", LISTER_ARGS)
def test_list_files(files: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any]) -> None:
    monkeypatch.chdir(files)
    roots = ["tree/sub", "tree"] + ([] if kwargs.get("masks") else ["tree/z.txt"])
    td, ours = both(roots, lambda dp: dp.list_files(**kwargs))
    assert same(td, ours)
    assert list(sd.FileLister(sd.IterableWrapper(roots), **kwargs)) == list(ours)


def test_list_files_by_fsspec(files: Path) -> None:
    """Same files for a directory of files (torchdata lists them in the
    filesystem's order and names subdirectories too: streamdag sorts and
    lists files only)."""
    flat = files / "flat"
    flat.mkdir()
    for name in ["b.txt", "a.txt", "c.bin"]:
        (flat / name).write_text(name)
    for masks in ["", "*.txt"]:
        td, ours = both([str(flat)], lambda dp, m=masks: dp.list_files_by_fsspec(masks=m))
        assert list(ours) == sorted(td)


# -- webdataset ----------------------------------------------------------------


def test_webdataset_keys_as_torchdata(files: Path) -> None:
    """``__key__`` is "<archive>/<key>", fields keep their dot and case."""
    td, ours = both(
        [str(files / "s0.tar"), str(files / "s1.tar")],
        lambda dp: dp.open_files("b").load_from_tar().webdataset(),
    )
    out = same(td.map(stream_values), ours.map(stream_values))
    assert out[0] == {
        "__key__": f"{files / 's0.tar'}/000",
        ".jpg": b"j0",
        ".cls": b"0",
        ".seg.PNG": b"p0",
    }


def stream_values(sample: dict[str, Any]) -> dict[str, Any]:
    """torchdata's load_from_tar yields streams, streamdag's bytes: compare the bytes."""
    return {k: v if isinstance(v, (str, bytes)) else v.read() for k, v in sample.items()}


def test_decode_takes_both_key_styles(files: Path) -> None:
    def decoded(keys: str) -> list[dict[str, Any]]:
        dp = sd.IterableWrapper([str(files / "s1.tar")]).open_files("b").load_from_tar()
        return list(dp.webdataset(keys=keys).decode(image="bytes", by_ext={"cls": int}))

    assert decoded("torchdata")[0][".cls"] == decoded("webdataset")[0]["cls"] == 0


def test_porting_a_torchdata_text_pipeline(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same code with the import changed: lister, opener, lines, csv, json."""
    monkeypatch.chdir(files)

    def pipeline(lister: Any) -> Any:
        return (
            lister(".", masks=["*.txt", "*.csv"])
            .open_files(encoding="latin-1")
            .readlines(return_path=False)
        )

    assert same(pipeline(TDFileLister), pipeline(sd.FileLister))
    assert json.loads((files / "d1.json").read_text()) == {"a": [1, 2.5, None]}
    assert os.path.exists(files / "tree")
