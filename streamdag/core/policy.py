"""The error policy as a param: ``on_error="raise"|"skip"|"warn"`` of reader
and decoder ops, and ``SKIP``, what a node's per-element function returns in
place of an element the policy dropped (filtered out in C by ``not_skipped``)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from operator import is_not
from typing import Any

from .params import check_choice
from .spec import Param

ON_ERROR = ("raise", "skip", "warn")
#: the ``on_error`` param every op with an error policy takes
ON_ERROR_PARAM = Param("raise", partial(check_choice, choices=ON_ERROR))

SKIP: Any = object()
not_skipped = partial(is_not, SKIP)


def check_on_error(op: str, params: Mapping[str, Any]) -> None:
    check_choice(op, "on_error", params.get("on_error", "raise"), ON_ERROR)
