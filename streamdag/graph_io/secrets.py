"""Credentials in fsspec ``storage_options`` (and ``open_files``'
``kwargs_for_open``, which go to the same filesystem). A saved graph leaves them out
unless the caller asks for them: graph files get shared, committed and
printed, and a graph without them still runs, because the filesystem then
finds credentials its usual way (for S3: environment variables, a profile
under ~/.aws, an instance role). Only the file loses them; the graph in
memory, and what worker processes receive, keep them."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.node import Node

OPTIONS_PARAMS = ("storage_options", "kwargs_for_open")

# Keys that hold a credential or half of one, at any depth of storage_options
# (compared in lower case): s3fs (key/secret/token, username/password) and
# other fsspec filesystems, botocore's client_kwargs, adlfs (Azure), and HTTP
# headers (HTTPFileSystem's client_kwargs.headers).
SECRET_KEYS = frozenset(
    """key secret token username password passphrase private_key
    aws_access_key_id aws_secret_access_key aws_session_token
    account_key sas_token connection_string client_secret
    authorization proxy-authorization cookie x-api-key""".split()
)


def without_secrets(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the credentials in its storage_options (and
    kwargs_for_open) removed."""
    return {k: _split(v, k)[0] if k in OPTIONS_PARAMS else v for k, v in params.items()}


def secrets_in(nodes: Iterable[Node]) -> list[str]:
    """Each node that holds credentials, with where: ``file_lister node
    'files' (storage_options.key, storage_options.secret)``."""
    found = []
    for node in nodes:
        paths = [p for name in OPTIONS_PARAMS for p in _split(node.params.get(name), name)[1]]
        if paths:
            found.append(f"{node.label} ({', '.join(paths)})")
    return found


def warn_left_out(found: list[str]) -> None:
    """A UserWarning naming the credentials a save leaves out, if any: the
    graph loaded from the file must then find them elsewhere."""
    if not found:
        return
    level, frame = 2, sys._getframe(1)  # attribute it to the first caller outside streamdag
    while frame.f_back and frame.f_globals.get("__name__", "").startswith("streamdag."):
        level, frame = level + 1, frame.f_back
    warnings.warn(
        f"credentials left out of the saved graph: {', '.join(found)}; the loaded graph "
        "gets credentials the filesystem's usual way (for S3: environment variables, a "
        "profile or an instance role); pass include_secrets=True to write them",
        UserWarning,
        stacklevel=level,
    )


def _split(value: Any, where: str) -> tuple[Any, list[str]]:
    """``value`` without secret keys, and the paths of the keys removed."""
    if isinstance(value, Mapping):
        kept, paths = {}, []
        for key, item in value.items():
            path = f"{where}.{key}"
            if isinstance(key, str) and key.lower() in SECRET_KEYS:
                paths.append(path)
                continue
            kept[key], inner = _split(item, path)
            paths += inner
        return kept, paths
    if isinstance(value, (list, tuple)):
        parts = [_split(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return type(value)(p[0] for p in parts), [path for p in parts for path in p[1]]
    return value, []
