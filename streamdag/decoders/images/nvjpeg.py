"""The nvJPEG backend of ``decode_images``: torchvision's batched
``decode_jpeg(device="cuda")`` for JPEGs (other formats: Pillow, then
uploaded), resize (bilinear, antialiased), crop and normalise in torch on the
GPU. It has no option for libjpeg-turbo's chroma upsampling, so its 4:2:0
JPEGs differ more from Pillow's than DALI's do (docs/dali.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..image import decode_image
from .backend import OP, BadImages, InlineBackend, probe
from .transform import Transform


def nvjpeg_available() -> bool:
    """True when torchvision (whose ``decode_jpeg`` runs nvJPEG on CUDA) imports."""
    try:
        import torchvision.io  # noqa: F401
    except ImportError:
        return False
    return True


class NvjpegBackend(InlineBackend):
    def __init__(
        self, transform: Transform, device: str, num_threads: int, device_id: int | None = None
    ) -> None:
        super().__init__(transform, device, num_threads, device_id)
        if device != "gpu" or not nvjpeg_available():
            raise RuntimeError(
                f"{OP}: backend='nvjpeg' needs device='gpu' and torchvision "
                "(torchvision.io.decode_jpeg on CUDA)"
            )

    def decode(self, encoded: list[Any]) -> Any:
        import torch
        import torchvision.io as tio

        jpeg = [i for i, e in enumerate(encoded) if bytes(e[:2]) == b"\xff\xd8"]
        images: list[Any] = [None] * len(encoded)
        if jpeg:
            data = [torch.frombuffer(bytearray(encoded[i]), dtype=torch.uint8) for i in jpeg]
            try:
                decoded = tio.decode_jpeg(
                    data, mode=tio.ImageReadMode.RGB, device=f"cuda:{self.device_id}"
                )
            except Exception as exc:
                bad = probe(encoded)
                if not bad:
                    raise RuntimeError(
                        f"{OP}: nvJPEG failed on a batch of {len(encoded)} images: {exc}"
                    ) from exc
                raise BadImages(bad) from exc
            for i, img in zip(jpeg, decoded, strict=True):
                images[i] = img
        errors = {}
        for i, e in enumerate(encoded):  # PNG and others: Pillow, then upload
            if images[i] is None:
                try:
                    arr = np.array(decode_image(bytes(e), "rgb", None, "pil"))
                except Exception as exc:
                    errors[i] = exc
                    continue
                images[i] = (
                    torch.from_numpy(arr).permute(2, 0, 1).cuda(self.device_id, non_blocking=True)
                )
        if errors:
            raise BadImages(errors)
        out = [self._resize_crop(img) for img in images]
        return self.transform.finish(torch.stack(out) if self.transform.dense else out, "CHW")

    def _resize_crop(self, img: Any) -> Any:
        """Resize (bilinear, antialiased as Pillow) and centre-crop a CHW uint8 tensor."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        t = self.transform
        h, w = t.resized(img.shape[1], img.shape[2])
        if (h, w) != tuple(img.shape[1:]):
            img = F.interpolate(
                img[None].float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True
            )[0]
            img = img.round_().clamp_(0, 255).to(torch.uint8)
        if t.crop is not None:
            top, left = t.crop_origin(img.shape[1], img.shape[2])
            img = img[:, top : top + t.crop[0], left : left + t.crop[1]]
        return img.contiguous()
