"""Decompression, image decoding and routed decoding of samples.

Importing this package registers the decoder ops."""

from . import compression, dali, decode  # noqa: F401 - registration side effects
from .handlers import BUILTIN as builtin_decoders
from .image import decode_image, image_handler

__all__ = ["builtin_decoders", "decode_image", "image_handler"]
