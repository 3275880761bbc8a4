"""map(fn, rng=True): ``fn(element, rng)`` with a ``numpy.random.Generator``
of the element's own, seeded from (base seed, epoch, node, pass, position):
the element's index in the map's input in this pass and worker. The draws do
not depend on what ran before in the process, on threads or on a resume.

One Philox bit generator per node, re-keyed per element: its key is the
node's seed and its counter starts at (0, 0, position, pass), so the streams
of two elements never overlap. Setting that state and wrapping it in a new
``Generator`` costs ~4 µs, a fresh ``default_rng(seed)`` ~35 µs (about one
``integers`` draw against nine). The generator is valid during the call only.

Moved after a shuffle by the decode-late rule (``core/plan.py``), the map
numbers elements as they entered that shuffle (``ShuffleNode.last_seq``), so
its draws are those of the graph as written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import ParamError
from ..runtime.attribution import code_of, framed, takes
from ..runtime.node import ResumableTransform, RuntimeNode
from .columns import arity, with_columns


class _ElementRng:
    """Per-element generators of one node (one per worker copy of the node)."""

    def __init__(self) -> None:
        self._bits = np.random.Philox(key=0)
        self._state = self._bits.state

    def key(self, seed: int) -> None:
        self._state["state"]["key"][:] = (seed, 0)

    def generator(self, passes: int, position: int) -> np.random.Generator:
        state = self._state
        state["state"]["counter"][:] = (0, 0, position, passes)
        state["buffer_pos"] = 4  # nothing buffered from the previous element
        state["has_uint32"] = 0
        self._bits.state = state
        return np.random.Generator(self._bits)


def _caller(node: RuntimeNode) -> Callable[[Any, np.random.Generator], Any]:
    """``(element, rng) -> output``: ``fn(element, rng)``, or with columns
    ``fn(*columns, rng)`` written back to ``output_col``."""
    col, fn = node.params["input_col"], node.params["fn"]
    nargs = arity(col) + 1
    if code_of(fn) is not None and not takes(fn, nargs):
        args = "element" if col is None else ", ".join(["column"] * (nargs - 1))
        msg = (
            f"{node.label}: rng=True calls fn({args}, rng) with the element's own "
            f"numpy Generator, but {getattr(fn, '__name__', fn)!r} does not take "
            f"{nargs} positional arguments; add an rng parameter"
        )
        raise ParamError(msg)
    fn = framed(fn, node, nargs)
    if col is None:
        return fn
    current: list[np.random.Generator] = []

    def call(element: Any, rng: np.random.Generator) -> Any:
        current[:] = (rng,)
        return columns(element)

    columns = with_columns(lambda *args: fn(*args, current[0]), col, node.params["output_col"])
    return call


class RngMapNode(ResumableTransform):
    """State: (pass, elements mapped in it) and the input's state."""

    def setup(self) -> None:
        super().setup()
        self._call = _caller(self)
        self._rng = _ElementRng()
        self._pass = 0
        self._pos = 0

    def reset(self) -> None:
        super().reset()
        self._pass = 0

    def iterator(self) -> Iterator[Any]:
        restored = self.take_restored()
        if restored is None:
            self._pass += 1
            self._pos = 0
        else:
            self._pass, self._pos = restored
        self._rng.key(self.seed())
        return map(self._apply, self.inputs[0].iterator())

    def _apply(self, element: Any) -> Any:
        pos = self._pos
        self._pos = pos + 1
        return self._call(element, self._rng.generator(self._pass, pos))

    def live_state(self) -> list[int]:
        return [self._pass, self._pos]

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["fn"]]


class ShuffledRngMapNode(RuntimeNode):
    """An ``rng=True`` map the decode-late rule moved after the shuffle whose
    id its ``rng`` param holds: stateless, positions read from the shuffle
    (the nodes between them are one-to-one and pull as they are pulled)."""

    def setup(self) -> None:
        self._call = _caller(self)
        self._rng = _ElementRng()

    def iterator(self) -> Iterator[Any]:
        self._shuffle = self.graph.nodes[self.params["rng"]]
        self._rng.key(self.seed())
        return map(self._apply, self.inputs[0].iterator())

    def _apply(self, element: Any) -> Any:
        shuffle = self._shuffle
        return self._call(element, self._rng.generator(shuffle.passes, shuffle.last_seq))

    def user_functions(self) -> list[Callable[..., Any]]:
        return [self.params["fn"]]
