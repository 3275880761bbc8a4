"""tokenize and load_parquet: the outputs a user checks, exact resume of
batches cut mid-way, bad input named by node, file and row group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import streamdag as sd
from streamdag.errors import NodeError, ParamError
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
