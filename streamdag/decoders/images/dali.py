"""The DALI backend of ``decode_images``: one DALI pipeline per runtime node
(external source -> ``fn.decoders.image`` on ``"mixed"`` (nvJPEG) for
``device="gpu"`` or ``"cpu"`` -> ``fn.resize`` -> ``fn.crop_mirror_normalize``),
its result handed to torch through DLPack (GPU: CUDA tensors, no host copy).
On the GPU it upsamples 4:2:0 chroma as libjpeg-turbo does
(``jpeg_fancy_upsampling``), so its pixels stay within JPEG tolerance of
Pillow's. The pipeline is built in a helper thread as soon as the input is
started (e.g. while worker processes start), and the first batch waits for
it; two batches are queued in DALI at once, so it decodes the next one while
one is handed on. DALI is imported only when a node runs."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...core.ops.decoders import INSTALL_DALI
from ...errors import StreamdagError
from .backend import OP, BadImages, ImageBackend, probe
from .transform import Transform

AHEAD_BATCH = 256  # a pipeline built before the first batch, when no batch node says the size
DALI_DEPTH = 2  # batches queued in DALI at once (its prefetch queue)


class DaliMissingError(StreamdagError, ImportError):
    """Raised when the DALI backend is asked for and nvidia-dali is not installed."""


def dali_available() -> bool:
    """True when ``nvidia.dali`` can be imported."""
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def import_dali() -> Any:
    try:
        import nvidia.dali as dali
        import nvidia.dali.fn  # noqa: F401
        import nvidia.dali.types  # noqa: F401
    except ImportError as exc:
        raise DaliMissingError(
            f"{OP}: backend='dali' needs NVIDIA DALI, which is not installed ({exc}). "
            f"Install it with: {INSTALL_DALI}  (or use backend='pillow' / 'auto')"
        ) from None
    return dali


class _DaliQueue:
    """Batches fed to one DALI pipeline ahead of their outputs, so that DALI's
    threads and stream decode the next batch while one is handed on. DALI
    runs its first ``depth`` batches at once: until then, taking an output
    pads the queue with copies of the batch, whose outputs are dropped."""

    def __init__(self, pipe: Any, depth: int) -> None:
        self.pipe, self.depth = pipe, depth
        self.fed: deque[tuple[bool, list[Any]]] = deque()  # (padding?, arrays) not yet taken
        self.primed = False

    def put(self, arrays: list[Any], pad: bool = False) -> None:
        self.pipe.feed_input("encoded", arrays)
        self.fed.append((pad, arrays))  # DALI reads the arrays in place (no_copy)
        if self.primed:
            self.pipe.schedule_run()
        elif len(self.fed) == self.depth:
            self.pipe.schedule_run()
            self.primed = True

    def take(self) -> Any:
        """The output of the oldest batch put; valid until the next ``take``."""
        self._prime()
        while True:
            (out,) = self.pipe.outputs()
            if not self.fed.popleft()[0]:
                return out

    def held(self) -> list[list[Any]]:
        """The batches put and not taken, oldest first (padding left out)."""
        return [arrays for pad, arrays in self.fed if not pad]

    def clear(self) -> None:
        """Drop the outputs not taken: padding, or batches of an epoch left early."""
        if self.fed:
            self._prime()
        while self.fed:
            self.pipe.outputs()
            self.fed.popleft()

    def _prime(self) -> None:
        while not self.primed:
            self.put(self.fed[0][1], pad=True)


class DaliBackend(ImageBackend):
    """Up to ``DALI_DEPTH`` batches queued in one DALI pipeline, built ahead
    in a helper thread for the batch size the graph says (else
    ``AHEAD_BATCH``), rebuilt once for larger batches or, meanwhile, for
    the smaller batches seen. A pipeline that failed is not reused."""

    depth = DALI_DEPTH

    def __init__(
        self, transform: Transform, device: str, num_threads: int, device_id: int | None = None
    ) -> None:
        super().__init__(transform, device, num_threads, device_id)
        import_dali()
        self._queue: _DaliQueue | None = None
        self._batch = 0  # the largest batch the pipeline takes
        self._next: Any = None  # Future of (pipeline, its batch size) built in a helper thread
        self._ready: tuple[Any, int] | None = None  # a pipeline to switch to at the next put
        self._seen = 0  # the largest batch seen
        self._resized = False  # whether a pipeline sized to the batches seen was asked for
        self._failed: list[list[Any]] = []  # the batches a failed pipeline held, oldest first

    def decode(self, encoded: list[Any]) -> Any:
        self.put(encoded)
        return self.take()

    def build(self, batch_hint: int | None) -> None:
        # Only now, after any fork: no thread may run DALI or CUDA code while a worker
        # process forks. The build overlaps the input's start-up.
        if self._queue is None and self._next is None:
            self._next = self._build_later(self._seen or batch_hint or AHEAD_BATCH)

    def settle(self) -> None:
        """Let DALI finish what it runs: a build in a helper thread, and
        batches queued by an epoch left early, whose outputs are dropped."""
        self._failed = []
        if self._next is not None:
            from concurrent.futures import wait

            wait([self._next])
        if self._queue is not None:
            try:
                self._queue.clear()
            except Exception:  # a batch not handed on did not decode: its output is dropped
                self._queue = None  # with the failed pipeline

    def prepare(self, n: int) -> bool:
        """False when the pipeline is to be switched (a new one is built,
        or the batch is larger than it takes): the old one is emptied first."""
        self._seen = max(self._seen, n)
        self._ready = self._built(wait=self._queue is None)
        return self._ready is None and self._queue is not None and n <= self._batch

    def put(self, encoded: list[Any]) -> None:
        n = len(encoded)
        if self._ready is not None or self._queue is None or n > self._batch:
            built, self._ready = self._ready, None
            if built is None or built[1] < n:
                built = self._build(n), n
            self._queue, self._batch = _DaliQueue(built[0], DALI_DEPTH), built[1]
        arrays = [
            e if isinstance(e, np.ndarray) else np.frombuffer(e, dtype=np.uint8) for e in encoded
        ]
        try:
            self._queue.put(arrays)
        except Exception:
            self._queue = None  # a failed DALI pipeline is not reused
            raise
        if self._batch > self._seen and not self._resized and self._next is None:
            # built ahead for more than the batches are: one sized to them decodes
            # 6-8% faster (H200); it is built meanwhile and taken when ready
            self._resized = True
            self._next = self._build_later(self._seen)

    def take(self) -> Any:
        import torch

        try:
            out = self._queue.take()
        except Exception as exc:
            held, self._queue = self._queue.held(), None  # a failed pipeline is not reused
            bad = probe(held[0])
            if not bad:
                raise RuntimeError(
                    f"{OP}: DALI failed on a batch of {len(held[0])} images: {exc}"
                ) from exc
            self._failed = held
            raise BadImages(bad) from exc
        # DALI recycles its buffers: take one device-local copy (never via the host).
        if self.transform.dense:
            return torch.from_dlpack(out.as_tensor()).clone()
        return [torch.from_dlpack(out[i]).clone() for i in range(len(out))]

    def drop(self, indices: Sequence[int]) -> None:
        """The failed pipeline lost every batch it held: a new one decodes
        them again, the oldest without the images at ``indices``."""
        held, self._failed = self._failed, []
        bad = set(indices)
        first = [a for i, a in enumerate(held[0]) if i not in bad]
        batches = [first, *held[1:]] if first else held[1:]
        if batches:
            self._queue = _DaliQueue(self._build(self._batch), DALI_DEPTH)
            for arrays in batches:
                self._queue.put(arrays)

    def _build_later(self, batch: int) -> Any:
        """A Future of (pipeline for ``batch`` images, ``batch``), built in a helper thread."""
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="streamdag-dali")
        future = pool.submit(lambda: (self._build(batch), batch))
        pool.shutdown(wait=False)  # its thread ends with the build
        return future

    def _built(self, wait: bool) -> tuple[Any, int] | None:
        """The pipeline built in a helper thread once it is done (waiting for
        it if ``wait``). None when there is none yet, or when its build
        failed: then the caller builds one in line and that raises the error."""
        future = self._next
        if future is None or not (wait or future.done()):
            return None
        self._next = None
        return None if future.exception() is not None else future.result()

    def _build(self, batch_size: int) -> Any:
        dali = import_dali()
        fn, types = dali.fn, dali.types
        t = self.transform
        gpu = self.device == "gpu"

        @dali.pipeline_def(
            batch_size=batch_size,
            num_threads=self.num_threads,
            device_id=self.device_id,  # fixed by the node, not this (helper) thread's
            prefetch_queue_depth=DALI_DEPTH,
            exec_dynamic=True,
        )
        def pipeline() -> Any:
            enc = fn.external_source(name="encoded", dtype=types.UINT8, no_copy=True)
            # fancy upsampling: 4:2:0 chroma as libjpeg-turbo (Pillow) upsamples it
            img = fn.decoders.image(
                enc,
                device="mixed" if gpu else "cpu",
                output_type=types.RGB,
                jpeg_fancy_upsampling=True,
            )
            if t.size is not None:
                if isinstance(t.size, int):
                    img = fn.resize(
                        img,
                        resize_shorter=float(t.size),
                        interp_type=types.INTERP_LINEAR,
                        antialias=True,
                        subpixel_scale=False,
                    )
                else:
                    img = fn.resize(
                        img,
                        resize_y=float(t.size[0]),
                        resize_x=float(t.size[1]),
                        interp_type=types.INTERP_LINEAR,
                        antialias=True,
                        subpixel_scale=False,
                    )
            scaled = t.normalisation()
            if t.crop is not None or scaled is not None or t.layout == "CHW":
                kw: dict[str, Any] = {
                    "output_layout": t.layout,
                    "dtype": types.UINT8 if scaled is None else types.FLOAT,
                }
                if t.crop is not None:
                    kw["crop"] = t.crop
                if scaled is not None:
                    kw["mean"], kw["std"] = scaled
                img = fn.crop_mirror_normalize(img, **kw)
            return img

        pipe = pipeline()
        pipe.build()
        return pipe
