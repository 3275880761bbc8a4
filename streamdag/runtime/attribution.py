"""Which node an error belongs to, and on which element: read once from the
traceback when an error leaves the graph, never by a hook per element. A
frame of the node's own code, of a function it declares, or of the thin
``framed`` wrapper it puts around a function whose call would leave no frame
of its own, names the node."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import CodeType, FrameType, FunctionType
from typing import Any

from ..errors import NodeError
from .node import RuntimeNode
from .sources import describe


def node_of_frame(
    frame: FrameType, code_owners: Mapping[CodeType, RuntimeNode]
) -> RuntimeNode | None:
    """The node a frame runs for: a user function a node calls, or a runtime
    node's own code (``self``, or ``_sd_node`` in ``framed``)."""
    node = code_owners.get(frame.f_code)
    if node is None:
        local = frame.f_locals
        candidate = local.get("self", local.get("_sd_node"))
        if isinstance(candidate, RuntimeNode):
            node = candidate
    return node


UNKNOWN: Any = object()  # the element an error happened on is not known


def node_error(exc: BaseException, node: RuntimeNode | None, element: Any = UNKNOWN) -> NodeError:
    where = node.label if node else "an unknown node"
    source = None if element is UNKNOWN else describe(element)
    on = f" (on {source})" if source else ""
    err = NodeError(
        f"{where} raised {type(exc).__name__}: {exc}{on}",
        op=node.spec.op if node else "",
        name=node.spec.name if node else None,
        node_id=node.spec.id if node else "",
        source=source,
    )
    return err


def framed(
    fn: Callable[..., Any], node: RuntimeNode, nargs: int = 1, *, always: bool = False
) -> Callable[..., Any]:
    """``fn`` itself when it is Python code that takes ``nargs`` positional
    arguments; else a thin Python wrapper, so that an error is attributed to
    ``node`` even where no frame of ``fn`` shows it: raised inside a C
    function (``int``, ``str.split``), or by the call itself (``lambda a, b:``
    called with one element). ``always``: wrap Python code too, for a call
    per batch (collate), where the wrapper costs nothing that shows and the
    function (torch's ``default_collate``) is no node's own."""
    if not always and code_of(fn) is not None and takes(fn, nargs):
        return fn

    def call(*args: Any) -> Any:
        _sd_node = node  # noqa: F841 - read back from the frame by culprit
        return fn(*args)

    return call


def takes(fn: Callable[..., Any], nargs: int) -> bool:
    """Can ``fn`` be called with ``nargs`` positional arguments? (once, at setup)"""
    try:
        inspect.signature(fn).bind(*range(nargs))
    except (TypeError, ValueError):  # ValueError: no signature to check
        return False
    return True


def argument_of(frame: FrameType, node: RuntimeNode) -> Any:
    """The element ``node`` called a function with, when ``frame`` is the
    ``framed`` wrapper's (its arguments) or a plain function's the node
    declares (its first parameter); else ``UNKNOWN``."""
    local = frame.f_locals
    if local.get("_sd_node") is node and "args" in local:
        args = local["args"]
        return args[0] if len(args) == 1 else args
    code = frame.f_code
    if code.co_argcount and any(
        isinstance(fn, FunctionType) and fn.__code__ is code for fn in node.user_functions()
    ):
        return local.get(code.co_varnames[0], UNKNOWN)
    return UNKNOWN


def code_of(fn: Any) -> Any:
    """The code object that runs when ``fn`` is called, if it has one."""
    while hasattr(fn, "func"):  # functools.partial
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is None and not isinstance(fn, type):
        code = getattr(type(fn).__call__, "__code__", None)
    return code
