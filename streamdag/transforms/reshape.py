"""slice, drop, flatten and rows2columnar: torchdata's column reshaping of
tuples, lists and dicts, one element at a time (stateless C ``map``s)."""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Hashable, Iterator
from typing import Any

from ..runtime.node import RuntimeNode

_NOT_ITERABLE = (
    "The next item was not an iterable and cannot be filtered, please be aware "
    "that no filter was done or new item created."
)
_MISSING = (
    "At least one index in the filter is not present in the item being returned, "
    "please be aware that expected columns/keys may be missing."
)
_TWICE = (
    "Flattener tried to insert the same key twice into the dict item, the second "
    "key,value pair has been dropped."
)


def _as_set(indices: Any) -> set[Hashable]:
    return set(indices) if isinstance(indices, list) else {indices}


def _warn_missing(item: Any, indices: Any) -> None:
    try:
        for index in indices:
            item[index]
    except (IndexError, KeyError):
        warnings.warn(_MISSING, stacklevel=2)


def _put(out: dict[Any, Any], key: Any, value: Any, taken: dict[Any, Any]) -> None:
    """torchdata's rule: a key already in ``taken`` is dropped, with a warning."""
    if key in taken:
        warnings.warn(_TWICE, stacklevel=3)
    else:
        out[key] = value


class SliceNode(RuntimeNode):
    """``element[index:stop:step]``; with a list of indices (or keys), those columns."""

    def setup(self) -> None:
        self._index, self._stop, self._step = (self.params[k] for k in ("index", "stop", "step"))
        self._listed = isinstance(self._index, list)

    def iterator(self) -> Iterator[Any]:
        return map(self._slice, self.inputs[0].iterator())

    def _slice(self, item: Any) -> Any:
        index, listed = self._index, self._listed
        if isinstance(item, (tuple, list)):
            out = (
                type(item)(x for i, x in enumerate(item) if i in index)
                if listed
                else item[index : self._stop : self._step]
            )
        elif isinstance(item, dict):
            if listed:
                out = {k: v for k, v in item.items() if k in index}
            elif index in item:
                out = {index: item[index]}
            else:
                out = item
                warnings.warn(
                    "Dictionaries are not sliced by steps, only direct index. Please "
                    "be aware that no filter was done or new item created.",
                    stacklevel=2,
                )
        else:
            out = item
            warnings.warn(_NOT_ITERABLE, stacklevel=2)
        if listed:
            _warn_missing(item, index)
        return out


class DropNode(RuntimeNode):
    """``element`` without the columns (or dict keys) ``indices``."""

    def setup(self) -> None:
        self._indices = _as_set(self.params["indices"])

    def iterator(self) -> Iterator[Any]:
        return map(self._drop, self.inputs[0].iterator())

    def _drop(self, item: Any) -> Any:
        indices = self._indices
        if isinstance(item, (tuple, list)):
            out = type(item)(x for i, x in enumerate(item) if i not in indices)
        elif isinstance(item, dict):
            out = {k: v for k, v in item.items() if k not in indices}
        else:
            out = item
            warnings.warn(_NOT_ITERABLE, stacklevel=2)
        _warn_missing(item, indices)
        return out


class FlattenNode(RuntimeNode):
    """Nested lists/tuples (or dicts) at ``indices`` spliced into each element,
    one level; all of them where ``indices`` is None (torchdata: any false value)."""

    def setup(self) -> None:
        indices = self.params["indices"]
        self._indices = _as_set(indices) if indices else set()

    def iterator(self) -> Iterator[Any]:
        return map(self._flatten, self.inputs[0].iterator())

    def _flatten(self, item: Any) -> Any:
        indices = self._indices
        every = not indices
        if isinstance(item, dict):
            out: Any = {}
            for k, v in item.items():
                if (every or k in indices) and isinstance(v, dict):
                    for sub_key, sub_value in v.items():
                        _put(out, sub_key, sub_value, taken=item)
                else:
                    _put(out, k, v, taken=out)
        else:
            out = []
            for i, v in enumerate(item):
                if (every or i in indices) and isinstance(v, (list, tuple)):
                    out.extend(v)
                else:
                    out.append(v)
            if isinstance(item, tuple):
                out = tuple(out)
        if indices:
            _warn_missing(item, indices)
        return out


class Rows2ColumnarNode(RuntimeNode):
    """Each batch of rows (dicts or lists) as one ``{column: [values]}``."""

    def setup(self) -> None:
        self._names = list(self.params["column_names"] or ())

    def iterator(self) -> Iterator[Any]:
        return map(self._columnar, self.inputs[0].iterator())

    def _columnar(self, batch: Any) -> defaultdict[Any, list[Any]]:
        names = self._names
        out: defaultdict[Any, list[Any]] = defaultdict(list)
        for row in batch:
            if isinstance(row, dict):
                for name in names or row:
                    out[name].append(row[name])
            else:
                for i, value in enumerate(row):
                    out[names[i]].append(value)
        return out
