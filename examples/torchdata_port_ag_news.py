"""A torchtext dataset ported from torchdata: AG_NEWS.

torchtext 0.18 builds AG_NEWS with torchdata DataPipes; the port changes the
import line only (``torchdata.datapipes.iter`` -> ``streamdag.datapipes.iter``):

    from streamdag.datapipes.iter import FileOpener, HttpReader, IterableWrapper

The download half (``on_disk_cache``, ``HttpReader``, ``end_caching``) and
``set_shuffle`` are torchdata names being added to streamdag alongside this
guide (see docs/migrating-from-torchdata.md); ``main()`` first writes the CSV
where the cache expects it, so nothing is downloaded.

Run: python examples/torchdata_port_ag_news.py"""

from __future__ import annotations

import csv
import os
import tempfile
from functools import partial

from streamdag.datapipes.iter import FileOpener, HttpReader, IterableWrapper

URL = {
    "train": "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/train.csv",
    "test": "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/test.csv",
}


# -- torchtext's code from here on, with the import line changed ----------------
def _filepath_fn(root: str, split: str, _: str | None = None) -> str:
    return os.path.join(root, split + ".csv")


def _modify_res(t: list[str]) -> tuple[int, str]:
    return int(t[0]), " ".join(t[1:])


def AG_NEWS(root: str, split: str):  # noqa: N802 - torchtext's name
    url_dp = IterableWrapper([URL[split]])
    cache_dp = url_dp.on_disk_cache(filepath_fn=partial(_filepath_fn, root, split))
    cache_dp = HttpReader(cache_dp).end_caching(mode="wb", same_filepath_fn=True)
    data_dp = FileOpener(cache_dp, encoding="utf-8")
    return data_dp.parse_csv().map(fn=_modify_res).shuffle().set_shuffle(False).sharding_filter()


# -- the example's own: data in place of the download ------------------------------
def write_split(root: str, split: str, rows: int = 8) -> None:
    """A small CSV in AG_NEWS's layout (label, title, description) where the
    cache looks for the download."""
    with open(_filepath_fn(root, split), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        for i in range(rows):
            writer.writerow([str(i % 4 + 1), f"Title {i}", f"Description, number {i}"])


def main(root: str | None = None) -> list[tuple[int, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = root or tmp
        write_split(root, "train")
        rows = list(AG_NEWS(root, "train"))
    for label, text in rows[:3]:
        print(label, text)
    return rows


if __name__ == "__main__":
    main()
