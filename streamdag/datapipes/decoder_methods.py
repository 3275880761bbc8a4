"""The decoder methods of DataPipe, as explicit typed methods (a mixin
DataPipe inherits), so editors and type checkers see them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .pipe_methods import PipeMethods

if TYPE_CHECKING:
    from .datapipe import DataPipe

Handler = Callable[[str, Any], Any]


class DecoderMethods(PipeMethods):
    __slots__ = ()

    def decompress(
        self,
        file_type: str | None = None,
        *,
        verify_limit: int = 64 << 20,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[tuple[str, Any]]:
        """(path, stream) -> (path, decompressed stream): gzip, bz2, xz, zstd
        or lz4 by ``file_type``, else by suffix, else by magic bytes; other
        streams pass through. The output of a gzip member (zstd/lz4 frame,
        bz2/xz stream) is passed on once it passed its checksum, up to
        ``verify_limit`` decompressed bytes of it (docs/readers.md)."""
        return self._then(
            "decompress",
            {"file_type": file_type, "verify_limit": verify_limit, "on_error": on_error},
            name=name,
        )

    def decode(
        self,
        *handlers: Handler,
        image: str = "numpy",
        mode: str = "rgb",
        size: int | Sequence[int] | None = None,
        by_ext: Mapping[str, Callable[[bytes], Any]] | None = None,
        defaults: bool = True,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Decode each field of dict samples (or (path, data) pairs) by
        extension: ``by_ext[ext](data)``, then each webdataset-style
        ``handler(key, data)`` that returns non-None, then the built-ins
        (images as ``image`` = "numpy" HWC / "torch" CHW uint8 / "pil" /
        "bytes" in ``mode`` rgb, rgba or l, resized to ``size``; txt, cls,
        json, npy, msgpack, pth), else the bytes stay."""
        params = {
            "handlers": list(handlers),
            "image": image,
            "mode": mode,
            "size": list(size) if isinstance(size, tuple) else size,
            "by_ext": dict(by_ext) if by_ext else None,
            "defaults": defaults,
            "on_error": on_error,
        }
        return self._then("decode", params, name=name)

    def decode_images(
        self,
        backend: str = "auto",
        device: str | None = None,
        size: int | Sequence[int] | None = None,
        crop: int | Sequence[int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        field: int | str | None = None,
        layout: str = "CHW",
        num_threads: int = 4,
        *,
        device_id: int | None = None,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[Any]:
        """Batches of encoded images -> torch tensors, decoded by ``backend``
        "dali" (GPU nvJPEG or CPU), "nvjpeg" (torchvision, GPU), "pillow" or
        "auto" (CPU: Pillow; GPU: DALI, else nvJPEG, else Pillow), resized
        (``size``: shorter side or [h, w]), centre-cropped, normalized; other
        fields pass through aligned. ``on_error="skip"``/``"warn"`` drops the
        samples whose image does not decode. On the GPU, ``device_id`` is the
        CUDA device (default: the current one when the node starts, so one DDP
        rank per GPU decodes on its own after ``torch.cuda.set_device``;
        docs/dali.md)."""

        def plain(v: Any) -> Any:
            return list(v) if isinstance(v, tuple) else v

        return self._then(
            "decode_images",
            {
                "backend": backend,
                "device": device,
                "device_id": device_id,
                "size": plain(size),
                "crop": plain(crop),
                "mean": plain(mean),
                "std": plain(std),
                "field": field,
                "layout": layout,
                "num_threads": num_threads,
                "on_error": on_error,
            },
            name=name,
        )

    # -- torchdata's RoutedDecoder, Extractor, Bz2FileLoader, XzFileLoader ----
    def routed_decode(
        self,
        *handlers: Callable[[str, Any], Any],
        key_fn: Callable[[str], str] | None = None,
        on_error: str = "raise",
        name: str | None = None,
    ) -> DataPipe[tuple[str, Any]]:
        """(path, bytes or stream) -> (path, value): ``handler(key_fn(path),
        data)`` in order, the first non-None wins (torchdata's
        ``RoutedDecoder``; ``key_fn`` defaults to the extension without its
        dot). Without handlers: text, ints, JSON, ``.pt`` tensors and images
        as float CHW tensors, as torch's default handlers (nothing unpickled)."""
        return self._then(
            "routed_decode",
            {"handlers": list(handlers), "key_fn": key_fn, "on_error": on_error},
            name=name,
        )

    def extract(
        self, file_type: str | None = None, *, on_error: str = "raise", name: str | None = None
    ) -> DataPipe[tuple[str, Any]]:
        """(path, stream) -> (path, opened archive or decompressed stream) by
        ``file_type`` ("tar", "zip", "gzip", "lzma", "bz2") or the suffix, as
        torchdata's ``Extractor``: a ``TarFile``, a ``ZipFile`` or a stream."""
        kind = file_type.lower() if isinstance(file_type, str) else file_type
        return self._then("extract", {"file_type": kind, "on_error": on_error}, name=name)

    def load_from_bz2(
        self, length: int = -1, *, on_error: str = "raise", name: str | None = None
    ) -> DataPipe[tuple[str, Any]]:
        """(path, bz2 stream) -> (path without ".bz2", decompressed stream).
        ``length`` is torchdata's nominal length, accepted and not used."""
        return self._then("load_from_bz2", {"length": length, "on_error": on_error}, name=name)

    def load_from_xz(
        self, length: int = -1, *, on_error: str = "raise", name: str | None = None
    ) -> DataPipe[tuple[str, Any]]:
        """(path, xz stream) -> (path without ".xz", decompressed stream).
        ``length`` is torchdata's nominal length, accepted and not used."""
        return self._then("load_from_xz", {"length": length, "on_error": on_error}, name=name)
