"""What ``decode_images`` does to a decoded image, defined once for every
backend: resize (``size`` int: the shorter side, aspect kept; ``[h, w]``:
exact), centre crop (halves rounded up, as DALI's crop), normalise (``mean``
and ``std`` on the 0..1 scale, as torchvision's ``Normalize``) and layout.
Pillow and nvJPEG call these helpers; DALI builds the same steps into its own
graph from the same ``Transform``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def _pair(value: int | Sequence[int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class Transform:
    """The op's image params, checked by its spec."""

    size: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str = "CHW"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Transform:
        size = params["size"]
        mean, std = params["mean"], params["std"]
        return cls(
            size=size if size is None or isinstance(size, int) else _pair(size),
            crop=_pair(params["crop"]),
            mean=None if mean is None else tuple(mean),
            std=None if std is None else tuple(std),
            layout=params["layout"],
        )

    @property
    def dense(self) -> bool:
        """Whether every output image has the same shape (one stacked tensor)."""
        return self.crop is not None or (self.size is not None and not isinstance(self.size, int))

    def normalisation(self) -> tuple[list[float], list[float]] | None:
        """(mean, std) on the 0..255 scale of uint8 pixels, or None: no normalising."""
        if self.mean is None or self.std is None:
            return None
        return [255.0 * m for m in self.mean], [255.0 * s for s in self.std]

    def resized(self, h: int, w: int) -> tuple[int, int]:
        """The (h, w) an ``h x w`` image is resized to (itself without ``size``)."""
        size = self.size
        if size is None:
            return h, w
        if not isinstance(size, int):
            return size
        if h <= w:
            return size, max(1, round(w * size / h))
        return max(1, round(h * size / w)), size

    def crop_origin(self, h: int, w: int) -> tuple[int, int]:
        """(top, left) of the centre crop of an ``h x w`` image ((0, 0) without ``crop``)."""
        ch, cw = self.crop or (h, w)
        return math.floor((h - ch) / 2.0 + 0.5), math.floor((w - cw) / 2.0 + 0.5)

    def finish(self, images: Any, layout: str) -> Any:
        """Resized and cropped uint8 images in ``layout`` ("HWC" or "CHW"),
        one stacked tensor or a list of tensors -> normalised (float32) when
        asked, in the op's layout, on the same device."""
        import torch

        stacked = not isinstance(images, list)
        scaled = self.normalisation()
        if scaled is not None:
            device = images.device if stacked else images[0].device
            shape = (3,) if layout == "HWC" else (3, 1, 1)
            mean = torch.tensor(scaled[0], device=device).view(shape)
            std = torch.tensor(scaled[1], device=device).view(shape)
            images = (
                (images.float() - mean) / std
                if stacked
                else [(t.float() - mean) / std for t in images]
            )
        if layout != self.layout:
            order = (2, 0, 1) if self.layout == "CHW" else (1, 2, 0)
            images = (
                images.permute(0, *(d + 1 for d in order)).contiguous()
                if stacked
                else [t.permute(*order).contiguous() for t in images]
            )
        return images
