"""Function references: how a callable in a node's params is named on disk.

Saving turns a callable into ``"module:qualname"`` (or its registered name);
loading turns the name back into the callable under the rules of ``trust``:
the name must be registered, one of the SAFE_REFS builtins, one of
streamdag's GRAPH_FUNCTIONS (under any of its streamdag names), or in a
trusted module; a module is imported only if it is trusted, the attribute
path may not pass through another module or a dunder, and the object found
must be defined in a trusted module. Nothing is ever unpickled or called."""

from __future__ import annotations

import functools
import importlib
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from ..errors import GraphFormatError
from .trust import GRAPH_FUNCTIONS, SAFE_REFS, in_streamdag, is_dotted_name, is_trusted

F = TypeVar("F", bound=Callable[..., Any])

_BY_NAME: dict[str, Callable[..., Any]] = {}
_NAME_OF: dict[int, str] = {}  # id(fn) -> name; _BY_NAME keeps fn alive so ids stay valid
_ORIGIN: dict[str, str] = {}  # name -> module that registered it (a hint for loading)

_HOW_TO = (
    "define it with `def` at module level (saved as 'module:qualname'), or register it "
    "with @sd.register_function('name')"
)


@overload
def register_function(name: str) -> Callable[[F], F]: ...
@overload
def register_function(name: str, fn: F, *, replace: bool = False) -> F: ...


def register_function(name: str, fn: Any = None, *, replace: bool = False) -> Any:
    """Save ``fn`` under ``name`` instead of its import path, so graphs survive
    refactoring and callables without an import path (instances, objects
    built at import time) can be saved. Loading finds it without importing
    anything, as long as the registering module was imported first.

    Use as ``@sd.register_function("name")`` or ``sd.register_function("name", obj)``."""
    if not isinstance(name, str) or not name or ":" in name or name.startswith("<"):
        raise ValueError(
            f"register_function: name must be a non-empty str without ':', got {name!r}"
        )
    caller = sys._getframe(1).f_globals.get("__name__")

    def deco(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"register_function({name!r}): {fn!r} is not callable")
        old = _BY_NAME.get(name)
        if old is not None and old is not fn and not replace:
            raise ValueError(
                f"function name {name!r} is already registered for {old!r}; "
                "choose another name or pass replace=True"
            )
        if old is not None:
            _NAME_OF.pop(id(old), None)
        _BY_NAME[name] = fn
        _NAME_OF.setdefault(id(fn), name)
        if isinstance(caller, str) and caller != "__main__":
            _ORIGIN[name] = caller
        return fn

    return deco if fn is None else deco(fn)


def registered_functions() -> Mapping[str, Callable[..., Any]]:
    """A read-only view of the registered names."""
    return types.MappingProxyType(_BY_NAME)


def origin_of(name: str) -> str | None:
    """The module that registered ``name`` (saved as a hint for loading)."""
    return _ORIGIN.get(name)


@dataclass(frozen=True)
class FunctionRef:
    """A function reference loaded without resolving it (for showing, editing
    and converting graphs whose code is not importable here). Saving writes it
    back unchanged; calling it fails with a message saying how to resolve it."""

    ref: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        msg = (
            f"function {self.ref!r} was loaded without resolving it; load the graph with "
            "resolve_functions=True and trusted_modules naming its module to run it"
        )
        raise RuntimeError(msg)

    def __str__(self) -> str:
        if not self.args and not self.kwargs:
            return self.ref
        parts = [self.ref, *map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())]
        return f"partial({', '.join(parts)})"


