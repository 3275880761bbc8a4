"""The Pillow backend of ``decode_images``: decodes in this process
(libjpeg-turbo), resizes with Pillow's BILINEAR filter (antialiased, as
DALI's linear filter) and moves the batch to its CUDA device for ``device="gpu"``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..image import decode_image
from .backend import BadImages, InlineBackend


class PillowBackend(InlineBackend):
    def decode(self, encoded: list[Any]) -> Any:
        import torch

        arrays, errors = [], {}
        for i, data in enumerate(encoded):
            try:
                arrays.append(self._one(data))
            except Exception as exc:
                errors[i] = exc
        if errors:
            raise BadImages(errors)
        if self.transform.dense:
            images: Any = torch.from_numpy(np.stack(arrays))
        else:
            images = [torch.from_numpy(a.copy()) for a in arrays]
        images = self.transform.finish(images, "HWC")
        if self.device == "gpu":
            gpu = self.device_id
            images = (
                images.cuda(gpu, non_blocking=True)
                if not isinstance(images, list)
                else [t.cuda(gpu, non_blocking=True) for t in images]
            )
        return images

    def _one(self, data: Any) -> np.ndarray:
        """One image, resized and cropped, as an HWC uint8 array."""
        from PIL import Image

        t = self.transform
        im = decode_image(bytes(data), "rgb", None, "pil")
        if t.size is not None:
            h, w = t.resized(im.height, im.width)
            im = im.resize((w, h), Image.BILINEAR)
        if t.crop is not None:
            top, left = t.crop_origin(im.height, im.width)
            im = im.crop((left, top, left + t.crop[1], top + t.crop[0]))
        return np.asarray(im)
