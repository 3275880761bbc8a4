"""Specs of the decoder ops (runtimes in ``streamdag.decoders``). Their
choices live here, so a graph with ``decode_images(backend="dali")`` loads,
validates and edits where DALI is not installed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from ...errors import ParamError
from ..params import check_bool, check_callable, check_choice, check_int
from ..policy import ON_ERROR_PARAM
from ..spec import OpSpec, Param

_RT = "streamdag.decoders."

#: file suffix -> compression format (``decompress(file_type=...)`` takes the suffixes)
SUFFIXES = {
    "gz": "gzip",
    "gzip": "gzip",
    "tgz": "gzip",
    "bz2": "bz2",
    "tbz2": "bz2",
    "tbz": "bz2",
    "xz": "xz",
    "txz": "xz",
    "lzma": "xz",
    "zst": "zstd",
    "zstd": "zstd",
    "tzst": "zstd",
    "lz4": "lz4",
}
#: the most decompressed bytes of one unit held back until its checks pass:
#: a whole text shard of the usual sizes (W4's are 16 MB), per open stream
VERIFY_LIMIT = 64 << 20
IMAGE_OUTPUTS = ("numpy", "torch", "pil")
IMAGE_MODES = ("rgb", "rgba", "l")
BACKENDS = ("auto", "dali", "nvjpeg", "pillow")
INSTALL_DALI = "pip install 'streamdag[dali]'"


def target_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """None, an int (a square side) or (width, height)."""
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size, size
    if (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        return size[0], size[1]
    raise ValueError(f"size must be None, a positive int or (width, height), got {size!r}")


def _size(op: str, key: str, value: Any) -> None:
    try:
        target_size(value)
    except ValueError as exc:
        raise ParamError(f"{op}: {str(exc).replace('size', key, 1)}") from None


def _handlers(op: str, key: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)):
        raise ParamError(f"{op}: {key} must be a list of callables, got {value!r}")
    for handler in value:
        check_callable(op, "each handler", handler)


def _by_ext(op: str, key: str, value: Any) -> None:
    if value is not None and (
        not isinstance(value, Mapping)
        or not all(isinstance(k, str) and callable(v) for k, v in value.items())
    ):
        raise ParamError(f"{op}: {key} must map extensions (str) to functions, got {value!r}")


def _triple(op: str, key: str, value: Any) -> None:
    if value is None:
        return
    if (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        if key == "std" and any(v == 0 for v in value):
            raise ParamError(f"{op}: std must not contain 0, got {value!r}")
        return
    raise ParamError(f"{op}: {key} must be None or 3 numbers (R, G, B), got {value!r}")


def _field(op: str, key: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, str))):
        raise ParamError(f"{op}: {key} must be None, a str key or an int index, got {value!r}")


def _mean_and_std(params: Mapping[str, Any]) -> None:
    if (params["mean"] is None) != (params["std"] is None):
        raise ParamError("decode_images: give both mean and std, or neither")


def _raises(params: Mapping[str, Any]) -> bool:
    """Under skip/warn a bad sample is dropped: not one output per input."""
    return params.get("on_error", "raise") == "raise"


def _choice(default: Any, *choices: Any) -> Param:
    return Param(default, partial(check_choice, choices=choices))


#: torchdata's ``CompressionType`` values, what ``extract(file_type=...)`` takes
EXTRACT_TYPES = ("gzip", "lzma", "tar", "zip", "bz2")
#: torchdata's nominal ``length``: taken so ported calls run, not used (no ``len()``)
_LENGTH = Param(-1, partial(check_int, minimum=-1))


SPECS = (
    OpSpec(
        "decompress",
        _RT + "compression:DecompressNode",
        params={
            "file_type": _choice(None, None, *sorted(SUFFIXES)),
            "verify_limit": Param(VERIFY_LIMIT, partial(check_int, minimum=0)),
            "on_error": ON_ERROR_PARAM,
        },
    ),
    OpSpec(
        "decode",
        _RT + "decode:DecodeNode",
        passthrough=True,
        decodes=True,
        elementwise=_raises,
        params={
            "handlers": Param([], _handlers),
            "image": _choice("numpy", *IMAGE_OUTPUTS, "bytes"),
            "mode": _choice("rgb", *IMAGE_MODES),
            "size": Param(None, _size),
            "by_ext": Param(None, _by_ext),
            "defaults": Param(True, check_bool),
            "on_error": ON_ERROR_PARAM,
        },
    ),
    OpSpec(
        "decode_images",
        _RT + "images.node:DecodeImagesNode",
        placement="main",
        # batches received from workers in a helper thread while the node waits on
        # DALI (H100, W5 with 2 processes: 0.89x -> 0.97x the standalone DALI pipeline)
        receive_ahead=4,
        install=INSTALL_DALI,
        check=_mean_and_std,
        params={
            "backend": _choice("auto", *BACKENDS),
            "device": _choice(None, None, "gpu", "cpu"),
            "device_id": Param(None, partial(check_int, minimum=0, optional=True)),
            "size": Param(None, _size),
            "crop": Param(None, _size),
            "mean": Param(None, _triple),
            "std": Param(None, _triple),
            "field": Param(None, _field),
            "layout": _choice("CHW", "CHW", "HWC"),
            "num_threads": Param(4, partial(check_int, minimum=1)),
            "on_error": ON_ERROR_PARAM,
        },
    ),
    # torchdata's RoutedDecoder, Extractor, Bz2FileLoader and XzFileLoader
    OpSpec(
        "routed_decode",
        _RT + "routed:RoutedDecodeNode",
        passthrough=True,
        decodes=True,
        elementwise=_raises,
        params={
            "handlers": Param([], _handlers),
            "key_fn": Param(None, partial(check_callable, optional=True)),
            "on_error": ON_ERROR_PARAM,
        },
    ),
    OpSpec(
        "extract",
        _RT + "extract:ExtractNode",
        params={"file_type": _choice(None, None, *EXTRACT_TYPES), "on_error": ON_ERROR_PARAM},
    ),
    OpSpec(
        "load_from_bz2",
        _RT + "suffix_loaders:Bz2LoaderNode",
        params={"length": _LENGTH, "on_error": ON_ERROR_PARAM},
    ),
    OpSpec(
        "load_from_xz",
        _RT + "suffix_loaders:XzLoaderNode",
        params={"length": _LENGTH, "on_error": ON_ERROR_PARAM},
    ),
)
