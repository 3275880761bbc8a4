"""Files the text ops read in tests, made locally: a small BPE tokenizer
trained with ``tokenizers`` itself and Parquet files written with pyarrow."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = ["the quick brown fox", "jumps over the lazy dog", "hello world"]


def tokenizer_json(root: Path) -> str:
    """The path of a BPE tokenizer (with a [BOS] special token) under ``root``."""
    tokenizers = pytest.importorskip("tokenizers")
    path = root / "tokenizer.json"
    if not path.exists():
        from tokenizers import models, pre_tokenizers, processors, trainers

        tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]", "[BOS]"])
        tok.train_from_iterator(CORPUS * 10, trainer=trainer)
        tok.post_processor = processors.TemplateProcessing(
            single="[BOS] $A", special_tokens=[("[BOS]", 1)]
        )
        tok.save(str(path))
    return str(path)


def parquet_folder(root: Path) -> Path:
    """Two Parquet files of 7 and 5 rows, in row groups of 3 rows."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    folder = root / "parquet"
    if not folder.exists():
        folder.mkdir()
        for name, start, count in (("a.parquet", 0, 7), ("b.parquet", 100, 5)):
            ids = list(range(start, start + count))
            table = pa.table({"id": ids, "text": [f"row {i}" for i in ids]})
            pq.write_table(table, folder / name, row_group_size=3)
    return folder
