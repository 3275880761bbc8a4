"""The graph spec: an immutable node. Nothing in it runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any


def new_node_id(op: str) -> str:
    """Short ids, unique enough for one graph and readable in files and errors."""
    return f"{op}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, eq=False)
class Node:
    """One operation of the DAG: ``op`` names a registered implementation,
    ``params`` are its plain-data arguments, ``inputs`` are the upstream nodes."""

    op: str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[Node, ...] = ()
    id: str = ""
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if not self.id:
            object.__setattr__(self, "id", new_node_id(self.op))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as plain fields (params is a read-only view, not picklable)."""
        return (Node, (self.op, dict(self.params), self.inputs, self.id, self.name))

    def evolve(self, **changes: Any) -> Node:
        """A copy with some fields changed (same id unless given)."""
        return replace(self, **changes)

    @property
    def label(self) -> str:
        """How errors and tables refer to this node."""
        return f"{self.op} node {self.name!r}" if self.name else f"{self.op} node {self.id}"

    def __repr__(self) -> str:
        return f"Node({self.label}, inputs={[n.id for n in self.inputs]})"


def walk(output: Node) -> list[Node]:
    """All nodes reachable from ``output``, inputs before their consumers, in a
    deterministic order (depth first, inputs in order)."""
    order: list[Node] = []
    seen: set[str] = set()
    stack: list[tuple[Node, Iterator[Node]]] = [(output, iter(output.inputs))]
    on_path = {output.id}
    while stack:
        node, pending = stack[-1]
        child = next(pending, None)
        if child is None:
            stack.pop()
            on_path.discard(node.id)
            if node.id not in seen:
                seen.add(node.id)
                order.append(node)
            continue
        if child.id in on_path:
            raise ValueError(f"cycle through {child.label}")
        if child.id not in seen:
            stack.append((child, iter(child.inputs)))
            on_path.add(child.id)
    return order
