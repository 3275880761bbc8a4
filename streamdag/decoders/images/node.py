"""The ``decode_images`` node: batches of samples in, the same batches out
with their images decoded by a backend (``choose.py``), other fields aligned.

Each sample of a batch is one of

* the encoded image itself (``bytes``, ``bytearray``, ``memoryview`` or a 1-D
  uint8 numpy array) -> the output is the image tensor alone;
* a ``dict`` (e.g. a webdataset sample) -> ``field`` names the image key (by
  default the first key that is or ends in ``jpg``/``jpeg``/``png``/``image``...);
  the output is a dict: the image key holds the batch tensor, every other key
  the list of that key's values, in sample order;
* a ``tuple``/``list`` -> ``field`` is the image's index (default 0); the output
  is a tuple: the batch tensor at that index, lists of the other columns elsewhere.

An image that does not decode fails the batch (``on_error="raise"``) naming
its index and sample, or (``"skip"``/``"warn"``) drops its sample from the
batch, all its fields with it, and counts a skip; a batch left with no image
is dropped.

The op's spec has ``placement = "main"``: worker reading services run it in
the main process, after the workers' batches are merged (GPU work must own
the device), and receive the next 4 batches in a helper thread meanwhile
(``receive_ahead``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from ...core.placement import upstream_batch_size
from ...runtime.node import RuntimeNode
from ...runtime.policy import ErrorPolicy
from ...runtime.sources import source_of
from .backend import OP, BadImages
from .choose import choose, open_backend
from .transform import Transform

IMAGE_KEYS = ("jpg", "jpeg", "png", "image", "img", "webp", "bmp")
ENCODED = (bytes, bytearray, memoryview, np.ndarray)
_NONE: Any = object()  # no saved state / end of input


class _Job(NamedTuple):
    """A batch pulled from the input and not yet handed on."""

    batch: Any
    kind: str  # "raw", "dict", "tuple" or "empty"
    field: Any
    encoded: list[Any]
    before: Any  # the input's state before the batch was pulled (backends of depth > 1)


class DecodeImagesNode(ErrorPolicy, RuntimeNode):
    """Batches of encoded images -> torch tensors (see the module docstring)."""

    def setup(self) -> None:
        p = self.params
        self.field = p["field"]
        self.device, name, device_id = choose(p["backend"], p["device"], p["device_id"])
        transform = Transform.from_params(p)
        self.backend = open_backend(name, transform, self.device, p["num_threads"], device_id)
        # the batch size a backend prepares for before the first batch shows it
        self._hint = upstream_batch_size(self.spec.inputs[0])
        self._saved: Any = _NONE

    def iterator(self) -> Iterator[Any]:
        self._saved = _NONE
        self.backend.settle()
        it = self.inputs[0].iterator()  # a worker service forks its workers here
        self.backend.build(self._hint)
        return self._decoded(it)

    def _decoded(self, it: Iterator[Any]) -> Iterator[Any]:
        """Up to ``backend.depth`` batches are put in the backend at once.
        Until a batch is handed on, ``state()`` is the input's state from
        before it was pulled, so a resume re-reads it: exact."""
        source, backend, depth = self.inputs[0], self.backend, self.backend.depth
        jobs: deque[_Job] = deque()
        while True:
            before = source.state() if depth > 1 else None
            batch = next(it, _NONE)
            if batch is _NONE:
                break
            job = _Job(batch, *self._split(batch), before)
            jobs.append(job)
            if job.encoded:
                if not backend.prepare(len(job.encoded)):
                    while len(jobs) > 1:  # hand on what the backend holds first
                        yield from self._hand_on(jobs)
                backend.put(job.encoded)
            if len(jobs) >= depth:
                yield from self._hand_on(jobs)
        while jobs:
            yield from self._hand_on(jobs)

    def _hand_on(self, jobs: deque[_Job]) -> Iterator[Any]:
        """The oldest job, decoded (nothing if none of its images decoded
        under skip/warn); ``state()`` then re-reads the jobs still queued."""
        job = jobs.popleft()
        self._saved = jobs[0].before if jobs else _NONE
        if not job.encoded:  # an empty input batch passes through
            yield job.batch
            return
        while job.encoded:  # less the images that do not decode, until the rest do
            try:
                images = self.backend.take()
            except BadImages as bad:
                job = self._without(job, bad.errors)
            else:
                yield self._join(job, images)
                return

    def _without(self, job: _Job, errors: Mapping[int, BaseException]) -> _Job:
        """``job`` less the samples whose images do not decode: raised (the
        first) under ``on_error="raise"``, else counted and dropped."""
        for i in sorted(errors):
            self.fail(errors[i], self._where(job, i))
        self.backend.drop(sorted(errors))
        keep = [i for i in range(len(job.encoded)) if i not in errors]
        return job._replace(
            batch=[job.batch[i] for i in keep], encoded=[job.encoded[i] for i in keep]
        )

    @staticmethod
    def _where(job: _Job, i: int) -> str:
        """Image ``i`` of the job, in words: its index, size and sample key."""
        source = None if job.kind == "raw" else source_of(job.batch[i])
        size = f"{memoryview(job.encoded[i]).nbytes} bytes"
        return f"image {i} of the batch ({size}{', ' + source if source else ''})"

    def state(self) -> Any:
        saved = getattr(self, "_saved", _NONE)
        return self.inputs[0].state() if saved is _NONE else saved

    def restore(self, state: Any) -> None:
        self._saved = _NONE
        self.inputs[0].restore(state)

    def reset(self) -> None:
        self._saved = _NONE

    # -- batch layout -------------------------------------------------------
    def _split(self, batch: Any) -> tuple[str, Any, list[Any]]:
        """(layout, image field, encoded images) of an input batch."""
        if not isinstance(batch, (list, tuple)):
            raise TypeError(
                f"{OP}: expects batches (lists of samples); got "
                f"{type(batch).__name__}. Put .batch(n) before it."
            )
        if not batch:
            return "empty", None, []
        kind, field = self._layout_of(batch[0])
        if kind == "raw":
            return kind, field, list(batch)
        try:
            return kind, field, [sample[field] for sample in batch]
        except (KeyError, IndexError, TypeError) as exc:
            raise KeyError(
                f"{OP}: a sample of the batch has no image field {field!r} ({exc!r})"
            ) from None

    @staticmethod
    def _join(job: _Job, images: Any) -> Any:
        """The batch with its images replaced by ``images``, other fields as lists."""
        batch, field = job.batch, job.field
        if job.kind == "raw":
            return images
        if job.kind == "dict":
            keys = list(batch[0])
            return {k: images if k == field else [s.get(k) for s in batch] for k in keys}
        width = len(batch[0])
        return tuple(images if i == field else [s[i] for s in batch] for i in range(width))

    def _layout_of(self, sample: Any) -> tuple[str, Any]:
        if isinstance(sample, ENCODED):
            return "raw", None
        if isinstance(sample, Mapping):
            if self.field is not None:
                return "dict", _dict_field(sample, self.field)
            for key in sample:
                if isinstance(key, str) and key.lower().rsplit(".", 1)[-1] in IMAGE_KEYS:
                    return "dict", key
            raise KeyError(f"{OP}: no image key in sample keys {list(sample)}; pass field=")
        if isinstance(sample, (tuple, list)):
            return "tuple", 0 if self.field is None else self.field
        raise TypeError(
            f"{OP}: samples must be encoded bytes, dicts or tuples; got {type(sample).__name__}"
        )


def _dict_field(sample: Mapping[Any, Any], field: Any) -> Any:
    """``field`` as given, or in webdataset()'s other key style ("jpg" for
    ".jpg" and the reverse), whichever the sample has."""
    if field in sample or not isinstance(field, str):
        return field
    other = field[1:] if field.startswith(".") else "." + field
    return other if other in sample else field
