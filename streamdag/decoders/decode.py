"""decode: routed decoding of samples by extension.

For each field of a dict sample (those not starting with "__"), the first
of these that gives a value wins: the user's ``by_ext`` function for the
field name or its last extension; each ``handler(key, data)`` in order
(webdataset style: a value, or None to pass; ``key`` lowercased without a
leading dot, so torchdata's ".JPG" keys and the webdataset package's "jpg"
route alike); the built-in decoder for the
extension (images, text, ints, json, npy, msgpack, pth); else the raw bytes
stay. Routing is resolved once per field name, not per sample."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from ..core.policy import SKIP, not_skipped
from ..core.streams import MemberPath, close_quietly
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy
from .handlers import BUILTIN
from .image import IMAGE_EXTENSIONS, decode_image


def field_of(path: str) -> str:
    """The field name of a file path: its name after the first dot, lowercased."""
    name = path.member if type(path) is MemberPath else path
    name = name[name.rfind("/") + 1 :]
    dot = name.find(".")
    return name[dot + 1 :].lower() if dot > 0 else ""


class DecodeNode(ErrorPolicy, RuntimeNode):
    """Input: dict samples (webdataset()), or ``(path, bytes or stream)``
    pairs routed by the path's extension. Stateless. A field that fails to
    decode makes the whole sample bad input (dropped under ``skip``/``warn``)."""

    def setup(self) -> None:
        p = self.params
        self._handlers = tuple(p.get("handlers", ()))
        self._by_ext = {k.lower().lstrip("."): v for k, v in (p["by_ext"] or {}).items()}
        self._builtin: dict[str, Callable[[bytes], Any]] = {}
        if p["defaults"]:
            self._builtin.update(BUILTIN)
            image = p["image"]
            if image != "bytes":
                decode = partial(decode_image, mode=p["mode"], size=p["size"], to=image)
                self._builtin.update(dict.fromkeys(IMAGE_EXTENSIONS, decode))
        self._routes: dict[str, tuple[Any, ...]] = {}  # key -> (by_ext, builtin, field)

    def iterator(self) -> Iterator[Any]:
        return filter(not_skipped, map(self._sample, self.inputs[0].iterator()))

    def user_functions(self) -> list[Callable[..., Any]]:
        return [*self._handlers, *self._by_ext.values()]

    def _route(self, key: str) -> tuple[Any, ...]:
        field = key.lower().removeprefix(".")
        ext = field[field.rfind(".") + 1 :]
        route = (self._by_ext.get(field) or self._by_ext.get(ext), self._builtin.get(ext), field)
        self._routes[key] = route
        return route

    def _field(self, key: str, data: Any) -> Any:
        own, builtin, field = self._routes.get(key) or self._route(key)
        if hasattr(data, "read"):
            stream, data = data, data.read()
            close_quietly(stream)
        if own is not None:
            return own(data)
        for handler in self._handlers:
            value = handler(field, data)
            if value is not None:
                return value
        return builtin(data) if builtin is not None else data

    def _sample(self, sample: Any) -> Any:
        if type(sample) is dict:
            out = {}
            key = None
            try:
                for key, value in sample.items():
                    out[key] = value if key[:2] == "__" else self._field(key, value)
            except Exception as exc:
                url = sample.get("__url__")
                where = (
                    f"sample {sample.get('__key__')!r}"
                    f"{'' if url is None else f' of {url!r}'}, field {key!r}"
                )
                self.fail(exc, where)
                return SKIP
            return out
        if type(sample) is tuple and len(sample) == 2 and isinstance(sample[0], str):
            path = sample[0]
            try:
                return path, self._field(field_of(path), sample[1])
            except Exception as exc:
                self.fail(exc, repr(path))
                return SKIP
        msg = f"decode expects dict samples or (path, data) pairs, got {type(sample).__name__}"
        self.reraise(TypeError(msg), f"element {str(sample)[:80]!r}")
