"""The op registry: op name -> ``OpSpec``.

Like fsspec's registry: a private dict, a read-only view, lazy runtime
paths, and errors that say what to import or install when a name is
missing. The built-in ops' specs are listed in ``core.ops``; third-party
ops register a runtime class with ``@register_op``, custom readers with
``@sd.reader``, installed packages through the ``streamdag.readers`` entry
point."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from ..errors import ParamError
from .ops import BUILTIN
from .params import did_you_mean
from .readers import ENTRY_POINT_GROUP, ReaderDef, reader_spec
from .spec import UNSET, OpSpec, Param

T = TypeVar("T", bound=type)

_OPS: dict[str, OpSpec] = {spec.name: spec for spec in BUILTIN}
registered_ops: Mapping[str, OpSpec] = MappingProxyType(_OPS)


def register(spec: OpSpec, *, replace: bool = False) -> OpSpec:
    """Add ``spec``; a different op under a taken name needs ``replace``."""
    old = _OPS.get(spec.name)
    if old is not None and not replace and old.runtime is not spec.runtime:
        raise ValueError(f"op {spec.name!r} is already registered by {old.runtime!r}")
    _OPS[spec.name] = spec
    return spec


def register_op(
    name: str,
    *,
    inputs: int | tuple[int, int | None] = 1,
    params: Mapping[str, Any] | Iterable[str] | None = None,
    replace: bool = False,
    **traits: Any,
) -> Callable[[T], T]:
    """Class decorator for a third-party runtime class: registers the op
    ``name`` with the class as its runtime.

    ``inputs`` is an exact count or a (min, max) range. ``params`` maps each
    param to its default (or a ``Param``), or names them (a node then gets
    only the keys it gives); any other key is an error. None: the class's
    ``validate(params)`` staticmethod decides alone. ``traits`` are the
    other ``OpSpec`` fields (``splits_data``, ``placement``, ...)."""
    lo, hi = (inputs, inputs) if isinstance(inputs, int) else inputs

    def deco(cls: T) -> T:
        validate = getattr(cls, "validate", None)
        register(
            OpSpec(name, cls, _params(params), (lo, hi), check=validate, **traits), replace=replace
        )
        return cls

    return deco


def _params(params: Mapping[str, Any] | Iterable[str] | None) -> dict[str, Param] | None:
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {k: v if isinstance(v, Param) else Param(v) for k, v in params.items()}
    return {k: Param(UNSET) for k in params}


def get_op(name: str) -> OpSpec:
    """The spec of ``name``; ParamError with a did-you-mean if there is none."""
    spec = _OPS.get(name)
    if spec is not None:
        return spec
    if load_entry_point(name):
        return _OPS[name]
    hint = did_you_mean(name, _OPS)
    msg = (
        f"unknown op {name!r}{f' ({hint})' if hint else ''}: no implementation is "
        "registered under that name. Import the module that defines it (or install "
        "the package that provides it through the 'streamdag.readers' entry point) "
        "before building or loading the graph."
    )
    raise ParamError(msg)


def load_entry_point(name: str) -> bool:
    """Register the reader ``name`` from the ``streamdag.readers`` entry
    points, if an installed package declares it (installing the package was
    the user's decision to trust it); True if it is now known. The entry
    point names an ``@sd.reader`` object (registered when its module is
    imported) or a plain generator function or class, registered here."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        target = ep.load()
        if name not in _OPS and callable(target) and not hasattr(target, "definition"):
            register(reader_spec(ReaderDef.of(name, target)))
        return name in _OPS
    return False
