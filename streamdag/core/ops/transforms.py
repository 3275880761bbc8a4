"""Specs of the transform ops (runtimes in ``streamdag.transforms``)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from ...errors import ParamError
from ..params import check_bool, check_callable, check_choice, check_col, check_int, check_type
from ..policy import ON_ERROR_PARAM
from ..spec import OpSpec, Param

_RT = "streamdag.transforms."


def _int(minimum: int, optional: bool = False) -> Any:
    return partial(check_int, minimum=minimum, optional=optional)


_FN = Param(check=check_callable)
_OPTIONAL_FN = Param(None, partial(check_callable, optional=True))
_BOOL = {False: Param(False, check_bool), True: Param(True, check_bool)}
_COL = Param(None, check_col)
#: fork/demux: how far outputs may drift apart; -1: without bound (as torchdata)
_HUB_BUFFER = Param(1000, _int(-1))


def _always(params: Mapping[str, Any]) -> bool:
    return True


def _pure_map(params: Mapping[str, Any]) -> bool:
    """A map's output depends on its element alone only if the user says so
    (``pure=True``) or it draws from its per-element generator (``rng=True``):
    a plain function may draw from a global RNG or have side effects."""
    return bool(params.get("pure") or params.get("rng"))


def _map_columns(params: Mapping[str, Any]) -> None:
    if params["input_col"] is None and params["output_col"] is not None:
        raise ParamError("map: output_col needs input_col")


def _iterable(op: str, key: str, value: Any) -> None:
    if not hasattr(value, "__iter__"):
        raise ParamError(f"{op}: {key} must be iterable, got {value!r}")
    if isinstance(value, Iterator):
        raise ParamError(
            f"{op}: got a one-shot iterator (e.g. a generator), which can be "
            "read only once; pass a list, a range or a re-iterable object instead"
        )


def _weights(op: str, key: str, value: Any) -> None:
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in value)
    ):
        raise ParamError(f"{op}: {key} must be positive numbers, got {value!r}")


# -- torchdata's remaining transform names -------------------------------------
_ANY = Param(None)
_OPTIONAL_INT = Param(None, partial(check_int, optional=True))


def _buffer(op: str, key: str, value: Any) -> None:
    check_int(op, key, value)
    if value == 0 or value < -1:
        raise ParamError(f"{op}: {key} must be a positive int or -1 (unlimited), got {value}")


def _device(op: str, key: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        want = "None, a device name or index" if optional else "a device name or index"
        raise ParamError(f"{op}: {key} must be {want}, got {value!r}")


_BUFFER = Param(1000, _buffer)
_STR = partial(check_type, types=str, want="a str")


def _indices(op: str, key: str, value: Any) -> None:
    if isinstance(value, list):
        return
    try:
        hash(value)
    except TypeError:
        raise ParamError(
            f"{op}: {key} must be an index, a key or a list of them, got {value!r}"
        ) from None


def _unlimited_or_positive(op: str, key: str, value: Any) -> None:
    check_int(op, key, value, optional=True)
    if value is not None and value <= 0:
        raise ParamError(f"{op}: {key} must be None or a positive int, got {value!r}")


def _repeat_times(op: str, key: str, value: Any) -> None:
    check_int(op, key, value)
    if value <= 1:
        raise ParamError(f"{op}: the number of repetition must be > 1, got {value}")


def _lookup(op: str, key: str, value: Any) -> None:
    if not hasattr(value, "__getitem__"):
        raise ParamError(
            f"{op}: {key} must be a MapDataPipe, a mapping or a sequence, "
            f"got {type(value).__name__}"
        )


def _split_weights(op: str, key: str, value: Any) -> None:
    if (
        not isinstance(value, list)
        or not value
        or not all(
            isinstance(p, (list, tuple))
            and len(p) == 2
            and isinstance(p[1], (int, float))
            and not isinstance(p[1], bool)
            and p[1] >= 0
            for p in value
        )
    ):
        raise ParamError(
            f"{op}: {key} must be [[key, weight], ...] with weights >= 0, got {value!r}"
        )
    if sum(p[1] for p in value) <= 0:
        raise ParamError(f"{op}: {key} must not all be 0")


def _split_target(params: Mapping[str, Any]) -> None:
    if params["total_length"] is None:
        raise ParamError(
            "random_split: total_length must be given (the DataPipe method "
            "takes it from len() of its input)"
        )
    if params["target"] not in [key for key, _ in params["weights"]]:
        raise ParamError(
            f"random_split: target={params['target']!r} does not match any key in weights"
        )


def unzip_columns(params: Mapping[str, Any]) -> list[int]:
    """The columns ``unzip`` gives outputs for, in order (output i is column ids[i])."""
    skip = set(params["columns_to_skip"] or ())
    return [i for i in range(params["sequence_length"]) if i not in skip]


def _unzip_columns(params: Mapping[str, Any]) -> None:
    skip = params["columns_to_skip"]
    if skip is not None and (
        not isinstance(skip, (list, tuple))
        or not all(isinstance(c, int) and not isinstance(c, bool) for c in skip)
    ):
        raise ParamError(f"unzip: columns_to_skip must be a list of ints, got {skip!r}")
    if not unzip_columns(params):
        raise ParamError(
            "unzip: all instances are filtered out; check sequence_length and columns_to_skip"
        )


def _unzip_outputs(params: Mapping[str, Any]) -> int:
    return len(unzip_columns(params))


# -- grouping (torchdata's Grouper and MaxTokenBucketizer) ---------------------
def _group_sizes(params: Mapping[str, Any]) -> None:
    size, group, floor = (
        params["buffer_size"],
        params["group_size"],
        params["guaranteed_group_size"],
    )
    if group is not None and size is not None and not 0 < group <= size:
        raise ParamError(f"groupby: group_size must be > 0 and <= buffer_size, got {group}")
    if floor is not None and (group is None or not 0 < floor <= group):
        raise ParamError(
            "groupby: guaranteed_group_size must be > 0 and <= group_size "
            f"and group_size must be set, got {floor}"
        )


def _token_lengths(params: Mapping[str, Any]) -> None:
    count, low, high = params["max_token_count"], params["min_len"], params["max_len"]
    high = count if high is None else high
    if low < 0 or low > high:
        raise ParamError(
            "max_token_bucketize: min_len must be >= 0 and <= max_len, "
            f"got min_len={low}, max_len={high}"
        )
    if high > count:
        raise ParamError(
            f"max_token_bucketize: max_token_count ({count}) must be >= max_len ({high})"
        )


# -- text and LLM: packing -------------------------------------------------------
#: what pack(strategy="bfd") does with a document longer than seq_len
PACK_OVERFLOW = ("split", "truncate", "drop")


def _pack_overflow(params: Mapping[str, Any]) -> None:
    if params["strategy"] == "concat" and params["overflow"] != "split":
        raise ParamError(
            f"pack: overflow={params['overflow']!r} needs strategy='bfd' "
            "(concat continues a long document in the next row and never cuts one)"
        )


def _fields(op: str, key: str, value: Any) -> None:
    if value is not None and not (isinstance(value, list) and value):
        raise ParamError(f"{op}: {key} must be None or a non-empty list of keys, got {value!r}")


# -- torchdata's function-applying names -----------------------------------------
def _output_needs_input(op: str, params: Mapping[str, Any]) -> None:
    if params["input_col"] is None and params["output_col"] is not None:
        raise ParamError(f"{op}: output_col needs input_col")


_threadpool_columns = partial(_output_needs_input, "threadpool_map")
_async_columns = partial(_output_needs_input, "async_map_batches")


def _coroutine_fn(op: str, key: str, value: Any) -> None:
    if not inspect.iscoroutinefunction(value):
        raise ParamError(f"{op}: {key} must be an async def function, got {value!r}")


def _threadpool_kwargs(op: str, key: str, value: Any) -> None:
    if value is not None and not (
        isinstance(value, dict) and all(isinstance(k, str) for k in value)
    ):
        raise ParamError(f"{op}: {key} must be None or a dict of ThreadPoolExecutor keywords")


SPECS = (
    OpSpec(
        "iterable_wrapper",
        _RT + "iterable_wrapper:IterableWrapperNode",
        inputs=(0, 0),
        params={"iterable": Param(check=_iterable), "deepcopy": _BOOL[True]},
    ),
    OpSpec(
        "map",
        _RT + "map:MapNode",
        passthrough=True,
        elementwise=_pure_map,
        params={
            "fn": _FN,
            "input_col": _COL,
            "output_col": _COL,
            "rng": _BOOL[False],
            "pure": _BOOL[False],
        },
        check=_map_columns,
    ),
    OpSpec("filter", _RT + "map:FilterNode", params={"fn": _FN, "input_col": _COL}),
    OpSpec("collate", _RT + "map:CollateNode", passthrough=True, params={"fn": _OPTIONAL_FN}),
    OpSpec("flatmap", _RT + "flatmap:FlatMapNode", params={"fn": _OPTIONAL_FN}),
    OpSpec("unbatch", _RT + "flatmap:UnbatchNode", params={"unbatch_level": Param(1, _int(-1))}),
    OpSpec(
        "batch",
        _RT + "batch:BatchNode",
        params={"batch_size": Param(check=_int(1)), "drop_last": _BOOL[False]},
    ),
    OpSpec(
        "shuffle",
        _RT + "shuffle:ShuffleNode",
        params={
            "buffer_size": Param(10000, _int(1)),
            "initial": Param(100, _int(1, optional=True)),
            "decode_late": _BOOL[True],
            "enabled": _BOOL[True],
            "seed": Param(None, partial(check_int, optional=True)),
        },
    ),
    OpSpec("sharding_filter", _RT + "sharding:ShardingFilterNode", params={}, splits_data=True),
    OpSpec("header", _RT + "header:HeaderNode", params={"limit": Param(10, _int(0))}),
    OpSpec("cycle", _RT + "cycle:CycleNode", params={"count": Param(None, _int(0, optional=True))}),
    OpSpec("zip", _RT + "combine:ZipNode", inputs=(2, None), params={}),
    OpSpec("concat", _RT + "combine:ConcatNode", inputs=(2, None), params={}, passthrough=True),
    OpSpec("mux", _RT + "combine:MuxNode", inputs=(2, None), params={}, passthrough=True),
    OpSpec(
        "fork",
        _RT + "fork:ForkNode",
        hub=True,
        params={
            "num_instances": Param(check=_int(1)),
            "buffer_size": _HUB_BUFFER,
            "copy": Param(None, partial(check_choice, choices=(None, "shallow", "deep"))),
        },
    ),
    OpSpec(
        "demux",
        _RT + "fork:DemuxNode",
        hub=True,
        params={
            "num_instances": Param(check=_int(1)),
            "classifier_fn": _FN,
            "drop_none": _BOOL[False],
            "buffer_size": _HUB_BUFFER,
        },
    ),
    OpSpec("branch", _RT + "fork:BranchNode", params={"index": Param(check=_int(0))}),
    OpSpec(
        "sample_multiplexer",
        _RT + "multiplexer:SampleMultiplexerNode",
        inputs=(1, None),
        params={
            "weights": Param(check=_weights),
            "seed": Param(None, partial(check_int, optional=True)),
        },
    ),
    OpSpec("prefetch", _RT + "prefetch:PrefetchNode", params={"buffer_size": Param(10, _int(1))}),
    OpSpec(
        "pin_memory",
        _RT + "pin_memory:PinMemoryNode",
        placement="main",  # memory pinned in a worker process is not pinned once sent
        params={
            "device": Param(None, partial(_device, optional=True)),
            "pin_memory_fn": _OPTIONAL_FN,
            "buffer_size": Param(2, _int(1)),
        },
    ),
    OpSpec(
        "to_device",
        _RT + "to_device:ToDeviceNode",
        placement="main",  # the main process owns the device
        params={"device": Param(check=_device), "buffer_size": Param(2, _int(1))},
    ),
    OpSpec(
        "in_memory_cache",
        _RT + "cache:InMemoryCacheNode",
        params={"max_items": Param(None, _int(1, optional=True))},
    ),
    # -- torchdata's remaining transform names ---------------------------------
    OpSpec(
        "enumerate",
        _RT + "counted:EnumerateNode",
        passthrough=True,
        params={"starting_index": Param(0, partial(check_int))},
    ),
    OpSpec(
        "add_index",
        _RT + "counted:AddIndexNode",
        passthrough=True,
        params={"index_name": Param("index")},
    ),
    OpSpec("in_batch_shuffle", _RT + "counted:InBatchShuffleNode", passthrough=True, params={}),
    OpSpec(
        "slice",
        _RT + "reshape:SliceNode",
        passthrough=True,
        elementwise=_always,
        params={"index": Param(check=_indices), "stop": _OPTIONAL_INT, "step": _OPTIONAL_INT},
    ),
    OpSpec(
        "drop",
        _RT + "reshape:DropNode",
        passthrough=True,
        elementwise=_always,
        params={"indices": Param(check=_indices)},
    ),
    OpSpec(
        "flatten",
        _RT + "reshape:FlattenNode",
        passthrough=True,
        elementwise=_always,
        params={"indices": Param(None, _indices)},
    ),
    OpSpec(
        "rows2columnar",
        _RT + "reshape:Rows2ColumnarNode",
        passthrough=True,
        params={
            "column_names": Param(
                None,
                partial(
                    check_type, types=(list, tuple, type(None)), want="a list of names or None"
                ),
            )
        },
    ),
    OpSpec(
        "lines_to_paragraphs",
        _RT + "paragraphs:LinesToParagraphsNode",
        params={"joiner": _OPTIONAL_FN},
    ),
    OpSpec("repeat", _RT + "repeat:RepeatNode", params={"times": Param(check=_repeat_times)}),
    OpSpec(
        "zip_longest",
        _RT + "zip_longest:ZipLongestNode",
        inputs=(1, None),
        params={"fill_value": _ANY},
    ),
    OpSpec(
        "zip_with_iter",
        _RT + "key_zip:ZipWithIterNode",
        inputs=(2, 2),
        params={
            "key_fn": _FN,
            "ref_key_fn": _OPTIONAL_FN,
            "keep_key": _BOOL[False],
            "buffer_size": Param(10000, _unlimited_or_positive),
            "merge_fn": _OPTIONAL_FN,
        },
    ),
    OpSpec(
        "zip_with_map",
        _RT + "key_zip:ZipWithMapNode",
        passthrough=True,
        params={
            "map_datapipe": Param(check=_lookup),
            "key_fn": _FN,
            "merge_fn": _OPTIONAL_FN,
            "keep_key": _BOOL[False],
        },
    ),
    OpSpec(
        "round_robin_demux",
        _RT + "unzip:RoundRobinDemuxNode",
        hub=True,
        params={"num_instances": Param(check=_int(1)), "buffer_size": _BUFFER},
    ),
    OpSpec(
        "unzip",
        _RT + "unzip:UnzipNode",
        hub=True,
        outputs=_unzip_outputs,
        check=_unzip_columns,
        params={
            "sequence_length": Param(check=_int(1)),
            "buffer_size": _BUFFER,
            "columns_to_skip": Param(None),
        },
    ),
    OpSpec(
        "random_split",
        _RT + "random_split:RandomSplitNode",
        params={
            "weights": Param(check=_split_weights),
            "seed": Param(
                check=partial(
                    check_type, types=(int, str, bytes, float), want="an int, float, str or bytes"
                )
            ),
            "total_length": Param(None, _int(0, optional=True)),
            "target": _ANY,
        },
        check=_split_target,
    ),
    OpSpec(
        "fullsync",
        _RT + "identity:IdentityNode",
        passthrough=True,
        elementwise=_always,
        params={"timeout": Param(1800, _int(1))},
    ),
    OpSpec(
        "set_length",
        _RT + "identity:IdentityNode",
        passthrough=True,
        elementwise=_always,
        params={"length": Param(check=_int(0))},
    ),
    OpSpec(
        "mux_longest", _RT + "combine:MuxLongestNode", inputs=(2, None), params={}, passthrough=True
    ),
    # -- grouping (torchdata's Grouper and MaxTokenBucketizer) -----------------
    OpSpec(
        "groupby",
        _RT + "grouping:GroupByNode",
        params={
            "group_key_fn": _FN,
            "keep_key": _BOOL[False],
            "buffer_size": Param(10000, _unlimited_or_positive),
            "group_size": Param(None, _int(1, optional=True)),
            "guaranteed_group_size": Param(None, _int(1, optional=True)),
            "drop_remaining": _BOOL[False],
        },
        check=_group_sizes,
    ),
    OpSpec(
        "max_token_bucketize",
        _RT + "grouping:MaxTokenBucketizeNode",
        params={
            "max_token_count": Param(check=_int(1)),
            "len_fn": Param(len, check_callable),
            "min_len": Param(0, check_int),
            "max_len": _OPTIONAL_INT,
            "buffer_size": Param(1000, _int(1)),
            "include_padding": _BOOL[False],
        },
        check=_token_lengths,
    ),
    # -- text and LLM pipelines ------------------------------------------------------
    OpSpec(
        "tokenize",
        _RT + "tokenize:TokenizeNode",
        install="pip install 'streamdag[text]'",
        params={
            "tokenizer": Param(check=_STR),
            "field": Param("text", _STR),
            "output_field": Param("input_ids", _STR),
            "add_special_tokens": _BOOL[True],
            "batch_size": Param(64, _int(1)),
        },
    ),
    # -- text and LLM: packing ---------------------------------------------------
    OpSpec(
        "pack",
        _RT + "pack:PackNode",
        params={
            "seq_len": Param(check=_int(1)),
            "strategy": Param("concat", partial(check_choice, choices=("concat", "bfd"))),
            "buffer_size": Param(1024, _int(1)),
            "overflow": Param("split", partial(check_choice, choices=PACK_OVERFLOW)),
            "pad_id": Param(0, _int(0)),
            "eos_id": Param(None, _int(0, optional=True)),
            "field": _ANY,
            "on_error": ON_ERROR_PARAM,
        },
        check=_pack_overflow,
    ),
    OpSpec(
        "pad_collate",
        _RT + "pad_collate:PadCollateNode",
        elementwise=_always,
        params={
            "padding_value": Param(0, partial(check_type, types=(int, float), want="a number")),
            "pad_to_multiple_of": Param(None, _int(1, optional=True)),
            "fields": Param(None, _fields),
        },
    ),
    # -- torchdata's function-applying names (map_batches, threadpool_map, ...) --
    OpSpec(
        "map_batches",
        _RT + "map_batches:MapBatchesNode",
        params={"fn": _FN, "batch_size": Param(check=_int(1)), "input_col": _COL},
    ),
    OpSpec(
        "threadpool_map",
        _RT + "threadpool_map:ThreadPoolMapNode",
        passthrough=True,
        params={
            "fn": _FN,
            "input_col": _COL,
            "output_col": _COL,
            "scheduled_tasks": Param(128, _int(1)),
            "max_workers": Param(None, _int(1, optional=True)),
            "threadpool_kwargs": Param(None, _threadpool_kwargs),
        },
        check=_threadpool_columns,
    ),
    OpSpec(
        "shuffled_flatmap",
        _RT + "shuffled_flatmap:ShuffledFlatMapNode",
        params={"fn": _OPTIONAL_FN, "input_col": _COL, "buffer_size": Param(100, _int(1))},
    ),
    OpSpec("shard_expand", _RT + "shard_expand:ShardExpandNode", params={}),
    OpSpec(
        "async_map_batches",
        _RT + "async_map:AsyncMapBatchNode",
        passthrough=True,
        params={
            "async_fn": Param(check=_coroutine_fn),
            "input_col": _COL,
            "output_col": _COL,
            "max_concurrency": Param(32, _int(1)),
        },
        check=_async_columns,
    ),
    OpSpec(
        "sampler",
        _RT + "sampler:SamplerNode",
        inputs=(0, 0),
        params={
            "sampler": _OPTIONAL_FN,  # None: torch's SequentialSampler
            "sampler_args": Param(
                None, partial(check_type, types=(list, type(None)), want="a list")
            ),
            "sampler_kwargs": Param(
                None, partial(check_type, types=(dict, type(None)), want="a dict")
            ),
            "length": Param(check=_int(0)),
        },
    ),
)
