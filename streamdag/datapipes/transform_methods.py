"""torchdata 0.9's remaining functional names of DataPipe (enumerate, slice,
zip_with_iter, random_split, ``len()``, ...), as a mixin DataPipe inherits:
the same arguments and outputs, so a port changes only import lines."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.ops.transforms import unzip_columns
from ..errors import ParamError
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
        ``target`` one. ``total_length`` defaults to ``len()``. A group's
        ``override_seed(seed)`` redraws the split of every group (torchdata's)."""
        if total_length is None:
            try:
                total_length = len(self)
            except TypeError:
                raise TypeError(
                    "random_split needs `total_length`, but it is unable to infer "
                    f"it from the input {self!r}."
                ) from None
        pairs = [[key, weight] for key, weight in weights.items()]

        groups: list[Any] = []

        def group(key: Any, label: str | None) -> Any:
            params = {"weights": pairs, "seed": seed, "target": key, "total_length": total_length}
            groups.append(
                self._split_group(self._then("random_split", params, name=label).node, groups)
            )
            return groups[-1]

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

    # -- grouping (torchdata's Grouper, BucketBatcher, MaxTokenBucketizer) --------
    def groupby(
        self,
        group_key_fn: Fn,
        *,
        keep_key: bool = False,
        buffer_size: int | None = 10000,
        group_size: int | None = None,
        guaranteed_group_size: int | None = None,
        drop_remaining: bool = False,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Lists of elements with the same ``group_key_fn`` (``(key, list)``
        with ``keep_key``), as torchdata: a group leaves at ``group_size``;
        when ``buffer_size`` elements are held the biggest group leaves (or,
        below ``guaranteed_group_size``, is dropped with ``drop_remaining``,
        counted as skipped, else RuntimeError); the rest leaves at the end."""
        params = {
            "group_key_fn": group_key_fn,
            "keep_key": keep_key,
            "buffer_size": buffer_size,
            "group_size": group_size,
            "guaranteed_group_size": guaranteed_group_size,
            "drop_remaining": drop_remaining,
        }
        return self._then("groupby", params, name=name)

    def bucketbatch(
        self,
        batch_size: int,
        drop_last: bool = False,
        batch_num: int = 100,
        bucket_num: int = 1,
        sort_key: Fn | None = None,
        use_in_batch_shuffle: bool = True,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Batches of similar elements, as torchdata builds them: a pool of
        ``bucket_num`` buckets of ``batch_num`` batches is shuffled, each
        bucket sorted by ``sort_key`` (a function of a list), cut into
        batches, and the batches shuffled. The same elements and batches as
        torchdata; the order from the loader's seed. A chain of batch,
        in_batch_shuffle or shuffle, map and unbatch nodes (``name`` names
        the last one), so every part saves, resumes and shuffles as those do."""
        if batch_size <= 0 or batch_num <= 0 or bucket_num <= 0:
            raise ParamError(
                "bucketbatch: batch_size, batch_num and bucket_num must be > 0, got "
                f"{batch_size}, {batch_num}, {bucket_num}"
            )
        bucket_size = batch_size * batch_num
        pipe: DataPipe[Any] = self  # type: ignore[assignment]
        if bucket_num > 1 or sort_key is None:
            pipe = _shuffled(pipe, bucket_size * bucket_num, use_in_batch_shuffle)
        if sort_key is not None:
            pipe = pipe.batch(bucket_size).map(sort_key).unbatch()
        if sort_key is None:
            return pipe.batch(batch_size, drop_last=drop_last, name=name)
        pipe = pipe.batch(batch_size, drop_last=drop_last)
        size = bucket_num if use_in_batch_shuffle else bucket_size
        return _shuffled(pipe, size, use_in_batch_shuffle, name)

    def max_token_bucketize(
        self,
        max_token_count: int,
        len_fn: Fn = len,
        min_len: int = 0,
        max_len: int | None = None,
        buffer_size: int = 1000,
        include_padding: bool = False,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Batches of at most ``max_token_count`` tokens (``len_fn`` of each
        element; with ``include_padding``, the batch's size times its longest),
        taken shortest first from a heap of ``buffer_size`` elements, as
        torchdata. Elements outside ``[min_len, max_len]`` (``max_len``
        defaults to ``max_token_count``) are dropped, counted as skipped."""
        params = {
            "max_token_count": max_token_count,
            "len_fn": len_fn,
            "min_len": min_len,
            "max_len": max_len,
            "buffer_size": buffer_size,
            "include_padding": include_padding,
        }
        return self._then("max_token_bucketize", params, name=name)

    # -- text and LLM pipelines ------------------------------------------------------
    def tokenize(
        self,
        tokenizer: str,
        *,
        field: str = "text",
        output_field: str = "input_ids",
        add_special_tokens: bool = True,
        batch_size: int = 64,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Text -> token ids with the Hugging Face ``tokenizers`` tokenizer
        saved at ``tokenizer`` (the path or fsspec URL of a ``tokenizer.json``,
        loaded once per worker), encoding ``batch_size`` elements per call. A
        str element becomes its list of ids; a dict gets ``output_field`` set
        to the ids of its ``field``. Needs ``pip install 'streamdag[text]'``."""
        params = {
            "tokenizer": tokenizer,
            "field": field,
            "output_field": output_field,
            "add_special_tokens": add_special_tokens,
            "batch_size": batch_size,
        }
        return self._then("tokenize", params, name=name)

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

    # -- training loop ----------------------------------------------------
    def pin_memory(
        self,
        device: Any = None,
        pin_memory_fn: Fn | None = None,
        *,
        buffer_size: int = 2,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Elements with their tensors (in tuples, lists, dicts) copied to
        pinned host memory by a background thread of the main process, up to
        ``buffer_size`` ahead, so ``.to("cuda", non_blocking=True)`` overlaps
        with compute. ``pin_memory_fn(element, device)`` replaces torch
        DataLoader's pinning function. Without CUDA, elements pass unpinned
        (one warning)."""
        params = {
            "device": _device_name(device),
            "pin_memory_fn": pin_memory_fn,
            "buffer_size": buffer_size,
        }
        return self._then("pin_memory", params, name=name)

    def to_device(
        self, device: Any, *, buffer_size: int = 2, name: str | None = None
    ) -> DataPipe[Any]:
        """Elements with their tensors (in tuples, lists, dicts) moved to
        ``device`` by a background thread of the main process, up to
        ``buffer_size`` ahead. To CUDA the copies run on a side stream from
        pinned memory, and the loop's current stream waits for them: use the
        tensors as they come, no synchronize needed."""
        params = {"device": _device_name(device), "buffer_size": buffer_size}
        return self._then("to_device", params, name=name)

    # -- torchdata's function-applying names --------------------------------------
    def map_batches(
        self, fn: Fn, batch_size: int, input_col: Any = None, *, name: str | None = None
    ) -> DataPipe[Any]:
        """``fn`` applied to each list of ``batch_size`` elements (their
        ``input_col`` values, a list per element for several columns), its
        results flattened: a vectorised ``fn`` is called once per batch."""
        params = {"fn": fn, "batch_size": batch_size, "input_col": input_col}
        return self._then("map_batches", params, name=name)

    def threadpool_map(
        self,
        fn: Fn,
        input_col: Any = None,
        output_col: Any = None,
        scheduled_tasks: int = 128,
        max_workers: int | None = None,
        *,
        name: str | None = None,
        **threadpool_kwargs: Any,
    ) -> DataPipe[Any]:
        """``map(fn, input_col, output_col)`` with ``fn`` run on up to
        ``scheduled_tasks`` elements at once by a ``ThreadPoolExecutor(
        max_workers, **threadpool_kwargs)``; the same elements in the same
        order. Worth it for I/O-bound functions, which release the GIL. A
        resume recomputes the tasks that were in flight."""
        if isinstance(output_col, (list, tuple)):
            if len(output_col) > 1:
                raise ParamError(
                    "threadpool_map: output_col must be a single-element list or tuple"
                )
            output_col = output_col[0]
        params = {
            "fn": fn,
            "input_col": input_col,
            "output_col": output_col,
            "scheduled_tasks": scheduled_tasks,
            "max_workers": max_workers,
            "threadpool_kwargs": threadpool_kwargs or None,
        }
        return self._then("threadpool_map", params, name=name)

    def shuffled_flatmap(
        self,
        fn: Fn | None = None,
        input_col: Any = None,
        buffer_size: int = 100,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """flatmap's elements (``fn(element)``, or ``fn`` of the ``input_col``
        values; None: the element itself), each drawn at random from the
        expansions of up to ``buffer_size`` elements: same elements, order
        from the seed (as ``shuffle``)."""
        params = {"fn": fn, "input_col": input_col, "buffer_size": buffer_size}
        return self._then("shuffled_flatmap", params, name=name)

    def shard_expand(self, *, name: str | None = None) -> DataPipe[str]:
        """Shard patterns in brace notation (``"train-{000000..000099}.tar"``,
        zero-padded where the bounds are) to the names they stand for, in order."""
        return self._then("shard_expand", {}, name=name)

    def async_map_batches(
        self,
        async_fn: Fn,
        batch_size: int,
        input_col: Any = None,
        output_col: Any = None,
        max_concurrency: int = 32,
        flatten: bool = True,
        *,
        name: str | None = None,
    ) -> DataPipe[Any]:
        """``map(async_fn, input_col, output_col)`` for an ``async def``
        function, awaited on each batch of ``batch_size`` elements at once (at
        most ``max_concurrency`` at a time) on an event loop of the node; the
        same elements in the same order, as batches unless ``flatten``. The
        graph: ``batch``, ``async_map_batches`` (per batch), ``flatmap``."""
        output_col = _one_col("async_map_batches", output_col)
        params = {
            "async_fn": async_fn,
            "input_col": input_col,
            "output_col": output_col,
            "max_concurrency": max_concurrency,
        }
        batches = self.batch(batch_size)._then("async_map_batches", params, name=name)
        if not flatten:
            return batches
        try:
            return batches.flatmap().set_length(length_of(self.node))
        except TypeError:  # no length known in advance: none set, as torchdata
            return batches.flatmap()


def _one_col(op: str, output_col: Any) -> Any:
    """torchdata's ``output_col=[col]`` as ``col``; more than one is refused."""
    if not isinstance(output_col, (list, tuple)):
        return output_col
    if len(output_col) > 1:
        raise ParamError(f"{op}: output_col must be a single-element list or tuple")
    return output_col[0]


def _device_name(device: Any) -> Any:
    """A ``torch.device`` as its name (graph params are plain data)."""
    return device if device is None or isinstance(device, (str, int)) else str(device)


def _branches(hub: DataPipe[Any], count: int, name: str | None) -> list[DataPipe[Any]]:
    return [
        hub._then("branch", {"index": i}, name=f"{name}.{i}" if name else None)
        for i in range(count)
    ]


def _shuffled(
    pipe: DataPipe[Any], size: int, in_batch: bool, name: str | None = None
) -> DataPipe[Any]:
    """bucketbatch's shuffle of ``size``: of whole pools, as torchdata's
    in-batch shuffle, or a buffer shuffle."""
    if in_batch:
        return pipe.batch(size).in_batch_shuffle().unbatch(name=name)
    return pipe.shuffle(buffer_size=size, name=name)
