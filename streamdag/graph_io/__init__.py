"""Graphs on disk: save, load, validate, edit and draw pipelines.

The format is DESIGN.md's "On-disk graph format" (docs/graph-format.md has
the details and the safety rules)."""

from .calls import FunctionUse, functions_used, validate_file
from .document import FORMAT_NAME, FORMAT_VERSION
from .files import dumps, load, load_node, loads_node, save
from .functions import FunctionRef, register_function, registered_functions
from .graph import Graph
from .trust import GRAPH_FUNCTIONS, SAFE_REFS

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GRAPH_FUNCTIONS",
    "SAFE_REFS",
    "FunctionRef",
    "FunctionUse",
    "Graph",
    "dumps",
    "functions_used",
    "load",
    "load_node",
    "loads_node",
    "register_function",
    "registered_functions",
    "save",
    "validate_file",
]
