"""Specs of the transform ops (runtimes in ``streamdag.transforms``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from ...errors import ParamError
from ..params import check_bool, check_callable, check_choice, check_col, check_int
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


def _map_columns(params: Mapping[str, Any]) -> None:
    if params["input_col"] is None and params["output_col"] is not None:
        raise ParamError("map: output_col needs input_col")


def _iterable(op: str, key: str, value: Any) -> None:
    if not hasattr(value, "__iter__"):
        raise ParamError(f"{op}: {key} must be iterable, got {value!r}")
    if isinstance(value, Iterator):
        raise ParamError(f"{op}: got a one-shot iterator (e.g. a generator), which can be "
                         "read only once; pass a list, a range or a re-iterable object instead")


def _weights(op: str, key: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in value):
        raise ParamError(f"{op}: {key} must be positive numbers, got {value!r}")


SPECS = (
    OpSpec("iterable_wrapper", _RT + "iterable_wrapper:IterableWrapperNode", inputs=(0, 0),
           params={"iterable": Param(check=_iterable)}),
    OpSpec("map", _RT + "map:MapNode", passthrough=True, elementwise=_always,
           params={"fn": _FN, "input_col": _COL, "output_col": _COL}, check=_map_columns),
    OpSpec("filter", _RT + "map:FilterNode", params={"fn": _FN, "input_col": _COL}),
    OpSpec("collate", _RT + "map:CollateNode", passthrough=True, params={"fn": _OPTIONAL_FN}),
    OpSpec("flatmap", _RT + "flatmap:FlatMapNode", params={"fn": _OPTIONAL_FN}),
    OpSpec("unbatch", _RT + "flatmap:UnbatchNode",
           params={"unbatch_level": Param(1, _int(-1))}),
    OpSpec("batch", _RT + "batch:BatchNode",
           params={"batch_size": Param(check=_int(1)), "drop_last": _BOOL[False]}),
    OpSpec("shuffle", _RT + "shuffle:ShuffleNode", params={
        "buffer_size": Param(10000, _int(1)), "initial": Param(100, _int(1, optional=True)),
        "decode_late": _BOOL[True], "enabled": _BOOL[True],
        "seed": Param(None, partial(check_int, optional=True))}),
    OpSpec("sharding_filter", _RT + "sharding:ShardingFilterNode", params={},
           splits_data=True),
    OpSpec("header", _RT + "header:HeaderNode", params={"limit": Param(10, _int(0))}),
    OpSpec("cycle", _RT + "cycle:CycleNode",
           params={"count": Param(None, _int(0, optional=True))}),
    OpSpec("zip", _RT + "combine:ZipNode", inputs=(2, None), params={}),
    OpSpec("concat", _RT + "combine:ConcatNode", inputs=(2, None), params={},
           passthrough=True),
    OpSpec("mux", _RT + "combine:MuxNode", inputs=(2, None), params={}, passthrough=True),
    OpSpec("fork", _RT + "fork:ForkNode", hub=True, params={
        "num_instances": Param(check=_int(1)), "buffer_size": _HUB_BUFFER,
        "copy": Param(None, partial(check_choice, choices=(None, "shallow", "deep")))}),
    OpSpec("demux", _RT + "fork:DemuxNode", hub=True, params={
        "num_instances": Param(check=_int(1)), "classifier_fn": _FN,
        "drop_none": _BOOL[False], "buffer_size": _HUB_BUFFER}),
    OpSpec("branch", _RT + "fork:BranchNode", params={"index": Param(check=_int(0))}),
    OpSpec("sample_multiplexer", _RT + "multiplexer:SampleMultiplexerNode", inputs=(1, None),
           params={"weights": Param(check=_weights),
                   "seed": Param(None, partial(check_int, optional=True))}),
    OpSpec("prefetch", _RT + "prefetch:PrefetchNode",
           params={"buffer_size": Param(10, _int(1))}),
    OpSpec("in_memory_cache", _RT + "cache:InMemoryCacheNode",
           params={"max_items": Param(None, _int(1, optional=True))}),
    OpSpec("mux_longest", _RT + "combine:MuxLongestNode", inputs=(2, None), params={},
           passthrough=True),
)
