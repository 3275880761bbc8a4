"""``sd.Graph``: an immutable, validated view of a pipeline's DAG for
editing. Every edit returns a new graph, rebuilt from the edited node down to
the output (nodes upstream are shared, ids are kept), and checked again."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..core.node import Node, walk
from ..core.params import param_choices
from ..core.registry import get_op
from ..datapipes.datapipe import DataPipe, make_node
from ..errors import ParamError
from .files import PathLike, load_node, output_of, save
from .validate import check_graph

NodeRef = Node | str


class Graph:
    """A pipeline as data: find nodes, edit them, save, or turn it back into a
    DataPipe. Nodes are addressed by Node, by name or by id."""

    __slots__ = ("_nodes", "_output")

    def __init__(self, pipe: DataPipe[Any] | Graph | Node) -> None:
        self._output = output_of(pipe)
        self._nodes = tuple(check_graph(self._output))

    @classmethod
    def load(
        cls, path: PathLike, trusted_modules: Iterable[str] = (), *, resolve_functions: bool = True
    ) -> Graph:
        """The graph saved at ``path``. With ``resolve_functions=False``
        function references stay names (FunctionRef), nothing is imported,
        and the graph can be shown, edited and saved but not run."""
        output = load_node(path, trusted_modules, resolve_functions=resolve_functions)
        # loading checked each node as it built it (naming its entry in the
        # file): checking them again would double the time a big graph takes
        graph = cls.__new__(cls)
        graph._output, graph._nodes = output, tuple(walk(output))
        return graph

    @property
    def output(self) -> Node:
        return self._output

    @property
    def nodes(self) -> tuple[Node, ...]:
        """All nodes, inputs before their consumers."""
        return self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    def __repr__(self) -> str:
        return f"Graph({len(self._nodes)} nodes, output={self._output.label})"

    # -- finding ----------------------------------------------------------
    def find_all(self, op: str | None = None, name: str | None = None) -> list[Node]:
        """Nodes with this op and/or name, in graph order."""
        return [
            n
            for n in self._nodes
            if (op is None or n.op == op) and (name is None or n.name == name)
        ]

    def find(self, op: str | None = None, name: str | None = None) -> Node:
        """The one node with this op and/or name; LookupError if none or several."""
        found = self.find_all(op, name)
        if len(found) != 1:
            what = ", ".join(f"{k}={v!r}" for k, v in (("op", op), ("name", name)) if v)
            seen = "no node" if not found else f"{len(found)} nodes ({_labels(found)})"
            raise LookupError(f"find({what}): expected exactly one node, found {seen}")
        return found[0]

    def node(self, ref: NodeRef) -> Node:
        """The node ``ref`` stands for: a Node of this graph, a name or an id."""
        if isinstance(ref, Node):
            match = [n for n in self._nodes if n is ref]
        else:
            match = [n for n in self._nodes if n.name == ref] or [
                n for n in self._nodes if n.id == ref
            ]
        if len(match) == 1:
            return match[0]
        if match:
            raise LookupError(f"{len(match)} nodes are named {ref!r} ({_labels(match)}); use an id")
        names = ", ".join(sorted(n.name or n.id for n in self._nodes))
        raise LookupError(f"no node {ref!r} in this graph (nodes: {names})")

    def consumers(self, ref: NodeRef) -> list[Node]:
        """The nodes that read ``ref``."""
        target = self.node(ref)
        return [n for n in self._nodes if any(i is target for i in n.inputs)]

    # -- editing ----------------------------------------------------------
    def set_param(self, ref: NodeRef, key: str, value: Any) -> Graph:
        """Change one param. The key must be one the op takes (or, for an op
        that does not declare its params, one the node already has): this
        catches typos. The op checks the new value."""
        target = self.node(ref)
        known = get_op(target.op).params
        if known is None:
            known = frozenset(target.params)
        if key not in known:
            raise ParamError(f"{target.label} has no param {param_choices(key, known)}")
        return self._edit(target, lambda n: n.evolve(params={**n.params, key: value}))

    def replace(self, ref: NodeRef, new: Node | DataPipe[Any]) -> Graph:
        """Put ``new`` where ``ref`` was. A ``new`` node without inputs whose op
        takes inputs reads the replaced node's inputs; without a name it takes
        the replaced node's name."""
        target, new_node = self.node(ref), output_of(new)

        def swap(old: Node) -> Node:
            node = new_node
            if not node.inputs and old.inputs and get_op(node.op).max_inputs != 0:
                node = node.evolve(inputs=old.inputs)
            return node if node.name is not None else node.evolve(name=old.name)

        return self._edit(target, swap)

    def remove(self, ref: NodeRef) -> Graph:
        """Splice out a node with exactly one input: its consumers read that
        input instead. Refused where the result would be ambiguous."""
        target = self.node(ref)
        if len(target.inputs) != 1:
            why = (
                "it has no input to give its consumers"
                if not target.inputs
                else f"it has {len(target.inputs)} inputs, so its consumers' new input is ambiguous"
            )
            raise ParamError(f"cannot remove {target.label}: {why}; use replace() instead")
        if target.op == "branch" or get_op(target.op).hub:
            raise ParamError(
                f"cannot remove {target.label}: it is part of a fork or demux "
                "(a hub and its branch nodes); replace the branches' consumers' "
                "inputs instead"
            )
        return self._edit(target, lambda n: n.inputs[0])

    def insert_after(
        self, ref: NodeRef, op: str, *, name: str | None = None, **params: Any
    ) -> Graph:
        """Add a new ``op`` node reading ``ref``; ``ref``'s consumers read it instead."""
        target = self.node(ref)
        return self._edit(target, lambda n: make_node(op, params, [n], name))

    # -- out ----------------------------------------------------------------
    def to_datapipe(self) -> DataPipe[Any]:
        return DataPipe(self._output)

    def save(self, path: PathLike, *, include_secrets: bool = False) -> None:
        """``sd.save(self, path)``: credentials only with ``include_secrets``."""
        save(self, path, include_secrets=include_secrets)

    def _edit(self, target: Node, change: Callable[[Node], Node]) -> Graph:
        """Rebuild the graph with ``change`` applied to ``target`` (given with
        its rebuilt inputs); consumers are re-created, keeping their ids."""
        new_of: dict[int, Node] = {}
        for node in self._nodes:
            inputs = tuple(new_of[id(i)] for i in node.inputs)
            if any(a is not b for a, b in zip(inputs, node.inputs, strict=True)):
                node_new = node.evolve(inputs=inputs)
            else:
                node_new = node
            new_of[id(node)] = change(node_new) if node is target else node_new
        return Graph(new_of[id(self._output)])


def _labels(nodes: list[Node]) -> str:
    return ", ".join(n.label if n.name is None else f"{n.op} {n.id}" for n in nodes)
