"""parse_json_files: (path, stream) -> (path, parsed JSON of the whole file),
torchdata's JsonParser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..core.policy import SKIP, not_skipped
from ..core.streams import close_quietly
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy


class ParseJsonFilesNode(ErrorPolicy, RuntimeNode):
    """One output per file: the stream is read whole, closed, and parsed by
    ``json.loads`` with ``kwargs`` (bytes or text: ``json.loads`` detects
    the encoding of bytes). Stateless: a resume re-opens the next file. An
    invalid file is bad input."""

    def iterator(self) -> Iterator[tuple[str, Any]]:
        return filter(not_skipped, map(self._parse, self.inputs[0].iterator()))

    def _parse(self, item: Any) -> Any:
        if type(item) is not tuple or len(item) != 2:
            msg = (
                f"parse_json_files expects (path, stream) pairs as open_files() yields "
                f"them, got {type(item).__name__}"
            )
            self.reraise(TypeError(msg), f"element {str(item)[:80]!r}")
        path, stream = item
        try:
            data = stream.read() if hasattr(stream, "read") else stream
            return path, json.loads(data, **(self.params["kwargs"] or {}))
        except Exception as exc:
            self.fail(exc, repr(path))
            return SKIP
        finally:
            close_quietly(stream)
