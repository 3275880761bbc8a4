"""tokenize and load_parquet: the outputs a user checks, exact resume of
batches cut mid-way, bad input named by node, file and row group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import streamdag as sd
from streamdag.errors import NodeError, ParamError, ResumeError
from streamdag.testing import assert_resumes
from tests.support import text_data

tokenizers = pytest.importorskip("tokenizers")

TEXTS = [f"{text_data.CORPUS[i % 3]} {i}" for i in range(11)]


@pytest.fixture
def tok(tmp_path: Path) -> str:
    return text_data.tokenizer_json(tmp_path)


def reference(path: str, texts: list[str], special: bool = True) -> list[list[int]]:
    t = tokenizers.Tokenizer.from_file(path)
    return [t.encode(x, add_special_tokens=special).ids for x in texts]


# -- tokenize -----------------------------------------------------------------------
def test_tokenize_strings_match_the_tokenizer(tok: str) -> None:
    out = list(sd.IterableWrapper(TEXTS).tokenize(tok, batch_size=4))
    assert out == reference(tok, TEXTS)
    assert out[0][0] == 1  # [BOS]


def test_tokenize_dicts_and_options(tok: str) -> None:
    rows = [{"body": t, "id": i} for i, t in enumerate(TEXTS)]
    out = list(
        sd.IterableWrapper(rows).tokenize(
            tok, field="body", output_field="ids", add_special_tokens=False
        )
    )
    assert [r["id"] for r in out] == list(range(len(TEXTS)))
    assert [r["ids"] for r in out] == reference(tok, TEXTS, special=False)
    assert "ids" not in rows[0]  # the input dicts are not changed


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_tokenize_resumes_mid_batch(tok: str, batch_size: int) -> None:
    pipe = sd.IterableWrapper(TEXTS).shuffle(5).tokenize(tok, batch_size=batch_size)
    assert_resumes(pipe, stops=[1, 2, 4, 7])


def test_tokenize_state_is_positions_never_text(tok: str) -> None:
    """Mid-batch, the saved state holds the input's position and a count,
    none of the batch's texts; a fresh loader resumes from it exactly."""
    pipe = sd.IterableWrapper(TEXTS).tokenize(tok, batch_size=8)
    with sd.DataLoader2(pipe) as loader:
        it = iter(loader)
        head = [next(it), next(it)]
        state = loader.state_dict()
    assert not any(text in repr(state) for text in TEXTS)
    with sd.DataLoader2(pipe) as loader:
        loader.load_state_dict(state)
        assert head + list(loader) == reference(tok, TEXTS)


def test_tokenize_refuses_a_state_holding_texts(tok: str) -> None:
    """A state saved when tokenize kept its batch's texts is refused by name."""
    pipe = sd.IterableWrapper(TEXTS).tokenize(tok, batch_size=8, name="toks")
    with sd.DataLoader2(pipe) as loader:
        it = iter(loader)
        next(it)
        state = loader.state_dict()
    state["graph"] = [TEXTS[1:8], 8]  # the former shape: [texts left, input state]
    with sd.DataLoader2(pipe) as loader, pytest.raises(ResumeError, match="toks.*texts"):
        loader.load_state_dict(state)
        next(iter(loader))


def test_tokenize_bad_elements_name_the_node(tok: str) -> None:
    with pytest.raises(NodeError, match="tokenize.*got int"):
        list(sd.IterableWrapper(["ok", 3]).tokenize(tok, name="toks"))
    with pytest.raises(NodeError, match="no field 'text'"):
        list(sd.IterableWrapper([{"body": "x"}]).tokenize(tok))


def test_tokenize_params_are_checked() -> None:
    with pytest.raises(ParamError, match="tokenize: tokenizer"):
        sd.IterableWrapper(TEXTS).tokenize(None)  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="tokenize: batch_size"):
        sd.IterableWrapper(TEXTS).tokenize("t.json", batch_size=0)


def test_tokenize_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="nope.json"):
        list(sd.IterableWrapper(TEXTS).tokenize(str(tmp_path / "nope.json")))


