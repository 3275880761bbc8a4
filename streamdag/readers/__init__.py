"""Sources and readers: fsspec listing and opening, tar/zip archives, lines,
JSON lines, CSV, webdataset grouping, and the custom readers' runtime.

Importing this package registers every reader op."""

from ..core.streams import MemberPath
from ..errors import SkippedInputWarning
from ..runtime.policy import ErrorPolicy, StreamCut
from . import (  # noqa: F401 - registration side effects
    csv_rows,
    jsonl,
    lines,
    open_files,
    open_files_retrying,
    tar_archive,
    webdataset,
    zip_archive,
)
from .custom import ReaderContext

__all__ = [
    "ErrorPolicy",
    "MemberPath",
    "ReaderContext",
    "SkippedInputWarning",
    "StreamCut",
]
