"""Specs of the reader ops (runtimes in ``streamdag.readers``)."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from functools import partial
from typing import Any

from ...errors import ParamError
from ..node import Node
from ..params import check_bool, check_callable, check_choice, check_int, check_type
from ..policy import ON_ERROR_PARAM
from ..spec import REQUIRED, OpSpec, Param
from ..streams import OPEN_MODES

_RT = "streamdag.readers."
MiB = 1 << 20
DICT_KEYS = ("fieldnames", "restkey", "restval")  # csv.DictReader's own parameters


def _strings(op: str, key: str, value: Any) -> None:
    values = [value] if isinstance(value, str) else value
    if (
        not isinstance(values, (list, tuple))
        or not values
        or not all(isinstance(v, str) for v in values)
    ):
        raise ParamError(f"{op}: {key} must be a str or a non-empty list of str, got {value!r}")


def _optional_strings(op: str, key: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value)
    ):
        raise ParamError(f"{op}: {key} must be None or a list of str, got {value!r}")


def _masks(op: str, key: str, value: Any) -> None:
    """fnmatch patterns: a str or a list of str ("" or []: every file, as torchdata)."""
    if isinstance(value, str):
        return
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ParamError(f"{op}: {key} must be a str or a list of str, got {value!r}")


def _options(op: str, key: str, value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise ParamError(f"{op}: {key} must be a dict, got {value!r}")


def _number(op: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ParamError(f"{op}: {key} must be a number >= 0, got {value!r}")


def _fmtparams(op: str, key: str, value: Any, own: tuple[str, ...] = ()) -> None:
    """csv.reader's format parameters (``own``: keys of the op itself)."""
    if value is None:
        return
    _options(op, key, value)
    if "header" in value:
        raise ParamError(
            f"{op} takes no 'header': as torchdata's, parse_csv yields every record as a "
            f"list, the header row included; for dicts keyed by the header row use "
            f"parse_csv_as_dict() (fieldnames=[...] names the columns of a file without "
            f"one), and skip_lines=1 drops a header row"
        )
    try:
        csv.reader((), **{k: v for k, v in value.items() if k not in own})
    except TypeError as exc:
        raise ParamError(f"{op}: invalid csv format parameter: {exc}") from None


def _optional_number(op: str, key: str, value: Any) -> None:
    if value is not None:
        _number(op, key, value)


def _hashes(op: str, key: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        raise ParamError(f"{op}: {key} must map file paths to hex digests (str), got {value!r}")


def _tfrecord_spec(op: str, key: str, value: Any) -> None:
    """{name: [shape or None, dtype name or None]}: the facade writes torch
    dtypes by name ("float32"), so the graph stays plain data."""
    if value is None:
        return
    ok = isinstance(value, Mapping) and all(
        isinstance(k, str)
        and isinstance(v, (list, tuple))
        and len(v) == 2
        and (v[0] is None or isinstance(v[0], (list, tuple)))
        and (v[1] is None or isinstance(v[1], str))
        for k, v in value.items()
    )
    if not ok:
        raise ParamError(f"{op}: {key} must map feature names to (shape, dtype), got {value!r}")


def _one_filepath_fn(params: Mapping[str, Any]) -> None:
    if params["filepath_fn"] is not None and params["same_filepath_fn"]:
        raise ParamError("end_caching: filepath_fn and same_filepath_fn=True exclude each other")


def _flag(default: bool) -> Param:
    return Param(default, check_bool)


def _count(default: int, minimum: int) -> Param:
    return Param(default, partial(check_int, minimum=minimum))


_STORAGE = Param(None, _options)
_OPTIONAL_FN = Param(None, partial(check_callable, optional=True))
_HASH_TYPE = Param("sha256", partial(check_choice, choices=("sha256", "md5")))
_ENCODING = Param("utf-8", partial(check_type, types=str, want="an encoding name"))
_TEXT = {"encoding": _ENCODING, "return_path": _flag(False), "on_error": ON_ERROR_PARAM}
#: torchdata's text readers: lines to skip per file, decoding errors as bytes.decode's
_TD_TEXT = {
    "skip_lines": _count(0, 0),
    "decode": _flag(True),
    **_TEXT,
    "errors": Param("ignore", partial(check_type, types=str, want="an error handler")),
}
_OPEN = {
    "mode": Param("r", partial(check_choice, choices=OPEN_MODES)),
    "encoding": Param(
        None, partial(check_type, types=(str, type(None)), want="an encoding name or None")
    ),
    "storage_options": _STORAGE,
    "on_error": ON_ERROR_PARAM,
}


def _check_open(params: Mapping[str, Any]) -> None:
    if "b" in params["mode"] and params["encoding"] is not None:
        raise ParamError(
            f"open_files: binary mode {params['mode']!r} takes no encoding "
            f"(got encoding={params['encoding']!r})"
        )
    if params["encoding"] is not None and "encoding" in (params.get("kwargs_for_open") or {}):
        raise ParamError("open_files: give encoding= or kwargs_for_open's 'encoding', not both")


#: ranged, retried reads with read-ahead (``open_files(retry=...)``, docs/s3.md)
RETRY = {
    "chunk_size": _count(8 * MiB, 1),
    "first_chunk": _count(MiB // 4, 1),
    "read_ahead": _count(2, 0),
    "shards_ahead": _count(1, 0),
    "max_retries": _count(5, 0),
    "backoff_base": Param(0.1, _number),
    "backoff_max": Param(5.0, _number),
}

SPECS = (
    OpSpec(
        "file_lister",
        _RT + "file_lister:FileListerNode",
        inputs=(0, 0),
        params={
            "root": Param(".", _strings),
            "masks": Param("*", _masks),
            "recursive": _flag(False),
            "storage_options": _STORAGE,
            "abspath": _flag(False),
        },
    ),
    OpSpec(
        "open_files",
        _RT + "open_files:OpenFilesNode",
        params={**_OPEN, "kwargs_for_open": Param(None, _options)},
        check=_check_open,
    ),
    OpSpec(
        "open_files_retrying",
        _RT + "open_files_retrying:RetryingOpenFilesNode",
        params={**_OPEN, **RETRY},
        check=_check_open,
    ),
    OpSpec(
        "load_from_tar",
        _RT + "tar_archive:LoadFromTarNode",
        params={"streams": _flag(False), "on_error": ON_ERROR_PARAM},
    ),
    OpSpec(
        "load_from_zip",
        _RT + "zip_archive:LoadFromZipNode",
        params={"streams": _flag(False), "on_error": ON_ERROR_PARAM},
    ),
    OpSpec(
        "readlines",
        _RT + "lines:ReadLinesNode",
        params={
            **_TD_TEXT,
            "strip_newline": _flag(True),
            "decode": _flag(False),
            "return_path": _flag(True),
            "line_numbers": _flag(False),
        },
    ),
    OpSpec("parse_jsonl", _RT + "jsonl:ParseJsonlNode", params=_TEXT),
    OpSpec(
        "parse_csv",
        _RT + "csv_rows:ParseCsvNode",
        params={**_TD_TEXT, "as_tuple": _flag(False), "fmtparams": Param(None, _fmtparams)},
    ),
    OpSpec(
        "webdataset",
        _RT + "webdataset:WebDatasetNode",
        params={
            "keys": Param("torchdata", partial(check_choice, choices=("torchdata", "webdataset"))),
            "on_error": ON_ERROR_PARAM,
        },
    ),
    OpSpec(
        "parse_csv_as_dict",
        _RT + "csv_rows:ParseCsvDictNode",
        params={**_TD_TEXT, "fmtparams": Param(None, partial(_fmtparams, own=DICT_KEYS))},
    ),
    OpSpec(
        "parse_json_files",
        _RT + "json_files:ParseJsonFilesNode",
        params={"kwargs": Param(None, _options), "on_error": ON_ERROR_PARAM},
    ),
    OpSpec(
        "list_files",
        _RT + "file_lister:ListFilesNode",
        params={
            "masks": Param("", _masks),
            "recursive": _flag(False),
            "abspath": _flag(False),
            "storage_options": _STORAGE,
            "on_error": ON_ERROR_PARAM,
        },
    ),
    # torchdata's HttpReader, HashChecker, TFRecordLoader, OnDiskCacheHolder, EndOnDiskCacheHolder
    OpSpec(
        "read_from_http",
        _RT + "http:HttpReaderNode",
        params={
            "timeout": Param(None, _optional_number),
            "skip_on_error": _flag(False),
            "kwargs": Param({}, _options),
            "on_error": ON_ERROR_PARAM,
        },
    ),
    OpSpec(
        "check_hash",
        _RT + "hash_check:CheckHashNode",
        passthrough=True,
        params={
            "hash_dict": Param(REQUIRED, _hashes),
            "hash_type": _HASH_TYPE,
            "rewind": _flag(True),
            "on_error": ON_ERROR_PARAM,
        },
    ),
    OpSpec(
        "load_from_tfrecord",
        _RT + "tfrecord:LoadFromTfrecordNode",
        install="pip install 'streamdag[tfrecord]'",
        params={
            "spec": Param(None, _tfrecord_spec),
            "length": Param(-1, partial(check_int, minimum=-1)),
            "on_error": ON_ERROR_PARAM,
        },
    ),
    OpSpec(
        "on_disk_cache",
        _RT + "disk_cache:OnDiskCacheNode",
        params={
            "filepath_fn": _OPTIONAL_FN,
            "hash_dict": Param(None, _hashes),
            "hash_type": _HASH_TYPE,
            "extra_check_fn": _OPTIONAL_FN,
        },
    ),
    OpSpec(
        "end_caching",
        _RT + "disk_cache:EndCachingNode",
        inputs=(2, 2),
        check=_one_filepath_fn,
        params={
            "mode": Param("wb", partial(check_choice, choices=("w", "wb", "wt", "b", "t"))),
            "filepath_fn": _OPTIONAL_FN,
            "same_filepath_fn": _flag(False),
            "skip_read": _flag(False),
            "timeout": Param(300, _number),
        },
    ),
    # -- text and LLM pipelines ------------------------------------------------------
    OpSpec(
        "load_parquet",
        _RT + "parquet:LoadParquetNode",
        install="pip install 'streamdag[text]'",
        params={
            "columns": Param(None, _optional_strings),
            "batch_rows": Param(None, partial(check_int, minimum=1, optional=True)),
            "on_error": ON_ERROR_PARAM,
        },
    ),
    # -- torchdata's StreamReader -------------------------------------------------
    OpSpec(
        "read_from_stream",
        _RT + "stream_reader:StreamReaderNode",
        params={
            "chunk": Param(None, partial(check_int, minimum=1, optional=True)),
            "on_error": ON_ERROR_PARAM,
        },
    ),
)


def lister_options(node: Node) -> Mapping[str, Any] | None:
    """The storage_options of the FileLister a pipe reads from, through
    single-input nodes (shuffle, sharding_filter, ...): what ``open_files``
    uses unless given its own."""
    while node.inputs:
        if len(node.inputs) != 1:
            return None
        node = node.inputs[0]
    return node.params.get("storage_options") if node.op == "file_lister" else None


def find_holder(node: Node) -> Node | None:
    """The nearest ``on_disk_cache`` upstream of ``node`` that no
    ``end_caching`` on the way has ended (what torchdata's end_caching finds)."""
    seen: set[str] = set()
    level = [node]
    while level:
        for n in level:
            if n.op == "on_disk_cache":
                return n
        nxt: list[Node] = []
        for n in level:
            ups = n.inputs[1].inputs if n.op == "end_caching" else n.inputs
            nxt.extend(u for u in ups if u.id not in seen and not seen.add(u.id))
        level = nxt
    return None
