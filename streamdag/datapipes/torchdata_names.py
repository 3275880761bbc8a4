"""The torchdata 0.9 names streamdag does not provide, with the reason, so
that importing one fails with a message that says why and where to look
instead of a bare "cannot import name"."""

from __future__ import annotations

import dis
import sys
from types import FrameType

GUIDE = "'Every torchdata 0.9 name' in docs/migrating-from-torchdata.md"

_SERVICE = "needs {}, which streamdag does not depend on"
_TORCHARROW = "builds torcharrow DataFrames; torcharrow is no longer maintained"
_FSSPEC = (
    "iopath is not a streamdag dependency; fsspec reaches the same filesystems: "
    "use FileLister / FileOpener"
)

#: torchdata.datapipes.iter class -> why streamdag.datapipes.iter lacks it
ITER: dict[str, str] = {
    "AISFileLister": _SERVICE.format("an AIStore cluster and its client"),
    "AISFileLoader": _SERVICE.format("an AIStore cluster and its client"),
    "GDriveReader": "scrapes Google Drive's download pages; fetch a direct link over HTTP",
    "OnlineReader": "its Google Drive half scrapes download pages; fetch URLs over HTTP",
    "HuggingFaceHubReader": _SERVICE.format("the Hugging Face Hub (the datasets package)"),
    "IoPathFileLister": _FSSPEC,
    "IoPathFileOpener": _FSSPEC,
    "IoPathSaver": _FSSPEC,
    "S3FileLister": (
        "needs torchdata's compiled S3 extension; list s3:// URLs with "
        "FileLister (the streamdag[s3] extra)"
    ),
    "S3FileLoader": (
        "needs torchdata's compiled S3 extension; open s3:// URLs with "
        "FileOpener (the streamdag[s3] extra)"
    ),
    "RarArchiveLoader": "needs the rarfile package and the unrar tool",
    "DataFrameMaker": _TORCHARROW,
    "ParquetDataFrameLoader": _TORCHARROW,
    "ShardingRoundRobinDispatcher": (
        "needs a dispatching process; streamdag shards with "
        "sharding_filter (ShardingFilter) in every worker"
    ),
    "Saver": "writing files is not a loading step: not provided",
    "FSSpecSaver": "writing files is not a loading step: not provided",
}

# Being added alongside this module by the rest of the torchdata drop-in work;
# an entry here is shadowed as soon as the name itself is defined.
_IMPORT_FROM = dis.opmap["IMPORT_FROM"]
_TYPES = "typing aliases of torchdata's TFRecord records: load_from_tfrecord yields plain dicts"
ITER.update(
    dict.fromkeys(
        (
            "TFRecordExample",
            "TFRecordExampleSpec",
        ),
        _TYPES,
    )
)

#: torchdata.dataloader2 names -> why streamdag.dataloader2 lacks them
DATALOADER2: dict[str, str] = {
    "DataLoader2Iterator": (
        "iter(loader) is a plain iterator; pause/resume/limit: use "
        "loader.state_dict() and load_state_dict()"
    ),
    "PauseIteration": "streamdag's iterator does not pause: use state_dict()",
    "ShuffleSpec": "an empty abstract class that nothing in torchdata 0.9 used",
}

#: torchdata.dataloader2.adapter names -> why streamdag.dataloader2.adapter lacks them
ADAPTER: dict[str, str] = {}


def not_provided(module: str, name: str, table: dict[str, str]) -> ImportError | AttributeError:
    """The error for ``module.name`` (called by the module's ``__getattr__``):
    for a known torchdata name an AttributeError saying why, so ``hasattr`` and
    ``getattr(..., default)`` work, but an ImportError with the same reason
    under ``from module import name``, where Python would replace an
    AttributeError's message by "cannot import name"; a plain AttributeError
    for anything else (as for any module)."""
    reason = table.get(name)
    if reason is None:
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    msg = f"{name} (torchdata's) is not provided by {module}: {reason}. See {GUIDE}."
    return ImportError(msg, name=module) if _from_import(sys._getframe(2)) else AttributeError(msg)


def _from_import(frame: FrameType) -> bool:
    """Is ``frame`` executing ``from module import name``?"""
    return frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM
