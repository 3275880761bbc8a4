"""Custom readers as specs: a ``@sd.reader`` function or class is an op
whose params are its keyword parameters (checked against its signature) and
whose runtime is the shared custom-reader node, which calls the target."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..errors import ParamError
from .policy import check_on_error
from .spec import OpSpec

ENTRY_POINT_GROUP = "streamdag.readers"
RESERVED = frozenset({"on_error", "name"})
RUNTIME = "streamdag.readers.custom:CustomReaderNode"


@dataclass(frozen=True)
class ReaderDef:
    """A reader: its op name, the function or class called, whether it takes
    an input element per call (``inputs=1``) and yields only its share."""

    name: str
    target: Callable[..., Any]
    inputs: int
    shardable: bool
    signature: inspect.Signature

    @classmethod
    def of(
        cls, name: str, target: Callable[..., Any], inputs: int = 0, shardable: bool = False
    ) -> ReaderDef:
        if inputs not in (0, 1):
            raise ParamError(f"reader {name!r}: inputs must be 0 (a source) or 1, got {inputs!r}")
        signature = inspect.signature(target)
        clash = RESERVED.intersection(signature.parameters)
        if clash:
            raise ParamError(
                f"reader {name!r}: parameter names {sorted(clash)} are reserved "
                "for the node (rename them)"
            )
        return cls(name, target, inputs, shardable, signature)

    @property
    def has_state(self) -> bool:
        return isinstance(self.target, type) and all(
            callable(getattr(self.target, m, None)) for m in ("state_dict", "load_state_dict")
        )


def reader_spec(definition: ReaderDef) -> OpSpec:
    return OpSpec(
        definition.name,
        RUNTIME,
        params=None,
        inputs=(definition.inputs, definition.inputs),
        check=partial(_check, definition),
        splits_data=definition.shardable,
        definition=definition,
    )


def _check(definition: ReaderDef, params: Mapping[str, Any]) -> None:
    check_on_error(definition.name, params)
    args = {k: v for k, v in params.items() if k != "on_error"}
    fixed = (None, None) if definition.inputs else (None,)
    try:
        definition.signature.bind(*fixed, **args)
    except TypeError as exc:
        expected = ", ".join(list(definition.signature.parameters)[len(fixed) :])
        raise ParamError(f"{definition.name}: {exc} (the reader takes: {expected})") from None
