"""The ``streamdag`` command: show, validate, edit, convert, draw and run
saved graphs. Only ``validate`` and ``run`` resolve function references;
the other verbs work on graphs whose code is not importable here."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from .core.node import Node, walk
from .core.shard_points import check_sharded_once
from .datapipes.datapipe import DataPipe
from .errors import StreamdagError
from .graph_io.calls import functions_used
from .graph_io.codec import format_for
from .graph_io.files import load_node, save
from .graph_io.graph import Graph
from .graph_io.render import functions_table, node_ref, render, table, to_dot
from .graph_io.secrets import secrets_in
from .graph_io.values import Decoder
from .reading_service.dataloader2 import DataLoader2
from .stats.progress import progress_bar
from .stats.report import PipelineStats, profile_notes

MAX_SHAPE_LINES = 20


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.trust and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # like `python -m`: trusted modules next to the graph
    try:
        return args.handler(args)
    except (StreamdagError, LookupError, OSError, ValueError) as exc:
        print(f"streamdag {args.verb}: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamdag",
        description="Inspect, edit and run saved streamdag graphs (.sdag msgpack or .json text).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help, description=help)
        sub.add_argument("file", metavar="FILE", help="a .sdag or .json graph file")
        sub.add_argument(
            "--trust",
            action="append",
            default=[],
            metavar="MODULE",
            help="a module the graph may import functions and ops from "
            "(repeatable; the current directory is searched too)",
        )
        sub.set_defaults(handler=handler)
        return sub

    verb("show", _show, "Print the graph's nodes with their params, inputs first.")
    verb("validate", _validate, "Check the graph fully, resolving its functions.")
    sub = verb(
        "set",
        _set,
        "Change node params: NODE is a node's name or id, VALUE is JSON "
        '(a bare word is a string; functions are {"ref": "module:qualname"}).',
    )
    sub.add_argument("assignments", nargs="+", metavar="NODE.PARAM=VALUE")
    sub.add_argument("-o", "--output", metavar="OUT", help="write here (default: in place)")
    sub = verb("convert", _convert, "Rewrite the graph as msgpack (.sdag) or JSON (.json).")
    sub.add_argument("out", metavar="OUT", help="output file; its suffix picks the format")
    sub = verb(
        "draw", _draw, "Draw the graph: DOT text, or SVG/PNG/PDF through graphviz's `dot` program."
    )
    sub.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help=".dot/.gv, or .svg/.png/.pdf (needs graphviz); default: DOT on stdout",
    )
    sub.add_argument(
        "--profile",
        action="store_true",
        help="run the pipeline first and annotate each node with its throughput and share "
        "of time; the bottleneck is drawn in red",
    )
    _run_options(sub)
    sub = verb("run", _run, "Iterate the pipeline, printing element shapes and throughput.")
    sub.add_argument(
        "--profile",
        action="store_true",
        help="print per-node statistics at the end and name the bottleneck",
    )
    _run_options(sub)
    return parser


def _run_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--limit", type=int, metavar="N", help="stop after N elements")
    sub.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="run in N worker processes (MultiProcessingReadingService)",
    )
    sub.add_argument("--seed", type=int, metavar="N", help="base seed (default: random)")
    sub.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar (shown on a terminal by default)",
    )


def _unresolved(args: argparse.Namespace) -> Graph:
    """The graph with function references left as names: nothing is imported."""
    return Graph(_load(args, resolve_functions=False))


def _load(args: argparse.Namespace, resolve_functions: bool = True) -> Node:
    """The output node of the graph in the file, with a warning on stderr if
    the file holds credentials."""
    output = load_node(args.file, args.trust, resolve_functions=resolve_functions)
    found = secrets_in(walk(output))
    if found:
        print(
            f"streamdag {args.verb}: warning: {args.file} holds credentials: "
            f"{', '.join(found)}; anyone who can read the file can use them. Save it without "
            "them (sd.save leaves them out unless include_secrets=True) and provide them "
            "through the environment or a profile",
            file=sys.stderr,
        )
    return output


def _show(args: argparse.Namespace) -> int:
    graph = _unresolved(args)
    print(f"{args.file}: {len(graph)} nodes, output {node_ref(graph.output)!r}")
    print(table(graph.nodes), end="")
    return 0


def _validate(args: argparse.Namespace) -> int:
    graph = Graph(_load(args))
    check_sharded_once(graph.output)  # loads (so it can be fixed) but would not run
    uses = functions_used(graph)
    calls = "; running it may call:" if uses else ""
    print(f"{args.file}: ok ({len(graph)} nodes, output {node_ref(graph.output)!r}){calls}")
    print(functions_table(uses), end="")
    return 0


def _set(args: argparse.Namespace) -> int:
    graph = _unresolved(args)
    decoder = Decoder(resolve_functions=False)
    for assignment in args.assignments:
        target, sep, text = assignment.partition("=")
        node, dot, key = target.rpartition(".")
        if not sep or not dot or not node or not key:
            raise ValueError(f"{assignment!r}: expected NODE.PARAM=VALUE")
        value = decoder.decode(_parse_value(text), target)
        graph = graph.set_param(node, key, value)
    out = args.output or args.file
    save(graph, out, include_secrets=True)  # an edit keeps what the file holds (warned above)
    print(f"wrote {out}")
    return 0


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _convert(args: argparse.Namespace) -> int:
    format_for(args.out)  # refuse an unknown suffix before reading anything
    save(_unresolved(args), args.out, include_secrets=True)  # as for set
    print(f"wrote {args.out}")
    return 0


def _draw(args: argparse.Namespace) -> int:
    if args.profile:
        output, stats = _profile(args, quiet=True)
        dot = to_dot(walk(output), output, profile_notes(stats))
    else:
        graph = _unresolved(args)
        dot = to_dot(graph.nodes, graph.output)
    if args.output is None:
        sys.stdout.write(dot)
    else:
        render(dot, Path(args.output))
        print(f"wrote {args.output}")
    return 0


def _run(args: argparse.Namespace) -> int:
    _, stats = _profile(args, quiet=False)
    if args.profile:
        print(stats.table())
    return 130 if args.interrupted else 0


def _profile(args: argparse.Namespace, quiet: bool) -> tuple[Node, PipelineStats]:
    """Run the graph (one epoch, or ``--limit`` elements) with statistics on,
    printing the shapes of the elements unless ``quiet``, then the throughput."""
    from tqdm import tqdm

    output = _load(args)
    service = _service(args.workers)
    with DataLoader2(
        DataPipe(output), reading_service=service, seed=args.seed, stats=True
    ) as loader:
        items = islice(loader, args.limit) if args.limit is not None else iter(loader)
        if args.progress:
            items = progress_bar(items, loader, total=args.limit, disable=None)
        count, last, shown, args.interrupted = 0, None, 0, False
        start = time.perf_counter()
        try:
            for item in items:
                shape = describe(item)
                if not quiet and shape != last and shown < MAX_SHAPE_LINES:
                    tqdm.write(f"element {count}: {shape}", file=sys.stdout)
                    shown += 1
                last = shape
                count += 1
        except KeyboardInterrupt:  # Ctrl-C on an endless pipeline: still report
            args.interrupted = True
        elapsed = time.perf_counter() - start
        stats = loader.stats()
    rate = count / elapsed if elapsed > 0 else float("inf")
    stopped = " (interrupted)" if args.interrupted else ""
    print(
        f"{count} elements in {elapsed:.3f} s ({rate:,.1f} elements/s){stopped}",
        file=sys.stderr if quiet else sys.stdout,
    )
    return output, stats


def _service(workers: int) -> Any:
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    if workers == 0:
        return None
    import streamdag

    service = getattr(streamdag, "MultiProcessingReadingService", None)
    if service is None:
        raise StreamdagError(
            "--workers needs sd.MultiProcessingReadingService, which this "
            "streamdag does not have yet; run without --workers"
        )
    return service(num_workers=workers)


def describe(value: Any, depth: int = 0) -> str:
    """The shape of an element: tensors and arrays by shape and dtype,
    containers by length and their first item."""
    if depth > 4:
        return "..."
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        dims = ", ".join(str(int(d)) for d in shape)
        return f"{type(value).__name__}({dims}) {str(dtype).removeprefix('torch.')}"
    if isinstance(value, list):
        return f"list[{len(value)}]" + (f" of {describe(value[0], depth + 1)}" if value else "")
    if isinstance(value, tuple):
        return (
            "("
            + ", ".join(describe(v, depth + 1) for v in value[:8])
            + (", ...)" if len(value) > 8 else ")")
        )
    if isinstance(value, dict):
        items = list(value.items())[:8]
        return "{" + ", ".join(f"{k!r}: {describe(v, depth + 1)}" for k, v in items) + "}"
    return type(value).__name__


if __name__ == "__main__":
    sys.exit(main())
