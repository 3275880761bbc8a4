"""Op specs: everything known about an op without running it.

A spec names the op, its inputs, its parameters with their defaults and
checks, its traits (does it split data across workers? decode? run in the
main process?) and where its runtime lives, as a ``"module:Class"`` path
imported only when a graph runs (fsspec's ``known_implementations``
pattern). Loading, validating, showing, editing and saving a graph read
specs only, so they work on a machine without the op's optional dependency;
``install`` says how to get it when the graph is run there."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ParamError
from .params import check_known


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: a param without a default: every node must give it
REQUIRED: Any = _Marker("REQUIRED")
#: a param the op reads only if given (third-party ops that declare names only)
UNSET: Any = _Marker("UNSET")

Check = Callable[[str, str, Any], None]  # (op, key, value) -> None or ParamError


@dataclass(frozen=True)
class Param:
    """One parameter: its default and the check its value must pass."""

    default: Any = REQUIRED
    check: Check | None = None


def _never(params: Mapping[str, Any]) -> bool:
    return False


def _num_instances(params: Mapping[str, Any]) -> int:
    return params["num_instances"]


@dataclass(frozen=True)
class OpSpec:
    """An op as data. ``params`` None means the op takes any keys and checks
    them itself (``check``); a mapping lists every key it takes."""

    name: str
    #: ``"module:Class"`` (imported when a graph with the op runs) or the class
    runtime: str | type
    params: Mapping[str, Param] | None = field(default_factory=dict)
    #: (min, max) input count; max None: any number
    inputs: tuple[int, int | None] = (1, 1)
    #: checks across params, after each param's own check
    check: Callable[[Mapping[str, Any]], None] | None = None
    #: yields only this worker's share (sharding_filter, a shardable reader):
    #: nodes after it draw per-worker seeds, and it may not be sharded again
    splits_data: bool = False
    #: one output per input, computed as it is pulled from that element alone
    #: (per params; no global RNG, no side effect): a shuffle after the node
    #: may run before it (the decode-late rule)
    elementwise: Callable[[Mapping[str, Any]], bool] = _never
    #: turns encoded data into larger decoded values (the decode-late rule)
    decodes: bool = False
    #: every input element comes out, less those skipped under on_error
    #: (statistics derive counts from it; batch sizes are seen through it)
    passthrough: bool = False
    #: "main": runs in the main process over the workers' merged stream
    placement: str = "worker"
    #: a main-process op gets the merged stream through a prefetch(n) thread
    receive_ahead: int = 0
    #: outputs are read through ``branch`` nodes (fork, demux)
    hub: bool = False
    #: a hub's number of outputs (branch indices 0 .. outputs - 1)
    outputs: Callable[[Mapping[str, Any]], int] = _num_instances
    #: made by a reading service while a graph runs; never written in a graph
    runtime_only: bool = False
    #: how to install what the runtime needs, for the error when it is missing
    install: str = ""
    #: op-specific data the runtime reads (a custom reader's definition)
    definition: Any = None

    def __post_init__(self) -> None:
        if self.params is not None:
            object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def min_inputs(self) -> int:
        return self.inputs[0]

    @property
    def max_inputs(self) -> int | None:
        return self.inputs[1]

    def defaults(self) -> dict[str, Any]:
        """The params a node gets when it gives none."""
        return {
            k: p.default
            for k, p in (self.params or {}).items()
            if p.default is not REQUIRED and p.default is not UNSET
        }

    @property
    def origin(self) -> str | None:
        """The module that defines the op: a custom reader's function's, a
        registered runtime class's, or the module its runtime path names."""
        target = getattr(self.definition, "target", self.runtime)
        if isinstance(target, str):
            return target.partition(":")[0]
        module = getattr(target, "__module__", None)
        return module if isinstance(module, str) else None

    def value(self, params: Mapping[str, Any], key: str) -> Any:
        """``params[key]``, or the op's default for it."""
        return params[key] if key in params else self.params[key].default

    def complete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with the defaults filled in, checked: an unknown key
        (with a did-you-mean), a missing required one or a bad value is a
        ParamError naming the op."""
        if self.params is None:
            full = dict(params)
        else:
            check_known(self.name, params, self.params)
            full = {**params, **{k: v for k, v in self.defaults().items() if k not in params}}
            for key, param in self.params.items():
                if key not in full:
                    if param.default is REQUIRED:
                        raise ParamError(f"{self.name}: missing param {key!r}")
                    continue
                if param.check is not None:
                    param.check(self.name, key, full[key])
        if self.check is not None:
            self.check(full)
        return full

    def check_inputs(self, count: int) -> None:
        lo, hi = self.inputs
        if count < lo or (hi is not None and count > hi):
            want = str(lo) if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
            raise ParamError(f"{self.name}: expects {want} inputs, got {count}")
