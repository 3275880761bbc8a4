"""The reader methods of DataPipe, as explicit typed methods (a mixin
DataPipe inherits), so editors and type checkers see them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.ops.readers import find_holder, lister_options
from ..core.readers import RUNTIME as READER_RUNTIME
from ..core.registry import get_op
from ..errors import ParamError
from .decoder_methods import DecoderMethods

if TYPE_CHECKING:
    from .datapipe import DataPipe
    from .reader import Reader


class ReaderMethods(DecoderMethods):
    __slots__ = ()

    def open_files(
        self,
        mode: str = "r",
        encoding: str | None = None,
        *,
        storage_options: Mapping[str, Any] | None = None,
        kwargs_for_open: Mapping[str, Any] | None = None,
        on_error: str = "raise",
        retry: bool | Mapping[str, Any] = False,
        name: str | None = None,
    ) -> DataPipe[tuple[str, Any]]:
        """Paths -> (path, open stream) on any fsspec filesystem, read lazily
        by the next node. ``mode`` as torchdata: "r"/"t"/"rt" text (universal
        newlines, ``encoding``), "b"/"rb" binary (what archive readers and
        ``decompress`` need). ``storage_options`` default to those of the
        FileLister upstream. ``kwargs_for_open`` go to fsspec's ``fs.open``
        for each file (e.g. ``{"compression": "gzip"}``), as torchdata's
        FSSpecFileOpener. ``retry=True`` (or a dict of ``chunk_size``,
        ``read_ahead``, ``shards_ahead``, ``max_retries``, ``backoff_base``,
        ``backoff_max``) reads through ranged, retried chunks with read-ahead:
        the setting for object stores (see docs/s3.md)."""
        if storage_options is None:
            storage_options = lister_options(self.node)
        params = {
            "mode": mode,
            "encoding": encoding,
            "storage_options": dict(storage_options) if storage_options else None,
            "on_error": on_error,
        }
        if retry:
            if kwargs_for_open:
                raise ParamError(
                    "open_files: retry reads ranged chunks itself and takes no "
                    "kwargs_for_open; decompress() the stream downstream instead"
                )
            options = {} if retry is True else dict(retry)
            return self._then("open_files_retrying", {**params, **options}, name=name)
        # a dict copy (plain data for graph files); a non-mapping goes on to the spec's error
        params["kwargs_for_open"] = (
            dict(kwargs_for_open) if isinstance(kwargs_for_open, Mapping) else kwargs_for_open
        ) or None
        return self._then("open_files", params, name=name)

    def open_files_by_fsspec(
        self,
        mode: str = "r",
        encoding: str | None = None,
        *,
        kwargs_for_open: Mapping[str, Any] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        on_error: str = "raise",
        retry: bool | Mapping[str, Any] = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> DataPipe[tuple[str, Any]]:
        """``open_files`` with torchdata's FSSpecFileOpener arguments too: the
        other keyword arguments (``**kwargs``) are the filesystem's options,
        added to ``storage_options``."""
        if kwargs:
            storage_options = {**(storage_options or lister_options(self.node) or {}), **kwargs}
        return self.open_files(
            mode,
            encoding,
            storage_options=storage_options,
            kwargs_for_open=kwargs_for_open,
            on_error=on_error,
            retry=retry,
            name=name,
        )

    def load_from_tar(
        self, *, streams: bool = False, on_error: str = "raise", name: str | None = None
    ) -> DataPipe[tuple[str, Any]]:
        """(path, stream) of tar archives (plain or compressed) -> (archive/member,
        bytes), or a member stream with ``streams=True``."""
        return self._then("load_from_tar", {"streams": streams, "on_error": on_error}, name=name)

    def load_from_zip(
        self, *, streams: bool = False, on_error: str = "raise", name: str | None = None
    ) -> DataPipe[tuple[str, Any]]:
        """(path, stream) of zip archives -> (archive/member, bytes or stream)."""
        return self._then("load_from_zip", {"streams": streams, "on_error": on_error}, name=name)

    def readlines(
        self,
        *,
        skip_lines: int = 0,
        strip_newline: bool = True,
        decode: bool = False,
        encoding: str = "utf-8",
        errors: str = "ignore",
        return_path: bool = True,
        line_numbers: bool = False,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[Any]:
        """(path, stream) -> (path, line) per line, streaming, as torchdata's:
        ``skip_lines`` first lines of each file left out, "\\r\\n" stripped
        from the ends, bytes lines (binary streams) decoded only with
        ``decode``; ``return_path=False`` drops the path, ``line_numbers``
        gives (path, number, line)."""
        params = {
            "skip_lines": skip_lines,
            "strip_newline": strip_newline,
            "decode": decode,
            "encoding": encoding,
            "errors": errors,
            "return_path": return_path,
            "line_numbers": line_numbers,
            "on_error": on_error,
        }
        return self._then("readlines", params, name=name)

    def parse_jsonl(
        self,
        *,
        encoding: str = "utf-8",
        return_path: bool = False,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[Any]:
        """(path, stream) of JSON lines -> one value per non-blank line
        ((path, value) with ``return_path``)."""
        params = {"encoding": encoding, "return_path": return_path, "on_error": on_error}
        return self._then("parse_jsonl", params, name=name)

    def parse_csv(
        self,
        *,
        skip_lines: int = 0,
        decode: bool = True,
        encoding: str = "utf-8",
        errors: str = "ignore",
        return_path: bool = False,
        as_tuple: bool = False,
        on_error: str = "raise",
        name: str | None = None,
        **fmtparams: Any,
    ) -> DataPipe[Any]:
        """(path, stream) of CSV -> each record as a list (a tuple with
        ``as_tuple``), the header row included, as torchdata's; ``fmtparams``
        (delimiter, quotechar, ...) go to ``csv.reader``. Dicts keyed by the
        header row: ``parse_csv_as_dict``."""
        params = {
            "skip_lines": skip_lines,
            "decode": decode,
            "encoding": encoding,
            "errors": errors,
            "return_path": return_path,
            "as_tuple": as_tuple,
            "fmtparams": fmtparams or None,
            "on_error": on_error,
        }
        return self._then("parse_csv", params, name=name)

    def webdataset(
        self, *, keys: str = "torchdata", on_error: str = "raise", name: str | None = None
    ) -> DataPipe[dict[str, Any]]:
        """Archive members -> one dict per sample (consecutive members with
        the same key). ``keys="torchdata"``: torchdata's keys, ``__key__`` =
        "<archive>/<key>" and one field per extension with its dot, case kept
        (".jpg"); ``keys="webdataset"``: the webdataset package's, ``__key__``,
        ``__url__`` and fields lowercased without the dot ("jpg")."""
        return self._then("webdataset", {"keys": keys, "on_error": on_error}, name=name)

    def read_with(
        self,
        reader: Reader | str,
        *,
        on_error: str = "raise",
        name: str | None = None,
        **params: Any,
    ) -> DataPipe[Any]:
        """Feed each element to a custom reader registered with ``inputs=1``
        (the ``Reader`` or its name)."""
        op = reader if isinstance(reader, str) else reader.name
        if get_op(op).runtime != READER_RUNTIME:
            raise ParamError(f"read_with: {op!r} is not a reader (@sd.reader)")
        return self._then(op, {**params, "on_error": on_error}, name=name)

    # -- torchdata's HttpReader, HashChecker, TFRecordLoader, on-disk cache ----
    def read_from_http(
        self,
        timeout: float | None = None,
        skip_on_error: bool = False,
        *,
        on_error: str = "raise",
        name: str | None = None,
        **kwargs: Any,
    ) -> DataPipe[tuple[str, Any]]:
        """URL -> (URL, response body stream) by an HTTP GET (torchdata's
        ``HttpReader``); ``kwargs`` go to ``requests`` (``headers``, ``auth``,
        ...). An error status fails naming the URL; ``skip_on_error`` drops it
        with a warning."""
        return self._then(
            "read_from_http",
            {
                "timeout": timeout,
                "skip_on_error": skip_on_error,
                "kwargs": kwargs,
                "on_error": on_error,
            },
            name=name,
        )

    def check_hash(
        self,
        hash_dict: Mapping[str, str],
        hash_type: str = "sha256",
        rewind: bool = True,
        *,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[tuple[str, Any]]:
        """(path, data or stream) -> the same, once its ``hash_type`` digest
        equals ``hash_dict[path]`` (torchdata's ``HashChecker``); a stream is
        given on from its start with ``rewind``."""
        return self._then(
            "check_hash",
            {
                "hash_dict": dict(hash_dict),
                "hash_type": hash_type,
                "rewind": rewind,
                "on_error": on_error,
            },
            name=name,
        )

    def load_from_tfrecord(
        self,
        spec: Mapping[str, tuple[Any, Any]] | None = None,
        length: int = -1,
        *,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[dict[str, Any]]:
        """(path, stream) of TFRecord files -> one dict per record (torchdata's
        ``TFRecordLoader``), checksums checked; ``spec`` maps the feature
        names to keep to (shape, torch dtype). ``length`` is accepted, not used."""
        plain = (
            None
            if spec is None
            else {
                k: [
                    None if shape is None else list(shape),
                    None if dtype is None else str(dtype).removeprefix("torch."),
                ]
                for k, (shape, dtype) in spec.items()
            }
        )
        return self._then(
            "load_from_tfrecord", {"spec": plain, "length": length, "on_error": on_error}, name=name
        )

    def on_disk_cache(
        self,
        filepath_fn: Callable[[Any], str] | None = None,
        hash_dict: Mapping[str, str] | None = None,
        hash_type: str = "sha256",
        extra_check_fn: Callable[[str], bool] | None = None,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Start of a cached branch (torchdata's ``OnDiskCacheHolder``):
        elements whose file ``filepath_fn(element)`` is on disk (and matches
        ``hash_dict``, and passes ``extra_check_fn``) skip the branch up to
        ``end_caching``; the others go through it (docs/migrating-from-torchdata.md)."""
        return self._then(
            "on_disk_cache",
            {
                "filepath_fn": filepath_fn,
                "hash_dict": dict(hash_dict) if hash_dict else None,
                "hash_type": hash_type,
                "extra_check_fn": extra_check_fn,
            },
            name=name,
        )

    def end_caching(
        self,
        mode: str = "wb",
        filepath_fn: Callable[[Any], str] | None = None,
        *,
        same_filepath_fn: bool = False,
        skip_read: bool = False,
        timeout: float = 300,
        name: str | None = None,
    ) -> DataPipe[str]:
        """End of the nearest ``on_disk_cache`` branch upstream: writes each
        (metadata, data or stream) to ``filepath_fn(metadata)`` (the cache's
        own with ``same_filepath_fn``) and yields the paths written, then the
        cached ones (torchdata's ``EndOnDiskCacheHolder``)."""
        holder = find_holder(self.node)
        if holder is None:
            raise ParamError("end_caching: no on_disk_cache upstream to end")
        return self._then(
            "end_caching",
            {
                "mode": mode,
                "filepath_fn": filepath_fn,
                "same_filepath_fn": same_filepath_fn,
                "skip_read": skip_read,
                "timeout": timeout,
            },
            type(self)(holder),  # type: ignore[call-arg]
            name=name,
        )

    def parse_csv_as_dict(
        self,
        *,
        skip_lines: int = 0,
        decode: bool = True,
        encoding: str = "utf-8",
        errors: str = "ignore",
        return_path: bool = False,
        on_error: str = "raise",
        name: str | None = None,
        **fmtparams: Any,
    ) -> DataPipe[Any]:
        """(path, stream) of CSV -> one dict per record after the header row,
        keyed by it, as ``csv.DictReader`` (and torchdata) makes them;
        ``fmtparams`` may name the columns (``fieldnames``) and set
        ``restkey``/``restval`` and csv's format parameters."""
        if "fieldnames" in fmtparams and fmtparams["fieldnames"] is not None:
            fmtparams["fieldnames"] = list(fmtparams["fieldnames"])
        params = {
            "skip_lines": skip_lines,
            "decode": decode,
            "encoding": encoding,
            "errors": errors,
            "return_path": return_path,
            "fmtparams": fmtparams or None,
            "on_error": on_error,
        }
        return self._then("parse_csv_as_dict", params, name=name)

    def parse_json_files(
        self, *, on_error: str = "raise", name: str | None = None, **kwargs: Any
    ) -> DataPipe[tuple[str, Any]]:
        """(path, stream) of JSON files -> (path, the file's parsed value), as
        torchdata's: the whole file is one JSON document; ``kwargs`` go to
        ``json.loads``."""
        params = {"kwargs": kwargs or None, "on_error": on_error}
        return self._then("parse_json_files", params, name=name)

    def list_files(
        self,
        masks: str | Sequence[str] = "",
        *,
        recursive: bool = False,
        abspath: bool = False,
        non_deterministic: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[str]:
        """Roots (paths, URLs) -> the files under each, as ``FileLister``
        lists them (torchdata's ``list_files``): masks "" matches every file.
        The order is always deterministic; ``non_deterministic`` is accepted
        for torchdata's signature (any order was allowed)."""
        del non_deterministic
        params = {
            "masks": list(masks) if isinstance(masks, tuple) else masks,
            "recursive": recursive,
            "abspath": abspath,
            "storage_options": dict(storage_options) if storage_options else None,
            "on_error": on_error,
        }
        return self._then("list_files", params, name=name)

    def list_files_by_fsspec(
        self, masks: str | Sequence[str] = "", *, name: str | None = None, **kwargs: Any
    ) -> DataPipe[str]:
        """torchdata's fsspec lister: ``list_files(masks)`` of each root with
        ``kwargs`` as the fsspec storage options (the files only, sorted)."""
        return self.list_files(masks, storage_options=kwargs or None, name=name)

    # -- text and LLM pipelines ------------------------------------------------------
    def load_parquet(
        self,
        columns: Sequence[str] | None = None,
        batch_rows: int | None = None,
        *,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[dict[str, Any]]:
        """(path, stream) of Parquet files (``open_files(mode="b")``) -> one
        dict per row, or with ``batch_rows`` dicts of numpy column arrays of
        at most that many rows (a batch stays within a row group). Only the
        ``columns`` asked for are read. Needs ``pip install 'streamdag[text]'``."""
        params = {
            "columns": list(columns) if isinstance(columns, tuple) else columns,
            "batch_rows": batch_rows,
            "on_error": on_error,
        }
        return self._then("load_parquet", params, name=name)

    # -- torchdata's StreamReader ------------------------------------------------------
    def read_from_stream(
        self, chunk: int | None = None, *, on_error: str = "raise", name: str | None = None
    ) -> DataPipe[tuple[str, Any]]:
        """(path, stream) -> (path, data) per ``chunk`` bytes (characters for a
        text stream) read, or one (path, all data) with ``chunk=None``; each
        stream is closed once read."""
        params = {"chunk": chunk, "on_error": on_error}
        return self._then("read_from_stream", params, name=name)
