"""Sources and readers: fsspec listing and opening, tar/zip archives, lines,
JSON lines, CSV, webdataset grouping, and the custom-reader API.

Importing this package registers every reader op."""

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
from .custom import Reader, ReaderContext, available_readers, get_reader, load_entry_point, reader
from .file_lister import FileLister
from .policy import ErrorPolicy, SkippedInputWarning, StreamCut
from .streams import MemberPath

__all__ = [
    "ErrorPolicy",
    "FileLister",
    "MemberPath",
    "Reader",
    "ReaderContext",
    "SkippedInputWarning",
    "StreamCut",
    "available_readers",
    "get_reader",
    "load_entry_point",
    "reader",
]
