"""read_from_http (torchdata's ``HttpReader``): url -> (url, response stream).

One ``requests`` GET per URL with ``stream=True``: the body is read by the
node downstream as it goes (never held whole here). ``timeout`` and the
other keyword arguments go to ``requests`` as they did in torchdata
(``headers``, ``auth``, ``allow_redirects``, ...). An HTTP error status is an
error naming the URL; ``skip_on_error=True`` (torchdata's name) drops it
with a warning, like ``on_error="warn"``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core.policy import SKIP, not_skipped
from ..core.streams import close_quietly
from ..runtime.node import RuntimeNode
from ..runtime.policy import ErrorPolicy


class HttpReaderNode(ErrorPolicy, RuntimeNode):
    """Stateless: a resume fetches the URL again and the reader downstream
    skips to its position."""

    def setup(self) -> None:
        import requests

        self._session = requests.Session()
        self._last: Any = None

    @property
    def on_error(self) -> str:
        return "warn" if self.params["skip_on_error"] else self.params["on_error"]

    def iterator(self) -> Iterator[tuple[str, Any]]:
        return filter(not_skipped, map(self._get, self.inputs[0].iterator()))

    def _get(self, url: Any) -> Any:
        if not isinstance(url, str):
            msg = f"read_from_http expects URLs (str), got {type(url).__name__}"
            self.reraise(TypeError(msg), f"element {str(url)[:80]!r}")
        try:
            response = self._session.get(
                url, timeout=self.params["timeout"], stream=True, **self.params["kwargs"]
            )
            response.raise_for_status()
        except Exception as exc:
            self.fail(exc, repr(url))
            return SKIP
        self._last = response.raw
        return url, response.raw

    def close(self) -> None:
        last, self._last = self._last, None
        if last is not None:
            close_quietly(last)
        self._session.close()
