"""torchdata 0.9's remaining functional names of DataPipe (enumerate, slice,
zip_with_iter, random_split, ``len()``, ...), as a mixin DataPipe inherits:
the same arguments and outputs, so a port changes only import lines."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.ops.transforms import unzip_columns
from .length import length_of
from .map_style import IterToMapConverter
from .pipe_methods import PipeMethods

if TYPE_CHECKING:
    from .datapipe import DataPipe
    from .map_style import MapDataPipe

Fn = Callable[..., Any]


class TransformMethods(PipeMethods):
    __slots__ = ()

    def __len__(self) -> int:
        """The number of elements per epoch, where known in advance (torchdata's
        rules); TypeError otherwise, e.g. after ``filter``: ``set_length`` it."""
        return length_of(self.node)

    def __bool__(self) -> bool:
        return True  # a pipe is truthy even where len() is unknown

    # -- per element ------------------------------------------------------
    def enumerate(self, starting_index: int = 0, *, name: str | None = None) -> DataPipe[Any]:
        """``(index, element)`` pairs, counting from ``starting_index``."""
        return self._then("enumerate", {"starting_index": starting_index}, name=name)

    def add_index(self, index_name: str = "index", *, name: str | None = None) -> DataPipe[Any]:
        """Each dict element with its position under ``index_name`` (a new dict);
        NotImplementedError for an element that is not a dict."""
        return self._then("add_index", {"index_name": index_name}, name=name)

    def slice(
        self,
        index: Any,
        stop: int | None = None,
        step: int | None = None,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """``element[index:stop:step]`` of tuples and lists; with a list of
        indices (or dict keys), those columns; a dict with ``index`` as key
        keeps that key only."""
        if isinstance(index, list) and (stop or step):
            warnings.warn(
                "A list of indices was passed as well as a stop or step for the "
                "slice, these arguments can't be used together so only the indices "
                "list will be used.",
                stacklevel=2,
            )
        return self._then("slice", {"index": index, "stop": stop, "step": step}, name=name)

    def drop(self, indices: Hashable | list[Hashable], *, name: str | None = None) -> DataPipe[Any]:
        """Elements without the columns (or dict keys) ``indices``."""
        return self._then("drop", {"indices": indices}, name=name)

    def flatten(
        self, indices: Hashable | list[Hashable] | None = None, *, name: str | None = None
    ) -> DataPipe[Any]:
        """Splice the nested lists/tuples (dicts) at ``indices`` into each
        element, one level; every nested one where ``indices`` is None."""
        return self._then("flatten", {"indices": indices}, name=name)

    def rows2columnar(
        self, column_names: list[Any] | None = None, *, name: str | None = None
    ) -> DataPipe[Any]:
        """Each batch of rows (dicts or lists) as one ``{column: [values]}``."""
        return self._then("rows2columnar", {"column_names": column_names}, name=name)

    def in_batch_shuffle(self, *, name: str | None = None) -> DataPipe[Any]:
        """Each batch in a seeded random order (new each epoch, exact on resume)."""
        return self._then("in_batch_shuffle", {}, name=name)

    def repeat(self, times: int, *, name: str | None = None) -> DataPipe[Any]:
        """Each element ``times`` times in a row (``times`` > 1)."""
        return self._then("repeat", {"times": times}, name=name)

    def lines_to_paragraphs(
        self, joiner: Fn | None = None, *, name: str | None = None
    ) -> DataPipe[tuple[Any, Any]]:
        """``(file, line)`` pairs into ``(file, paragraph)``: consecutive
        non-empty lines of a file joined by ``joiner`` (default: ``"\\n".join``)."""
        return self._then("lines_to_paragraphs", {"joiner": joiner}, name=name)

    # -- lengths and distributed ---------------------------------------------
    def set_length(self, length: int, *, name: str | None = None) -> DataPipe[Any]:
        """The same elements, with ``len()`` = ``length`` (nothing is cut)."""
        return self._then("set_length", {"length": length}, name=name)

    def fullsync(self, timeout: int = 1800, *, name: str | None = None) -> DataPipe[Any]:
        """torchdata's equal-length guard across ranks. Here the identity:
        ``DistributedReadingService`` gives every rank the same number of
        batches (``even_batches``), so no rank waits on another at the end."""
        return self._then("fullsync", {"timeout": timeout}, name=name)

    # -- several pipes ---------------------------------------------------------
    def zip_longest(
        self, *others: DataPipe[Any], fill_value: Any = None, name: str | None = None
    ) -> DataPipe[tuple[Any, ...]]:
        """Tuples of one element of each pipe, until all have ended; the
        ended ones give ``fill_value``."""
        return self._then("zip_longest", {"fill_value": fill_value}, *others, name=name)

    def zip_with_iter(
        self,
        ref_datapipe: DataPipe[Any],
        key_fn: Fn,
        ref_key_fn: Fn | None = None,
        keep_key: bool = False,
        buffer_size: int | None = 10000,
        merge_fn: Fn | None = None,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Each element joined with the element of ``ref_datapipe`` with the
        same key (``merge_fn(item, ref_item)``, by default the pair), in this
        pipe's order; unmatched reference elements wait in a buffer."""
        params = {
            "key_fn": key_fn,
            "ref_key_fn": ref_key_fn,
            "keep_key": keep_key,
            "buffer_size": buffer_size,
            "merge_fn": merge_fn,
        }
        return self._then("zip_with_iter", params, ref_datapipe, name=name)

    def zip_with_map(
        self,
        map_datapipe: MapDataPipe[Any] | Mapping[Any, Any],
        key_fn: Fn,
        merge_fn: Fn | None = None,
        keep_key: bool = False,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Each element joined with ``map_datapipe[key_fn(element)]``
        (a MapDataPipe, a mapping or a sequence); KeyError for a missing key."""
        lookup = getattr(map_datapipe, "lookup_table", None)
        params = {
            "map_datapipe": lookup() if callable(lookup) else map_datapipe,
            "key_fn": key_fn,
            "merge_fn": merge_fn,
            "keep_key": keep_key,
        }
        return self._then("zip_with_map", params, name=name)

    # -- splitting -------------------------------------------------------------
    def round_robin_demux(
        self, num_instances: int, buffer_size: int = 1000, *, name: str | None = None
    ) -> list[DataPipe[Any]]:
        """``num_instances`` pipes; element i goes to pipe ``i % num_instances``.
        ``buffer_size`` -1: unlimited."""
        if num_instances == 1:
            warnings.warn(
                "The operation of `round_robin_demux` with `num_instances=1` is an "
                "no-op and returns the provided `datapipe` in a list directly",
                stacklevel=2,
            )
            return [self]  # type: ignore[list-item]
        hub = self._then(
            "round_robin_demux",
            {"num_instances": num_instances, "buffer_size": buffer_size},
            name=name,
        )
        return _branches(hub, num_instances, name)

    def unzip(
        self,
        sequence_length: int,
        buffer_size: int = 1000,
        columns_to_skip: list[int] | None = None,
        *,
        name: str | None = None,
    ) -> list[DataPipe[Any]]:
        """One pipe per column of the sequence elements (less ``columns_to_skip``)."""
        params = {
            "sequence_length": sequence_length,
            "buffer_size": buffer_size,
            "columns_to_skip": columns_to_skip,
        }
        if isinstance(sequence_length, int) and not unzip_columns(params):
            raise RuntimeError(
                "All instances are being filtered out in unzip. Please check "
                "the input `sequence_length` and `columns_to_skip`."
            )
        hub = self._then("unzip", params, name=name)
        return _branches(hub, len(unzip_columns(params)), name)

    def random_split(
        self,
        weights: Mapping[Any, float],
        seed: Any,
        total_length: int | None = None,
        target: Any = None,
        *,
        name: str | None = None,
    ) -> Any:
        """Split the elements at random into groups with the given weights:
        the same split every epoch for a ``seed``. All groups (a list) or the
        ``target`` one. ``total_length`` defaults to ``len()``."""
        if total_length is None:
            try:
                total_length = len(self)
            except TypeError:
                raise TypeError(
                    "random_split needs `total_length`, but it is unable to infer "
                    f"it from the input {self!r}."
                ) from None
        pairs = [[key, weight] for key, weight in weights.items()]

        def group(key: Any, label: str | None) -> DataPipe[Any]:
            return self._then(
                "random_split",
                {"weights": pairs, "seed": seed, "target": key, "total_length": total_length},
                name=label,
            )

        if target is not None:
            if target not in weights:
                raise KeyError(f"`target={target}` does not match any key in `weights`.")
            return group(target, name)
        return [group(key, f"{name}.{key}" if name else None) for key in weights]

    # -- map-style ---------------------------------------------------------------
    def to_map_datapipe(self, key_value_fn: Fn | None = None) -> MapDataPipe[Any]:
        """A map-style pipe over this pipe's ``(key, value)`` pairs (or
        ``key_value_fn(element)``), read when first indexed."""
        return IterToMapConverter(self, key_value_fn)

    # -- text and LLM: packing and padding -----------------------------------------
    def pack(
        self,
        seq_len: int,
        *,
        strategy: str = "concat",
        buffer_size: int = 1024,
        overflow: str = "split",
        pad_id: int = 0,
        eos_id: int | None = None,
        field: Hashable | None = None,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[dict[str, Any]]:
        """Token documents (lists of ints, 1-D arrays or tensors; dicts with
        ``field``) into dicts of ``input_ids``, ``segment_ids`` and
        ``position_ids``, int arrays of ``seq_len``. ``"concat"`` cuts the
        stream into rows in input order; ``"bfd"`` packs whole documents
        best-fit-decreasing within ``buffer_size`` documents, a longer one
        split, truncated or dropped as ``overflow`` says. ``eos_id`` ends
        each document with that token."""
        params = {
            "seq_len": seq_len,
            "strategy": strategy,
            "buffer_size": buffer_size,
            "overflow": overflow,
            "pad_id": pad_id,
            "eos_id": eos_id,
            "field": field,
            "on_error": on_error,
        }
        return self._then("pack", params, name=name)

    def pad_collate(
        self,
        padding_value: int | float = 0,
        pad_to_multiple_of: int | None = None,
        fields: list[Hashable] | tuple[Hashable, ...] | None = None,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Batches of variable-length sequences to padded torch tensors:
        ``(padded, attention_mask)`` for plain sequences; for dicts, each
        sequence field (or those in ``fields``) padded and an
        ``attention_mask`` added. Padded to the longest in the batch, rounded
        up to ``pad_to_multiple_of``."""
        params = {
            "padding_value": padding_value,
            "pad_to_multiple_of": pad_to_multiple_of,
            "fields": None if fields is None else list(fields),
        }
        return self._then("pad_collate", params, name=name)


def _branches(hub: DataPipe[Any], count: int, name: str | None) -> list[DataPipe[Any]]:
    return [
        hub._then("branch", {"index": i}, name=f"{name}.{i}" if name else None)
        for i in range(count)
    ]
