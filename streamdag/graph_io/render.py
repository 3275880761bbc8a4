"""Graphs as text for people: the node table of ``streamdag show`` and the
Graphviz DOT drawing of ``streamdag draw``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..core.node import Node
from ..errors import StreamdagError
from .calls import FunctionUse
from .functions import describe_function

RENDERED = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def format_value(value: Any, width: int = 60) -> str:
    """A param value in one short line (functions by their saved name)."""
    text = describe_function(value) if callable(value) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_params(node: Node, width: int = 60) -> str:
    return ", ".join(f"{k}={format_value(v, width)}" for k, v in node.params.items())


def node_ref(node: Node) -> str:
    """How the CLI names a node: its name, else its id."""
    return node.name or node.id


def table(nodes: tuple[Node, ...] | list[Node]) -> str:
    """One row per node, inputs first: id, name, op, inputs, params."""
    rows = [("ID", "NAME", "OP", "INPUTS", "PARAMS")]
    rows += [
        (
            n.id,
            n.name or "-",
            n.op,
            ", ".join(node_ref(i) for i in n.inputs) or "-",
            format_params(n),
        )
        for n in nodes
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    return (
        "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4]
            for row in rows
        ).rstrip()
        + "\n"
    )


def functions_table(uses: list[FunctionUse]) -> str:
    """One line per function a graph may call: where (``NODE.PARAM``, as
    ``streamdag set`` names it) and its name on disk."""
    places = [f"{node_ref(use.node)}.{use.param}" for use in uses]
    width = max(map(len, places), default=0)
    return "".join(
        f"  {place.ljust(width)}  {use.ref}\n" for place, use in zip(places, uses, strict=True)
    )


def to_dot(
    nodes: tuple[Node, ...] | list[Node],
    output: Node,
    notes: dict[str, tuple[str, bool]] | None = None,
) -> str:
    """Graphviz DOT text: a box per node (name, op, params), edges from inputs
    to consumers (numbered where the order of inputs matters); the output has
    a double border. ``notes`` (``streamdag.stats.profile_notes``) add a line per node
    and draw the bottleneck in red."""
    notes = notes or {}
    lines = [
        "digraph streamdag {",
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica", fontsize=10];',
    ]
    for n in nodes:
        label = "\\n".join(
            _dot_escape(part)
            for part in (
                n.name or n.id,
                n.op,
                *(f"{k}={format_value(v, 40)}" for k, v in n.params.items()),
                *([notes[n.id][0]] if n.id in notes else []),
            )
        )
        extra = ", peripheries=2" if n is output else ""
        if notes.get(n.id, ("", False))[1]:
            extra += ", color=red, fontcolor=red, penwidth=2"
        lines.append(f'  "{_dot_escape(n.id)}" [label="{label}"{extra}];')
    for n in nodes:
        for pos, source in enumerate(n.inputs):
            edge_label = f' [label="{pos}"]' if len(n.inputs) > 1 else ""
            lines.append(f'  "{_dot_escape(source.id)}" -> "{_dot_escape(n.id)}"{edge_label};')
    return "\n".join([*lines, "}"]) + "\n"


def render(dot_text: str, out: Path) -> None:
    """Write ``dot_text`` to ``out``: as is for .dot/.gv, else drawn by the
    graphviz ``dot`` program into the format named by the suffix."""
    suffix = out.suffix.lower()
    if suffix in (".dot", ".gv"):
        out.write_text(dot_text)
        return
    if suffix not in RENDERED:
        raise StreamdagError(
            f"{out}: cannot draw to {suffix or 'a file without a suffix'}; "
            "use .dot, .gv, .svg, .png or .pdf"
        )
    dot = shutil.which("dot")
    if dot is None:
        raise StreamdagError(
            f"drawing {suffix} needs the graphviz 'dot' program, which is not on PATH; install "
            "graphviz (apt install graphviz, brew install graphviz or conda install graphviz), "
            f"or write {out.with_suffix('.dot').name} and render it elsewhere"
        )
    result = subprocess.run(
        [dot, f"-T{RENDERED[suffix]}", "-o", str(out)],
        input=dot_text,
        text=True,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise StreamdagError(f"graphviz dot failed: {result.stderr.strip()}")


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