def test_tokenize_graph_loads_without_tokenizers(tok: str, tmp_path: Path) -> None:
    """The tokenizer is a path in the graph: it saves, and loads where
    ``tokenizers`` is not installed; running it there names the extra."""
    saved = tmp_path / "g.json"
    sd.save(sd.IterableWrapper(TEXTS).tokenize(tok), str(saved))
    code = (
        "import sys; sys.modules['tokenizers'] = None\n"
        "import streamdag as sd\n"
        f"dp = sd.load({str(saved)!r})\n"
        "assert [n.op for n in sd.Graph(dp)][-1] == 'tokenize'\n"
        "try:\n    list(dp)\n"
        "except Exception as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "streamdag[text]" in out.stdout


# -- load_parquet ---------------------------------------------------------------------
def parquet(root: Path, **kwargs: object) -> sd.DataPipe[dict]:
    folder = text_data.parquet_folder(root)
    return sd.FileLister(str(folder), "*.parquet").open_files(mode="b").load_parquet(**kwargs)


def test_parquet_rows_and_columns(tmp_path: Path) -> None:
    rows = list(parquet(tmp_path))
    assert [r["id"] for r in rows] == [*range(7), *range(100, 105)]
    assert rows[0] == {"id": 0, "text": "row 0"}
    assert list(parquet(tmp_path, columns=["text"]))[-1] == {"text": "row 104"}


def test_parquet_batches_stay_in_row_groups(tmp_path: Path) -> None:
    batches = list(parquet(tmp_path, batch_rows=2))
    sizes = [len(b["id"]) for b in batches]
    assert sizes == [2, 1, 2, 1, 1, 2, 1, 2]  # row groups of 3, 3, 1 and 3, 2
    assert batches[0]["text"].tolist() == ["row 0", "row 1"]


@pytest.mark.parametrize("batch_rows", [None, 2])
def test_parquet_resumes_mid_row_group(tmp_path: Path, batch_rows: int | None) -> None:
    def plain(b: dict) -> dict:
        return {k: getattr(v, "tolist", lambda v=v: v)() for k, v in b.items()}

    pipe = parquet(tmp_path, batch_rows=batch_rows).map(plain)
    assert_resumes(pipe, stops=[1, 2, 4, 8])


def test_parquet_reads_from_any_fsspec_filesystem(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    folder = text_data.parquet_folder(tmp_path)
    fs = fsspec.filesystem("memory")
    for p in sorted(folder.iterdir()):
        fs.pipe(f"/pq/{p.name}", p.read_bytes())
    rows = list(sd.FileLister("memory://pq", "*.parquet").open_files(mode="b").load_parquet())
    assert [r["id"] for r in rows] == [*range(7), *range(100, 105)]


def bad_folder(root: Path) -> Path:
    folder = text_data.parquet_folder(root)
    data = (folder / "a.parquet").read_bytes()
    (folder / "0_truncated.parquet").write_bytes(data[: len(data) // 2])
    (folder / "1_not.parquet").write_text("just text")
    return folder


def test_parquet_bad_files_name_node_and_file(tmp_path: Path) -> None:
    folder = bad_folder(tmp_path)
    pipe = sd.FileLister(str(folder), "*.parquet").open_files(mode="b")
    with pytest.raises(NodeError, match=r"pq.*0_truncated\.parquet"):
        list(pipe.load_parquet(name="pq"))
    rows = pipe.load_parquet(on_error="skip", name="pq")
    assert [r["id"] for r in rows] == [*range(7), *range(100, 105)]


def test_parquet_skipped_files_are_counted(tmp_path: Path) -> None:
    folder = bad_folder(tmp_path)
    pipe = sd.FileLister(str(folder), "*.parquet").open_files(mode="b")
    with sd.DataLoader2(pipe.load_parquet(on_error="skip", name="pq"), stats=True) as loader:
        assert len(list(loader)) == 12
        assert loader.stats().node("pq").skipped == 2


def test_parquet_missing_column(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match=r"a\.parquet.*no column .nope."):
        list(parquet(tmp_path, columns=["id", "nope"]))
    with pytest.raises(ParamError, match="load_parquet: columns"):
        parquet(tmp_path, columns="id")
    with pytest.raises(ParamError, match="load_parquet: batch_rows"):
        parquet(tmp_path, batch_rows=0)


def test_parquet_bad_row_group_names_it(tmp_path: Path) -> None:
    """Damaged data in the second row group: that row group is named, and
    under skip the rows of the others are read."""
    pq = pytest.importorskip("pyarrow.parquet")
    folder = text_data.parquet_folder(tmp_path)
    path = folder / "a.parquet"
    meta = pq.ParquetFile(path).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    start = meta.data_page_offset
    data[start : start + meta.total_compressed_size] = b"\xff" * meta.total_compressed_size
    path.write_bytes(bytes(data))
    pipe = sd.FileLister(str(path)).open_files(mode="b")
    with pytest.raises(NodeError, match="row group 1"):
        list(pipe.load_parquet())
    assert [r["id"] for r in pipe.load_parquet(on_error="skip")] == [0, 1, 2, 6]
