"""A torchvision-prototype-style image dataset ported from torchdata.

torchvision's prototype datasets read an archive with DataPipes: open it,
list its members, keep the images, shuffle and shard (``hint_shuffling`` /
``hint_sharding``), decode each sample. The port changes the import lines
and one line: ``torchdata.datapipes.iter`` -> ``streamdag.datapipes.iter``,
``torchdata.dataloader2`` -> ``streamdag.dataloader2``, and archive members
arrive as bytes (see ``_prepare_sample``).

Run: python examples/torchdata_port_images.py"""

from __future__ import annotations

import io
import os
import pathlib
import tarfile
import tempfile
from typing import Any

import numpy as np
import torch
from PIL import Image

from streamdag.dataloader2 import DataLoader2, InProcessReadingService
from streamdag.datapipes.iter import (
    Batcher,
    FileLister,
    FileOpener,
    Filter,
    Mapper,
    ShardingFilter,
    Shuffler,
    TarArchiveLoader,
)

CATEGORIES = ("cat", "dog", "fish")
INFINITE_BUFFER_SIZE = 1_000_000_000


# -- the dataset, as the prototype datasets wrote it ---------------------------------
def hint_shuffling(datapipe):
    return Shuffler(datapipe, buffer_size=INFINITE_BUFFER_SIZE)


def hint_sharding(datapipe):
    return ShardingFilter(datapipe)


def _is_image(data: tuple[str, Any]) -> bool:
    return pathlib.PurePosixPath(data[0]).suffix == ".png"


def _prepare_sample(data: tuple[str, Any]) -> dict[str, Any]:
    path, member = data
    # torchdata's TarArchiveLoader gives a stream; streamdag's gives the bytes
    # (``load_from_tar(streams=True)`` for a stream): the one line a port touches
    encoded = member.read() if hasattr(member, "read") else member
    category = pathlib.PurePosixPath(path).parent.name
    image = np.array(Image.open(io.BytesIO(encoded)).convert("RGB"))
    return {
        "image": torch.from_numpy(image).permute(2, 0, 1),
        "label": CATEGORIES.index(category),
        "path": path,
    }


def images(root: str):
    dp = FileOpener(FileLister(root, "*.tar"), mode="rb")
    dp = TarArchiveLoader(dp)
    dp = Filter(dp, _is_image)
    dp = hint_shuffling(dp)
    dp = hint_sharding(dp)
    return Mapper(dp, _prepare_sample)


# -- the example's own: an archive to read ---------------------------------------------
def write_archive(root: str, per_category: int = 4) -> None:
    """A tar of small PNGs under <category>/ folders, plus a README member
    the dataset filters out."""
    with tarfile.open(os.path.join(root, "images.tar"), "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("README.txt", b"generated images")
        for label, category in enumerate(CATEGORIES):
            for i in range(per_category):
                buf = io.BytesIO()
                Image.new("RGB", (8, 6), (label * 80, i * 40, 0)).save(buf, "PNG")
                add(f"{category}/{i}.png", buf.getvalue())


def _batch(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "label": torch.tensor([s["label"] for s in samples]),
    }


def main(root: str | None = None) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = root or tmp
        write_archive(root)
        dp = Mapper(Batcher(images(root), 4), _batch)
        loader = DataLoader2(dp, reading_service=InProcessReadingService())
        loader.seed(0)
        try:
            batches = list(loader)
        finally:
            loader.shutdown()
    for batch in batches:
        print(tuple(batch["image"].shape), batch["label"].tolist())
    return batches


if __name__ == "__main__":
    main()
