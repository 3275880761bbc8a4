"""The per-element work of each workload, shared by every contender.

Every contender calls these same functions, so a ratio measures the pipeline
around the work, never a different transform.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

IMAGE_SIZE = 224
VOCAB_BUCKETS = 50_000


# W1 -------------------------------------------------------------------------
def inc(x: int) -> int:
    return x + 1


def is_even(x: int) -> bool:
    return x % 2 == 0


# W2 -------------------------------------------------------------------------
def decode_image(data: bytes, size: int = IMAGE_SIZE) -> torch.Tensor:
    """JPEG bytes -> uint8 CHW tensor: centre square crop, bilinear resize to size x size.

    ``draft`` lets libjpeg decode at a reduced scale when the image is at least
    twice the target; for the benchmark's 320x240 images it changes nothing
    (half scale would be 160x120 < 224), so it gives no contender an edge.
    """
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (size, size))
    img = img.convert("RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))
    return torch.from_numpy(np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1)))


def decode_label(data: bytes) -> int:
    return int(data)


def image_sample(jpg: bytes, cls: bytes) -> tuple[torch.Tensor, int]:
    return decode_image(jpg), decode_label(cls)


def collate_images(
    samples: Sequence[tuple[torch.Tensor, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of (CHW tensor, label) -> (BxCxHxW uint8 tensor, int64 label tensor)."""
    images = torch.stack([s[0] for s in samples])
    labels = torch.tensor([s[1] for s in samples], dtype=torch.int64)
    return images, labels


# W4 -------------------------------------------------------------------------
def is_english(record: dict) -> bool:
    return record["lang"] == "en"


def tokenize(text: str) -> list[int]:
    """Whitespace tokens -> ints. ``hash`` of str is salted per interpreter, but
    forked workers share the parent's salt, and the checks only count tokens."""
    return [hash(w) % VOCAB_BUCKETS for w in text.split()]


def tokenize_record(record: dict) -> list[int]:
    return tokenize(record["text"])


# W6 -------------------------------------------------------------------------
def one_thread_tokenizers() -> None:
    """Make ``encode_batch`` encode on the calling thread (inherited by workers):
    each W6 contender gets its cores from its 2 workers (the floor: x2), never
    from tokenizers' own thread pool."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def load_tokenizer(path: str):  # noqa: ANN201 (tokenizers is imported lazily)
    one_thread_tokenizers()
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def read_texts(paths: list[str]) -> list[str]:
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
    return texts
