"""Graph <-> document: the structure of the format (DESIGN.md, "On-disk graph
format") and every structural check on the way in: fields and their types,
ids, dangling inputs, cycles, unused nodes, sizes and the version.

    {"format": "streamdag-graph", "version": 1,
     "nodes": [{"id", "op", "params", "inputs", "name"}, ...],   # inputs first
     "output": id,
     "requires": {"ops": {op: module}, "functions": {name: module}}}   # optional hints
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ..core.node import Node, walk
from ..core.params import did_you_mean
from ..core.registry import load_entry_point, registered_ops
from ..errors import GraphFormatError, ParamError
from .functions import import_trusted
from .problems import expect, expect_str_keys, short
from .secrets import secrets_in, warn_left_out, without_secrets
from .validate import check_node
from .values import Decoder, Encoder

FORMAT_NAME = "streamdag-graph"
FORMAT_VERSION = 1
MIN_VERSION = 1
MAX_NODES = 100_000
MAX_ID_LENGTH = 256

# Upgrades from version v to v + 1, applied in turn to older documents, so that
# every version ever written stays loadable.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

_TOP_KEYS = ("format", "version", "nodes", "output", "requires")


class Entry(NamedTuple):
    """One node of the document, its fields checked but not yet built."""

    id: str
    op: str
    params: dict[str, Any]
    inputs: list[str]
    name: str | None


_NODE_KEYS = ("id", "op", "params", "inputs", "name")


def to_document(output: Node, *, include_secrets: bool = False) -> dict[str, Any]:
    """The document of the graph ending at ``output`` (GraphFormatError naming
    the node if a param cannot be saved). Credentials in storage_options are
    left out, with a warning naming them, unless ``include_secrets``."""
    encoder = Encoder()
    nodes = []
    ops: dict[str, str] = {}
    graph = walk(output)
    for node in graph:
        kept = node.params if include_secrets else without_secrets(node.params)
        try:
            params = {k: encoder.encode(v, f"params.{k}") for k, v in kept.items()}
        except GraphFormatError as exc:
            raise GraphFormatError(f"cannot save {node.label}: {exc}") from exc.__cause__
        nodes.append(
            {
                "id": node.id,
                "op": node.op,
                "params": params,
                "inputs": [i.id for i in node.inputs],
                "name": node.name,
            }
        )
        module = op_origin(node.op)
        if module and not module.startswith("streamdag."):
            ops[node.op] = module
    if not include_secrets:
        warn_left_out(secrets_in(graph))
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "nodes": nodes,
        "output": output.id,
    }
    functions = {k: v for k, v in encoder.functions.items() if v}
    if ops or functions:
        doc["requires"] = {
            key: value for key, value in (("ops", ops), ("functions", functions)) if value
        }
    return doc


def from_document(doc: Any, trusted: tuple[str, ...] = (), resolve_functions: bool = True) -> Node:
    """The output node of the graph in ``doc``, every node checked."""
    doc = upgrade(expect(doc, dict, "document"))
    requires = _requires(doc.get("requires", {}))
    decoder = Decoder(trusted, resolve_functions, requires["functions"])
    entries = expect(doc["nodes"], list, "nodes")
    if len(entries) > MAX_NODES:
        raise GraphFormatError(f"nodes: {len(entries)} nodes, more than the limit of {MAX_NODES}")
    if not entries:
        raise GraphFormatError("nodes: a graph needs at least one node")
    entries = [_entry(entry, f"nodes[{i}]") for i, entry in enumerate(entries)]
    index = _index_ids(entries)
    output_id = _id(doc["output"], "output")
    if output_id not in index:
        raise GraphFormatError(f"output: no node has id {output_id!r}")
    built: dict[str, Node] = {}
    for i in _order(entries, index, output_id):
        entry, where = entries[i], f"nodes[{i}]"
        _ensure_op(entry.op, trusted, requires["ops"], f"{where}.op")
        params = {k: decoder.decode(v, f"{where}.params.{k}") for k, v in entry.params.items()}
        node = Node(entry.op, params, tuple(built[j] for j in entry.inputs), entry.id, entry.name)
        try:
            check_node(node)
        except ParamError as exc:
            raise GraphFormatError(f"{where}: {exc}") from exc
        except Exception as exc:  # a third-party validate may raise anything
            raise GraphFormatError(
                f"{where}: {node.label}: validate raised {type(exc).__name__}: {exc}"
            ) from exc
        built[entry.id] = node
    return built[output_id]


def upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    """Check the header, bring an older document to the current version, then
    check the current version's keys."""
    for key in ("format", "version"):
        if key not in doc:
            raise GraphFormatError(f"document: missing key {key!r}")
    if doc["format"] != FORMAT_NAME:
        raise GraphFormatError(f"format: expected {FORMAT_NAME!r}, got {short(doc['format'])}")
    version = doc["version"]
    if type(version) is not int or version < MIN_VERSION:
        raise GraphFormatError(f"version: expected an int from {MIN_VERSION}, got {short(version)}")
    if version > FORMAT_VERSION:
        raise GraphFormatError(
            f"version: the file has format version {version}, but this "
            f"streamdag reads versions {MIN_VERSION} to {FORMAT_VERSION}; "
            "upgrade streamdag to load it"
        )
    while doc["version"] < FORMAT_VERSION:
        doc = UPGRADES[doc["version"]](doc)
    for key in doc:
        if key not in _TOP_KEYS:
            raise GraphFormatError(
                f"document: unexpected key {short(key, 40)}; expected {', '.join(_TOP_KEYS)}"
            )
    for key in ("nodes", "output"):
        if key not in doc:
            raise GraphFormatError(f"document: missing key {key!r}")
    return doc


