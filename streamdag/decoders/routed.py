"""routed_decode: (path, bytes or stream) -> (path, decoded value), as
torchdata's ``RoutedDecoder``.

Each handler is called as ``handler(key_fn(path), data)``; the first result
that is not None wins, else the bytes stay. Without handlers the defaults
decode what torch's ``basichandlers`` and ``imagehandler("torch")`` decode,
with the same values, except that nothing is unpickled (``.pickle``/``.pyd``
stay bytes, ``.pt`` is loaded with ``weights_only=True``): a data file must
not run code."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any

from ..core.policy import SKIP, not_skipped
from ..core.streams import close_quietly
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy
from .handlers import integer, json_value, pth, text

Handler = Callable[[str, Any], Any]

# torch tests ``extension in "txt text transcript"``: a substring test, so
# "", "t" or "ex" decode as text too; kept so outputs match
_TEXT_WORDS = "txt text transcript"
_JSON_WORDS = "json jsn"
_INTS = frozenset(("cls", "cls2", "class", "count", "index", "inx", "id"))
_IMAGES = frozenset(("jpg", "jpeg", "png", "ppm", "pgm", "pbm", "pnm"))


def extension_of(path: str) -> str:
    """The default ``key_fn``: the last extension, without its dot."""
    return os.path.splitext(path)[1][1:]


def basic_handler(extension: str, data: bytes) -> Any:
    """Text, ints, JSON and tensors by extension, as torch's ``basichandlers``
    (without unpickling); None for anything else."""
    if extension in _TEXT_WORDS:
        return text(data)
    if extension in _INTS:
        try:
            return integer(data)
        except ValueError:
            return None
    if extension in _JSON_WORDS:
        return json_value(data)
    if extension == "pt":
        return pth(data)
    return None


def torch_image_handler(extension: str, data: bytes) -> Any:
    """Images as float CHW RGB tensors in [0, 1], as torch's
    ``imagehandler("torch")``; None for other extensions."""
    if extension.lower() not in _IMAGES:
        return None
    import numpy as np
    import torch

    from .image import open_image

    img = open_image(data)
    img.load()
    array = np.asarray(img.convert("RGB"))
    return torch.tensor(np.array(array.transpose(2, 0, 1))) / 255.0


DEFAULT_HANDLERS: tuple[Handler, ...] = (basic_handler, torch_image_handler)


class RoutedDecodeNode(ErrorPolicy, RuntimeNode):
    """Stateless, one output per input. A path whose name starts with "_"
    and bytes data gives the text, as torchdata does; empty data stays."""

    def setup(self) -> None:
        self._handlers = tuple(self.params["handlers"]) or DEFAULT_HANDLERS
        self._key = self.params["key_fn"] or extension_of

    def iterator(self) -> Iterator[tuple[str, Any]]:
        return filter(not_skipped, map(self._decode, self.inputs[0].iterator()))

    def user_functions(self) -> list[Callable[..., Any]]:
        return [*self.params["handlers"], *filter(None, [self.params["key_fn"]])]

    def _decode(self, item: Any) -> Any:
        if type(item) is not tuple or len(item) != 2:
            msg = f"routed_decode expects (path, data) pairs, got {type(item).__name__}"
            self.reraise(TypeError(msg), f"element {str(item)[:80]!r}")
        path, data = item
        try:
            return path, self._value(path, data)
        except Exception as exc:
            self.fail(exc, repr(path))
            return SKIP

    def _value(self, path: str, data: Any) -> Any:
        if path[:1] == "_" and isinstance(data, bytes):
            return data.decode("utf-8")
        if not data:
            return data
        if isinstance(data, (io.BufferedIOBase, io.RawIOBase)):  # as torch: binary streams
            stream, data = data, b"".join(data)
            close_quietly(stream)
        key = self._key(path)
        for handler in self._handlers:
            value = handler(key, data)
            if value is not None:
                return value
        return data
