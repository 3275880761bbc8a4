"""parse_jsonl: (path, stream) -> one JSON value per line."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from itertools import repeat
from typing import Any

from ..datapipes.registry import register_op
from .lines import LineReader, check_text_params


@register_op("parse_jsonl")
class ParseJsonlNode(LineReader):
    """Elements: the parsed value of each non-blank line (``(path, value)``
    with ``return_path``). ``json.loads`` reads the bytes directly (UTF-8,
    -16 or -32), so the only Python call per line is the parse itself. An
    invalid or undecodable line is bad input (reported with its line number)."""

    @staticmethod
    def validate(params: Mapping[str, Any]) -> None:
        check_text_params("parse_jsonl", params)

    def chain(self, lines: Iterator[Any], first_line: int) -> Iterator[Any]:
        if self.params.get("encoding", "utf-8").lower().replace("-", "") != "utf8":
            lines = self.decoded(lines)
            values = map(json.loads, filter(str.strip, lines))
        else:
            values = map(json.loads, filter(str.strip if self._text else bytes.strip, lines))
        return zip(repeat(self._path), values) if self.params.get("return_path") else values
