"""Bad input for the readers as torchdata has them: clear errors naming the
op and saying what to do; the streamdag extras kept beside torchdata's
arguments."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

import streamdag as sd
from streamdag.errors import NodeError, ParamError
from streamdag.testing import assert_resumes, run_epoch
from tests.support.readers import run_with_stats


def test_parse_csv_header_points_to_parse_csv_as_dict() -> None:
    with pytest.raises(ParamError, match=r"parse_csv takes no 'header'.*parse_csv_as_dict"):
        sd.IterableWrapper([]).parse_csv(header=False)


def test_parse_csv_unknown_format_parameter() -> None:
    with pytest.raises(ParamError, match="parse_csv: invalid csv format parameter"):
        sd.IterableWrapper([]).parse_csv(delimeter=";")
    with pytest.raises(ParamError, match="parse_csv_as_dict: invalid csv format parameter"):
        sd.IterableWrapper([]).parse_csv_as_dict(quoting="all")


def test_open_files_modes_and_encoding() -> None:
    with pytest.raises(ParamError, match="open_files: mode"):
        sd.IterableWrapper([]).open_files("w")
    with pytest.raises(ParamError, match="binary mode 'b' takes no encoding"):
        sd.IterableWrapper([]).open_files("b", "utf-8")
    with pytest.raises(ParamError, match="binary mode 'rb' takes no encoding"):
        sd.IterableWrapper([]).open_files(mode="rb", encoding="utf-8", retry=True)


@pytest.mark.parametrize("reader", ["load_from_tar", "load_from_zip", "decompress"])
def test_binary_readers_refuse_text_streams(tmp_path: Path, reader: str) -> None:
    (tmp_path / "a.tar").write_text("not read")
    dp = getattr(sd.IterableWrapper([str(tmp_path / "a.tar")]).open_files(), reader)
    with pytest.raises(NodeError, match=rf"{reader} reads bytes .*open_files\(mode=\"b\"\)"):
        run_epoch(dp(on_error="skip"))  # a wiring mistake raises whatever the policy


def test_readlines_skip_lines_must_not_be_negative() -> None:
    with pytest.raises(ParamError, match="readlines: skip_lines"):
        sd.IterableWrapper([]).readlines(skip_lines=-1)


def test_readlines_line_numbers_count_skipped_lines(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("a\nb\nc\nd\n")
    dp = sd.IterableWrapper([str(tmp_path / "t.txt")]).open_files()
    lines = dp.readlines(skip_lines=2, line_numbers=True, return_path=False)
    assert assert_resumes(lines, stops=[0, 1, 2]) == [(3, "c"), (4, "d")]


def test_parse_json_files_invalid_file_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{oops")
    (tmp_path / "b.json").write_text("[1]")
    dp = sd.FileLister(str(tmp_path), "*.json").open_files().parse_json_files(on_error="skip")
    out, stats = run_with_stats(dp)
    assert out == [(str(tmp_path / "b.json"), [1])]
    assert stats["parse_json_files"]["skipped"] == 1
    with pytest.raises(NodeError, match=r"parse_json_files node .*a\.json.*JSONDecodeError"):
        run_epoch(sd.FileLister(str(tmp_path), "*.json").open_files().parse_json_files())


def test_list_files_refuses_non_paths_and_names_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="list_files expects paths"):
        run_epoch(sd.IterableWrapper([3]).list_files())
    with pytest.raises(NodeError, match=r"list_files node .*nope.*FileNotFoundError"):
        run_epoch(sd.IterableWrapper([str(tmp_path / "nope")]).list_files())
    out, stats = run_with_stats(
        sd.IterableWrapper([str(tmp_path / "nope"), str(tmp_path)]).list_files(on_error="skip")
    )
    assert out == [] and stats["list_files"]["skipped"] == 1


def test_webdataset_keys_choice_and_both_styles(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match="webdataset: keys"):
        sd.IterableWrapper([]).webdataset(keys="wds")
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        for name, payload in [("k.JPG", b"j"), ("k.cls", b"1")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    members = sd.IterableWrapper([str(tmp_path / "s.tar")]).open_files("b").load_from_tar()
    shard = str(tmp_path / "s.tar")
    assert list(members.webdataset()) == [{"__key__": f"{shard}/k", ".JPG": b"j", ".cls": b"1"}]
    assert list(members.webdataset(keys="webdataset")) == [
        {"__key__": "k", "__url__": shard, "jpg": b"j", "cls": b"1"}
    ]
