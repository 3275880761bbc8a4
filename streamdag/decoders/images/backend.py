"""The shape every ``decode_images`` backend has: ``decode(encoded) ->
images`` for one batch, and the same as a queue (``put`` a batch, ``take``
the oldest one decoded), so that a backend that decodes asynchronously
(DALI) works on the next batch while the node hands one on. The node owns
the batch layout, the resume state and the error policy; a backend sees only
lists of encoded images."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from ..image import open_image
from .transform import Transform

OP = "decode_images"


class BadImages(Exception):
    """Raised by ``take`` (or ``decode``): these images of the oldest batch
    held, by index, do not decode. The backend keeps that batch until
    ``drop`` says which images to leave out of it."""

    def __init__(self, errors: dict[int, BaseException]) -> None:
        super().__init__(f"images {sorted(errors)} of the batch do not decode")
        self.errors = errors


def probe(encoded: Sequence[Any]) -> dict[int, BaseException]:
    """The images of a batch Pillow cannot decode, by index: names the
    culprits when a batched decoder (DALI, nvJPEG) fails on the whole batch."""
    errors: dict[int, BaseException] = {}
    for i, data in enumerate(encoded):
        try:
            with open_image(bytes(data)) as im:
                im.load()
        except Exception as exc:  # any decoder failure names the image
            errors[i] = exc
    return errors


class ImageBackend:
    """One way to decode batches of encoded images. The node puts up to
    ``depth`` batches, then takes the oldest one decoded, and so on."""

    #: batches the node puts before it takes the oldest
    depth = 1

    def __init__(
        self, transform: Transform, device: str, num_threads: int, device_id: int | None = None
    ) -> None:
        self.transform = transform
        self.device = device
        self.num_threads = num_threads
        self.device_id = device_id  # the CUDA device on "gpu" (choose.py)

    def decode(self, encoded: list[Any]) -> Any:
        """One batch of encoded images -> a stacked tensor (when
        ``transform.dense``) or a list of tensors; ``BadImages`` names the
        images that do not decode."""
        raise NotImplementedError

    def build(self, batch_hint: int | None) -> None:
        """Get ready to decode batches of about ``batch_hint`` images (None:
        unknown); called once an epoch's input has started."""

    def settle(self) -> None:
        """Finish work in the background and drop the batches held (an epoch
        left early); called before an epoch's input starts, which may fork
        worker processes. What was built stays for the next epoch."""
        raise NotImplementedError

    def prepare(self, n: int) -> bool:
        """Before a batch of ``n`` images is put: False when the batches
        held must be taken first."""
        return True

    def put(self, encoded: list[Any]) -> None:
        """Queue a batch of encoded images."""
        raise NotImplementedError

    def take(self) -> Any:
        """The oldest batch put, decoded as ``decode`` does."""
        raise NotImplementedError

    def drop(self, indices: Sequence[int]) -> None:
        """Leave the images at ``indices`` out of the oldest batch (after
        ``BadImages``); a batch left empty is dropped: take nothing for it."""
        raise NotImplementedError


class InlineBackend(ImageBackend):
    """A backend that decodes in this thread when a batch is taken:
    subclasses implement ``decode``."""

    def __init__(
        self, transform: Transform, device: str, num_threads: int, device_id: int | None = None
    ) -> None:
        super().__init__(transform, device, num_threads, device_id)
        self._held: deque[list[Any]] = deque()

    def settle(self) -> None:
        self._held.clear()

    def put(self, encoded: list[Any]) -> None:
        self._held.append(encoded)

    def take(self) -> Any:
        images = self.decode(self._held[0])
        self._held.popleft()
        return images

    def drop(self, indices: Sequence[int]) -> None:
        bad = set(indices)
        kept = [data for i, data in enumerate(self._held[0]) if i not in bad]
        if kept:
            self._held[0] = kept
        else:
            self._held.popleft()
