"""The worked ports of docs/migrating-from-torchdata.md run, on data they
generate (no network)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import streamdag as sd

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    module = sys.modules.get(f"{name}_example")
    if module is None:
        spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"{name}_example"] = module  # worker processes find its functions
        spec.loader.exec_module(module)
    return module


def test_image_dataset_port(tmp_path: Path) -> None:
    batches = load("torchdata_port_images").main(str(tmp_path))
    assert [tuple(b["image"].shape) for b in batches] == [(4, 3, 6, 8)] * 3
    labels = sorted(int(x) for b in batches for x in b["label"])
    assert labels == [0] * 4 + [1] * 4 + [2] * 4


def test_training_loop_port_learns() -> None:
    losses = load("torchdata_port_training_loop").main(epochs=3, num_workers=2)
    assert losses["last"] < losses["first"] / 10


def test_ag_news_port(tmp_path: Path) -> None:
    missing = [n for n in ("on_disk_cache", "set_shuffle") if not hasattr(sd.DataPipe, n)]
    try:
        from streamdag.datapipes.iter import HttpReader  # noqa: F401
    except ImportError:
        missing.append("HttpReader")
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (being added by the torchdata drop-in work)")
    rows = load("torchdata_port_ag_news").main(str(tmp_path))
    assert rows[0] == (1, "Title 0 Description, number 0")
    assert len(rows) == 8
