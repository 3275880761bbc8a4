"""Built-in decoders by extension, as in webdataset's ``basichandlers``,
minus anything that unpickles: ``.pyd``/``.pickle`` stay bytes and ``.pth``
is loaded with ``torch.load(weights_only=True)`` (tensors and containers
only; anything else is refused with torch's error)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any


def text(data: bytes) -> str:
    return data.decode("utf-8")


def integer(data: bytes) -> int:
    return int(data)


def json_value(data: bytes) -> Any:
    return json.loads(data)


def npy(data: bytes) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def msgpack_value(data: bytes) -> Any:
    import msgpack

    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def pth(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


BUILTIN: dict[str, Callable[[bytes], Any]] = {
    **dict.fromkeys(("txt", "text", "transcript"), text),
    **dict.fromkeys(("cls", "cls2", "class", "count", "index", "inx", "id"), integer),
    **dict.fromkeys(("json", "jsn"), json_value),
    "npy": npy,
    **dict.fromkeys(("msgpack", "mp"), msgpack_value),
    "pth": pth,
}
