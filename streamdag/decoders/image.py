"""Image decoding with Pillow to uint8 arrays: HWC numpy or CHW torch.

With a target ``size`` the JPEG decoder is put in draft mode first, so a
large JPEG is decoded at 1/2, 1/4 or 1/8 scale (never below the target)
before the final resize: shrinking costs a fraction of a full decode."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..core.ops.decoders import IMAGE_MODES, IMAGE_OUTPUTS, target_size

MODES = dict(zip(IMAGE_MODES, ("RGB", "RGBA", "L"), strict=True))
OUTPUTS = IMAGE_OUTPUTS
IMAGE_EXTENSIONS = frozenset(
    {"jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm", "pbm", "pnm", "tif", "tiff"}
)
# Pillow's names for those formats: the only ones opened, whatever the bytes
# say. Others are not needed, and one (EPS) runs the Ghostscript program.
PIL_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "PPM", "TIFF")


def decode_image(
    data: bytes, mode: str = "rgb", size: int | Sequence[int] | None = None, to: str = "numpy"
) -> Any:
    """Encoded image bytes -> uint8 ``HxWxC`` numpy array (``to="numpy"``,
    C = 3, 4 or 1 for rgb, rgba, l), ``CxHxW`` torch tensor (``"torch"``)
    or a PIL image (``"pil"``), resized to ``size`` (width, height) if given."""
    from PIL import Image

    pil_mode = MODES[mode]
    wanted = target_size(size)
    img = open_image(data)
    if wanted is not None and img.format == "JPEG":
        img.draft("L" if pil_mode == "L" else "RGB", wanted)
    img = img.convert(pil_mode) if img.mode != pil_mode else _loaded(img)
    if wanted is not None and img.size != wanted:
        img = img.resize(wanted, Image.BILINEAR)
    if to == "pil":
        return img
    import numpy as np

    if to == "numpy":
        array = np.array(img)  # a writable copy (np.asarray would be read-only)
        return array[:, :, None] if array.ndim == 2 else array
    import torch

    array = np.asarray(img)
    if array.ndim == 2:
        return torch.from_numpy(array.copy()).unsqueeze(0)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def open_image(data: bytes) -> Any:
    """``data`` as a PIL image, if it is in one of PIL_FORMATS
    (UnidentifiedImageError otherwise)."""
    from PIL import Image

    return Image.open(io.BytesIO(data), formats=PIL_FORMATS)


def _loaded(img: Any) -> Any:
    img.load()  # decode now, so a corrupt image fails here and not later
    return img


def image_handler(
    mode: str = "rgb", size: int | Sequence[int] | None = None, to: str = "numpy"
) -> Callable[[str, bytes], Any]:
    """A webdataset-style ``handler(key, data)`` decoding image extensions
    (jpg, jpeg, png, webp, bmp, ppm, tif...) and returning None for the rest.
    A ``functools.partial`` of a module function, so a graph using it saves."""
    if mode not in MODES or to not in OUTPUTS:
        raise ValueError(f"mode must be one of {sorted(MODES)} and to one of {OUTPUTS}")
    target_size(size)
    return partial(decode_image_field, mode=mode, size=size, to=to)


def decode_image_field(
    key: str,
    data: bytes,
    mode: str = "rgb",
    size: int | Sequence[int] | None = None,
    to: str = "numpy",
) -> Any:
    """``decode_image`` for keys with an image extension, None for others."""
    if key[key.rfind(".") + 1 :].lower() in IMAGE_EXTENSIONS:
        return decode_image(data, mode, size, to)
    return None
