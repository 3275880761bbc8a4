"""Decompression, image decoding and routed decoding of samples."""

from .handlers import BUILTIN as builtin_decoders
from .image import decode_image, image_handler

__all__ = ["builtin_decoders", "decode_image", "image_handler"]
