"""Op registry: op name -> runtime implementation and parameter check.

Like fsspec's registry: a private dict, a read-only view, and errors that say
what to import or install when a name is missing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ParamError
from .params import check_known, did_you_mean

if TYPE_CHECKING:
    from ..runtime.node import RuntimeNode


@dataclass(frozen=True)
class OpDef:
    """What the runtime needs to know about an op."""

    name: str
    runtime: type[RuntimeNode]
    validate: Callable[[Mapping[str, Any]], None]
    min_inputs: int
    max_inputs: int | None
    params: frozenset[str] | None = None  # None: not declared, the op's validate decides


_OPS: dict[str, OpDef] = {}
registered_ops: Mapping[str, OpDef] = MappingProxyType(_OPS)


def register_op(name: str, *, inputs: int | tuple[int, int | None] = 1,
                params: Iterable[str] | None = None,
                replace: bool = False) -> Callable[[type[RuntimeNode]], type[RuntimeNode]]:
    """Class decorator registering a runtime implementation under ``name``.

    The class's ``validate(params)`` staticmethod checks parameters at graph
    construction; ``inputs`` is an exact count or a (min, max) range;
    ``params`` names every param the op takes, so that any other key (a typo
    in a hand-edited graph) is an error rather than silently ignored."""
    lo, hi = (inputs, inputs) if isinstance(inputs, int) else inputs
    known = None if params is None else frozenset(params)

    def deco(cls: type[RuntimeNode]) -> type[RuntimeNode]:
        if name in _OPS and not replace and _OPS[name].runtime is not cls:
            raise ValueError(f"op {name!r} is already registered by {_OPS[name].runtime!r}")
        _OPS[name] = OpDef(name, cls, cls.validate, lo, hi, known)
        cls.op = name
        return cls

    return deco


def get_op(name: str) -> OpDef:
    try:
        return _OPS[name]
    except KeyError:
        from ..readers.custom import load_entry_point  # an installed package's reader

        if load_entry_point(name):
            return _OPS[name]
        hint = did_you_mean(name, _OPS)
        msg = (f"unknown op {name!r}{f' ({hint})' if hint else ''}: no implementation is "
               "registered under that name. Import the module that defines it (or install "
               "the package that provides it through the 'streamdag.readers' entry point) "
               "before building or loading the graph.")
        raise ParamError(msg) from None


def check_params(op: OpDef, params: Mapping[str, Any]) -> None:
    """ParamError for a param the op does not take, then the op's own checks."""
    if op.params is not None:
        check_known(op.name, params, op.params)
    op.validate(params)


def check_inputs(op: OpDef, count: int) -> None:
    if count < op.min_inputs or (op.max_inputs is not None and count > op.max_inputs):
        want = (str(op.min_inputs) if op.min_inputs == op.max_inputs
                else f"{op.min_inputs} or more" if op.max_inputs is None
                else f"{op.min_inputs} to {op.max_inputs}")
        raise ParamError(f"{op.name}: expects {want} inputs, got {count}")