def _requires(doc: Any) -> dict[str, dict[str, str]]:
    expect_str_keys(doc, "requires")
    out = {}
    for key in ("ops", "functions"):
        hints = expect_str_keys(doc.get(key, {}), f"requires.{key}")
        for name, module in hints.items():
            expect(module, str, f"requires.{key}.{name}")
        out[key] = hints
    extra = set(doc) - {"ops", "functions"}
    if extra:
        raise GraphFormatError(
            f"requires: unexpected key {short(sorted(extra)[0], 40)}; expected ops, functions"
        )
    return out


def _entry(entry: Any, where: str) -> Entry:
    expect_str_keys(entry, where)
    for key in entry:
        if key not in _NODE_KEYS:
            raise GraphFormatError(
                f"{where}: unexpected key {short(key, 40)}; expected {', '.join(_NODE_KEYS)}"
            )
    for key in ("id", "op"):
        if key not in entry:
            raise GraphFormatError(f"{where}: missing key {key!r}")
    node_id = _id(entry["id"], f"{where}.id")
    op = expect(entry["op"], str, f"{where}.op")
    params = expect_str_keys(entry.get("params", {}), f"{where}.params")
    inputs = [
        _id(v, f"{where}.inputs[{j}]")
        for j, v in enumerate(expect(entry.get("inputs", []), list, f"{where}.inputs"))
    ]
    name = entry.get("name")
    if name is not None:
        expect(name, str, f"{where}.name")
    return Entry(node_id, op, params, inputs, name)


def _id(value: Any, where: str) -> str:
    expect(value, str, where)
    if not value or len(value) > MAX_ID_LENGTH:
        raise GraphFormatError(
            f"{where}: an id must be 1 to {MAX_ID_LENGTH} characters, got {short(value, 40)}"
        )
    return value


def _index_ids(entries: list[Entry]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry.id in index:
            raise GraphFormatError(
                f"nodes[{i}].id: duplicate id {entry.id!r} (also nodes[{index[entry.id]}])"
            )
        index[entry.id] = i
    for i, entry in enumerate(entries):
        for j, ref in enumerate(entry.inputs):
            if ref not in index:
                raise GraphFormatError(f"nodes[{i}].inputs[{j}]: no node has id {ref!r}")
    return index


def _order(entries: list[Entry], index: dict[str, int], output_id: str) -> list[int]:
    """Node positions, inputs before consumers (iterative DFS from the output,
    linear in the number of nodes and edges); GraphFormatError on a cycle or a
    node the output does not use."""
    done: set[int] = set()
    order: list[int] = []
    start = index[output_id]
    stack = [(start, iter(entries[start].inputs))]
    on_path = {start}  # the positions on ``stack``, for O(1) cycle checks
    while stack:
        at, pending = stack[-1]
        ref = next(pending, None)
        if ref is None:
            stack.pop()
            on_path.discard(at)
            done.add(at)
            order.append(at)
            continue
        nxt = index[ref]
        if nxt in done:
            continue
        if nxt in on_path:
            path = [k for k, _ in stack]
            cycle = [entries[k].id for k in path[path.index(nxt) :]] + [ref]
            raise GraphFormatError(f"nodes[{nxt}]: cycle through ids {' -> '.join(cycle)}")
        on_path.add(nxt)
        stack.append((nxt, iter(entries[nxt].inputs)))
    unused = sorted(set(range(len(entries))) - done)
    if unused:
        raise GraphFormatError(
            f"nodes[{unused[0]}]: node {entries[unused[0]].id!r} is not an "
            f"input of the output {output_id!r}; remove it or connect it"
        )
    return order


def op_origin(op: str) -> str | None:
    """The module that defines ``op``: for ``@sd.reader`` ops the decorated
    function's module, else the runtime class's."""
    opdef = registered_ops.get(op)
    if opdef is None:
        return None
    return opdef.origin


def _ensure_op(op: str, trusted: tuple[str, ...], hints: dict[str, str], where: str) -> None:
    """Make ``op`` available: registered already, provided by an installed
    package under the 'streamdag.readers' entry point (installing it was the
    user's decision to trust it), or from the module named in the file if that
    module is trusted. Else say which name is missing and where it comes from."""
    if op in registered_ops:
        return
    try:
        if load_entry_point(op):
            return
    except Exception as exc:  # a broken plugin is a load error, not a crash
        raise GraphFormatError(
            f"{where}: loading op {op!r} from its 'streamdag.readers' entry point failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    module = hints.get(op)
    if module and import_trusted(module, trusted, where) and op in registered_ops:
        return
    origin = (
        f"it comes from module {module!r}: import it before loading or pass "
        f"trusted_modules=[{module!r}]"
        if module
        else "import the module that registers it, or install the package that provides it "
        "through the 'streamdag.readers' entry point"
    )
    hint = did_you_mean(op, registered_ops)
    raise GraphFormatError(f"{where}: unknown op {op!r}{f' ({hint})' if hint else ''}; {origin}")
