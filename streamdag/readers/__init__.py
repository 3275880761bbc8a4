"""Sources and readers: fsspec listing and opening, tar/zip archives, lines,
JSON lines, CSV, webdataset grouping, and the custom readers' runtime."""

from ..core.streams import MemberPath
from ..errors import SkippedInputWarning
from ..runtime.policy import ErrorPolicy, StreamCut
from .custom import ReaderContext

__all__ = [
    "ErrorPolicy",
    "MemberPath",
    "ReaderContext",
    "SkippedInputWarning",
    "StreamCut",
]