def unwrap_partial(fn: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """``(func, args, kwargs)`` of a ``functools.partial`` or FunctionRef; else ``(fn, (), {})``."""
    if isinstance(fn, functools.partial):
        return fn.func, tuple(fn.args), dict(fn.keywords)
    if isinstance(fn, FunctionRef):
        return FunctionRef(fn.ref), fn.args, dict(fn.kwargs)
    return fn, (), {}


def name_of(fn: Any, where: str) -> str:
    """The on-disk name of a (non-partial) callable, or GraphFormatError saying
    why it has none and what to write instead."""
    if isinstance(fn, FunctionRef):
        return fn.ref
    registered = _NAME_OF.get(id(fn))
    if registered is not None and _BY_NAME.get(registered) is fn:
        return registered
    qualname = getattr(fn, "__qualname__", None)
    module = _module_of(fn)
    if not isinstance(qualname, str) or not isinstance(module, str):
        kind = type(fn).__name__
        raise GraphFormatError(
            f"{where}: a callable {kind} object has no import path; "
            f"register it with sd.register_function('name', obj)"
        )
    if getattr(fn, "__name__", None) == "<lambda>":
        raise GraphFormatError(
            f"{where}: {module}.{qualname} is a lambda, which cannot be saved; {_HOW_TO}"
        )
    if "<locals>" in qualname:
        raise GraphFormatError(
            f"{where}: {module}.{qualname} is a local function or closure, "
            f"which cannot be saved; {_HOW_TO}"
        )
    if module == "__main__":
        raise GraphFormatError(
            f"{where}: {qualname} is defined in __main__ (the script being "
            "run), which another process cannot import; move it to a module "
            "or register it with @sd.register_function('name')"
        )
    ref = f"{module}:{qualname}"
    found = _lookup(sys.modules.get(module), qualname)
    if found is None or not _same(found, fn):
        raise GraphFormatError(
            f"{where}: {fn!r} cannot be found again as {ref!r} (a bound "
            f"method of an instance, or a renamed object); {_HOW_TO}"
        )
    if in_streamdag(module) and not is_graph_function(fn):
        raise GraphFormatError(
            f"{where}: {ref!r} is not one of streamdag's graph functions "
            "(streamdag.graph_io.GRAPH_FUNCTIONS), so the graph could not be loaded; use a "
            "function of your own module, or register one with @sd.register_function('name')"
        )
    return ref


def resolve(
    ref: Any, trusted: tuple[str, ...], where: str, hints: Mapping[str, str] | None = None
) -> Callable[..., Any]:
    """The callable named by ``ref`` under the trust rules, or GraphFormatError.
    ``hints`` maps registered names to the module that registered them when saved."""
    if not isinstance(ref, str) or not ref:
        raise GraphFormatError(
            f"{where}: expected a function name like 'module:qualname', got {ref!r}"
        )
    if ":" not in ref:
        return _registered(ref, trusted, where, hints or {})
    module, _, qualname = ref.partition(":")
    if not is_dotted_name(module) or not is_dotted_name(qualname):
        raise GraphFormatError(f"{where}: {ref!r} is not of the form 'module:qualname'")
    if any(part.startswith("__") for part in qualname.split(".")):
        raise GraphFormatError(f"{where}: {ref!r}: dunder attributes are never followed")
    if is_trusted(module, trusted):
        return _trusted(ref, module, trusted, where)
    if ref in SAFE_REFS:
        return _found(_import(module, where), ref, where)
    if in_streamdag(module):
        found = _lookup(sys.modules.get(module), qualname)  # streamdag is loaded: no import
        if found is None or not is_graph_function(found):
            raise GraphFormatError(
                f"{where}: {ref!r} is not one of streamdag's graph functions; a graph file may "
                "name only those (streamdag.graph_io.GRAPH_FUNCTIONS), registered functions, the "
                "safe builtins (streamdag.graph_io.SAFE_REFS) and functions of trusted_modules"
            )
        return found
    raise GraphFormatError(
        f"{where}: refusing to import module {module!r} for {ref!r}: loading imports only "
        f"streamdag and trusted modules; if you trust this file and that module, pass "
        f"trusted_modules=[{module!r}]"
    )


def _trusted(ref: str, module: str, trusted: tuple[str, ...], where: str) -> Callable[..., Any]:
    """A function of a trusted module, which must also be defined in one
    (or be a graph function): a trusted module's imports are not trusted."""
    obj = _found(_import(module, where), ref, where)
    home = _module_of(obj)
    if not (isinstance(home, str) and is_trusted(home, trusted)) and not is_graph_function(obj):
        raise GraphFormatError(
            f"{where}: {ref!r} is defined in module {home!r}, which is not "
            "trusted; refer to it by its own module and trust that instead"
        )
    return obj


def _found(target: types.ModuleType, ref: str, where: str) -> Callable[..., Any]:
    module, _, qualname = ref.partition(":")
    obj = _lookup(target, qualname)
    if obj is None:
        raise GraphFormatError(
            f"{where}: {ref!r}: module {module!r} has no callable {qualname!r} "
            "(attribute paths may not pass through other modules)"
        )
    return obj


def is_graph_function(obj: Any) -> bool:
    """``obj`` is one of streamdag's GRAPH_FUNCTIONS."""
    return any(obj is fn for fn in _graph_functions())


@functools.cache
def _graph_functions() -> tuple[Callable[..., Any], ...]:
    found = []
    for ref in sorted(GRAPH_FUNCTIONS):
        module, _, qualname = ref.partition(":")
        fn = _lookup(importlib.import_module(module), qualname)
        if fn is None:
            raise RuntimeError(f"GRAPH_FUNCTIONS names {ref!r}, which does not exist")
        found.append(fn)
    return tuple(found)


def _registered(
    name: str, trusted: tuple[str, ...], where: str, hints: Mapping[str, str]
) -> Callable[..., Any]:
    fn = _BY_NAME.get(name)
    module = hints.get(name)
    if fn is None and module and import_trusted(module, trusted, where):
        fn = _BY_NAME.get(name)
    if fn is None:
        origin = (
            (
                f"it was registered by module {module!r} when saved; import that module first "
                f"or pass trusted_modules=[{module!r}]"
            )
            if module
            else ("import the module that registers it with @sd.register_function first")
        )
        raise GraphFormatError(f"{where}: no function is registered as {name!r}; {origin}")
    return fn


def import_trusted(module: str, trusted: tuple[str, ...], where: str) -> bool:
    """Import ``module`` if the trust rules allow it (to register the op or
    function a file needs); False if they do not."""
    if not is_dotted_name(module) or not is_trusted(module, trusted):
        return False
    _import(module, where)
    return True


def _import(module: str, where: str) -> types.ModuleType:
    try:
        return importlib.import_module(module)
    except Exception as exc:  # a trusted module failing to import is a load error
        raise GraphFormatError(
            f"{where}: importing trusted module {module!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _lookup(target: Any, qualname: str) -> Callable[..., Any] | None:
    """Follow ``a.b.c`` by getattr; None if missing, not callable, or the path
    passes through a module (so a trusted module's ``os`` is not reachable)."""
    obj = target
    if obj is None:
        return None
    for part in qualname.split("."):
        if isinstance(obj, types.ModuleType) and obj is not target:
            return None
        try:
            obj = getattr(obj, part)
        except Exception:
            return None
    if isinstance(obj, types.ModuleType) or not callable(obj):
        return None
    return obj


def _module_of(fn: Any) -> str | None:
    """Where ``fn`` is defined (method descriptors like ``str.split`` name it
    through their class)."""
    module = getattr(fn, "__module__", None)
    if module is None and hasattr(fn, "__objclass__"):
        module = getattr(fn.__objclass__, "__module__", None)
    return module if isinstance(module, str) else None


def _same(found: Any, fn: Any) -> bool:
    if found is fn:
        return True
    if isinstance(fn, types.MethodType):  # classmethods: a new bound object on every access
        return (
            isinstance(found, types.MethodType)
            and found.__func__ is fn.__func__
            and found.__self__ is fn.__self__
        )
    return False


def describe_function(fn: Any) -> str:
    """How tables and drawings show a function: its on-disk name when it has
    one (``pkg.mod:fn``, ``partial(pkg.mod:fn, 2)``), else its repr."""
    base, args, kwargs = unwrap_partial(fn)
    try:
        name = name_of(base, "")
    except GraphFormatError:
        name = repr(base)
    return str(FunctionRef(name, args, kwargs))
