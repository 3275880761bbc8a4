"""decode_images: batched image decoding with NVIDIA DALI (or Pillow), to torch tensors.

Input: batches (lists) of samples. Each sample is one of

* the encoded image itself (``bytes``, ``bytearray``, ``memoryview`` or a 1-D
  uint8 numpy array) -> the output is the image tensor alone;
* a ``dict`` (e.g. a webdataset sample) -> ``field`` names the image key (by
  default the first key that is or ends in ``jpg``/``jpeg``/``png``/``image``...);
  the output is a dict: the image key holds the batch tensor, every other key
  the list of that key's values, in sample order;
* a ``tuple``/``list`` -> ``field`` is the image's index (default 0); the output
  is a tuple: the batch tensor at that index, lists of the other columns elsewhere.

Pipeline: decode (RGB) -> resize -> center crop -> normalize. ``size`` (int:
the shorter side; ``[h, w]``: exact) and ``crop`` (int or ``[h, w]``) are
optional; ``mean``/``std`` (3 floats, on the 0..1 scale as torchvision's
``Normalize``) turn the output into float32 ``(x / 255 - mean) / std``; else it
stays uint8. ``layout`` is ``"CHW"`` (default) or ``"HWC"``. When every image
ends the same size (``crop`` or ``size=[h, w]``) the batch is one tensor
``N x C x H x W``; otherwise a list of per-image tensors.

Backends: ``"dali"`` builds one DALI pipeline per runtime node (external
source -> ``fn.decoders.image`` on ``"mixed"`` (nvJPEG) for ``device="gpu"`` or
``"cpu"`` -> ``fn.resize`` -> ``fn.crop_mirror_normalize``) and hands the
result to torch through DLPack (GPU: CUDA tensors, no host copy); on the GPU
it upsamples 4:2:0 chroma as libjpeg-turbo does (``jpeg_fancy_upsampling``),
so its pixels stay within JPEG tolerance of Pillow's. The pipeline is built in
a helper thread as soon as the input is started (e.g. while worker processes
start), and the first batch waits for it; two batches are queued in DALI at
once, so it decodes the next one while one is handed on. ``"pillow"`` decodes
in this process with Pillow (resize BILINEAR with antialiasing, as
DALI's linear filter), and moves to CUDA for ``device="gpu"``. ``"auto"`` picks
DALI on the GPU when CUDA and DALI are present, else Pillow: same shapes and
dtypes. DALI is imported only when a node runs, never at ``import streamdag``.

The node has ``placement = "main"``: worker reading services run it in the
main process, after the workers' batches are merged (GPU work must own the
device), and receive the next 4 batches in a helper thread meanwhile
(``receive_ahead``)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..core.ops.decoders import INSTALL_DALI
from ..core.placement import upstream_batch_size
from ..errors import StreamdagError
from ..runtime.node import RuntimeNode
from .image import decode_image as pillow_decode
from .image import open_image

OP = "decode_images"
IMAGE_KEYS = ("jpg", "jpeg", "png", "image", "img", "webp", "bmp")
ENCODED = (bytes, bytearray, memoryview, np.ndarray)
_NONE: Any = object()  # no saved state / end of input
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


def nvjpeg_available() -> bool:
    """True when torchvision (whose ``decode_jpeg`` runs nvJPEG on CUDA) imports."""
    try:
        import torchvision.io  # noqa: F401
    except ImportError:
        return False
    return True


def _import_dali() -> Any:
    try:
        import nvidia.dali as dali
        import nvidia.dali.fn  # noqa: F401
        import nvidia.dali.types  # noqa: F401
    except ImportError as exc:
        raise DaliMissingError(
            f"{OP}: backend='dali' needs NVIDIA DALI, which is not installed ({exc}). "
            f"Install it with: {INSTALL_DALI}  (or use backend='pillow' / 'auto')") from None
    return dali


def _pair(value: int | Sequence[int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def _resize_shape(h: int, w: int, size: int | tuple[int, int]) -> tuple[int, int]:
    """Output (h, w) of the resize: ``size`` int scales the shorter side."""
    if not isinstance(size, int):
        return size
    if h <= w:
        return size, max(1, round(w * size / h))
    return max(1, round(h * size / w)), size


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


class _Job(NamedTuple):
    """A batch pulled from the input and not yet handed on."""

    batch: Any
    kind: str  # "raw", "dict", "tuple" or "empty"
    field: Any
    encoded: list[Any]
    before: Any  # the input's state before the batch was pulled


class DecodeImagesNode(RuntimeNode):
    """Batches of encoded images -> torch tensors (see the module docstring)."""


    def setup(self) -> None:
        p = self.params
        self.size = p["size"]
        if isinstance(self.size, list):
            self.size = tuple(self.size)
        self.crop = _pair(p["crop"])
        self.mean = p["mean"]
        self.std = p["std"]
        self.layout = p["layout"]
        self.field = p["field"]
        self.num_threads = p["num_threads"]
        self.device, self.backend = self._resolve(p["backend"], p["device"])
        self._dali: _DaliQueue | None = None
        self._dali_batch = 0  # the largest batch the pipeline takes
        self._next: Any = None  # Future of (pipeline, its batch size) built in a helper thread
        self._seen = 0  # the largest batch seen
        self._resized = False  # whether a pipeline sized to the batches seen was asked for
        # the batch size the pipeline is built for before the first batch: a second
        # build, sized to the batches seen, costs start-up and GPU memory
        self._ahead = upstream_batch_size(self.spec.inputs[0]) or AHEAD_BATCH
        self._saved: Any = _NONE

    @staticmethod
    def _resolve(backend: str, device: str | None) -> tuple[str, str]:
        import torch

        cuda = torch.cuda.is_available()
        if device is None:
            device = "gpu" if cuda else "cpu"
        if device == "gpu" and not cuda:
            raise RuntimeError(f"{OP}: device='gpu' but torch.cuda is not available; "
                               "use device='cpu' or leave device unset")
        if backend == "auto":
            backend = ("pillow" if device == "cpu" else "dali" if dali_available()
                       else "nvjpeg" if nvjpeg_available() else "pillow")
        elif backend == "dali":
            _import_dali()
        elif backend == "nvjpeg" and (device != "gpu" or not nvjpeg_available()):
            raise RuntimeError(f"{OP}: backend='nvjpeg' needs device='gpu' and torchvision "
                               "(torchvision.io.decode_jpeg on CUDA)")
        return device, backend

    @property
    def dense(self) -> bool:
        """Whether every output image has the same shape (one stacked tensor)."""
        return self.crop is not None or (self.size is not None and not isinstance(self.size, int))

    # -- iteration --------------------------------------------------------
    def iterator(self) -> Iterator[Any]:
        self._saved = _NONE
        if self.backend == "dali":
            self._settle()
        it = self.inputs[0].iterator()  # a worker service forks its workers here
        if self.backend != "dali":
            return map(self.decode_batch, it)
        if self._dali is None and self._next is None:
            # Only now, after any fork: no thread may run DALI or CUDA code while a worker
            # process forks. The build overlaps the input's start-up.
            self._next = self._build_later(self._seen or self._ahead)
        return self._dali_batches(it)

    def _dali_batches(self, it: Iterator[Any]) -> Iterator[Any]:
        """Up to ``DALI_DEPTH`` batches are queued in DALI at once. Until a
        batch is handed on, ``state()`` is the input's state from before it
        was pulled, so a resume re-reads it: exact."""
        source = self.inputs[0]
        jobs: deque[_Job] = deque()
        while True:
            before = source.state()
            batch = next(it, _NONE)
            if batch is _NONE:
                break
            job = _Job(batch, *self._split(batch), before)
            jobs.append(job)
            n = len(job.encoded)
            if n:
                self._seen = max(self._seen, n)
                built = self._built(wait=self._dali is None)
                if built is not None or self._dali is None or n > self._dali_batch:
                    while len(jobs) > 1:  # hand on what the old pipeline holds, then switch
                        yield self._hand_on(jobs)
                    if built is None or built[1] < n:
                        built = self._build(n), n
                    self._dali, self._dali_batch = _DaliQueue(built[0], DALI_DEPTH), built[1]
                self._put(job)
                if self._dali_batch > self._seen and not self._resized and self._next is None:
                    # built ahead for more than the batches are: one sized to them decodes
                    # 6-8% faster (H200); it is built meanwhile and taken when ready
                    self._resized = True
                    self._next = self._build_later(self._seen)
            if len(jobs) >= DALI_DEPTH:
                yield self._hand_on(jobs)
        while jobs:
            yield self._hand_on(jobs)

    def _settle(self) -> None:
        """Before the input starts (and maybe forks workers), let DALI finish
        what it runs: a build in a helper thread, and batches queued by an
        epoch left early, whose outputs are dropped. No thread may be inside
        DALI or CUDA code while a process forks."""
        if self._next is not None:
            from concurrent.futures import wait

            wait([self._next])
        if self._dali is not None:
            self._dali.clear()

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

    def _put(self, job: _Job) -> None:
        arrays = [e if isinstance(e, np.ndarray) else np.frombuffer(e, dtype=np.uint8)
                  for e in job.encoded]
        try:
            self._dali.put(arrays)
        except Exception as exc:
            self._dali = None  # a failed DALI pipeline is not reused
            raise self._bad_sample(job.encoded, exc) from exc

    def _hand_on(self, jobs: deque[_Job]) -> Any:
        """The oldest job, decoded; ``state()`` then re-reads the jobs still queued."""
        import torch

        job = jobs.popleft()
        self._saved = jobs[0].before if jobs else _NONE
        if not job.encoded:
            return job.batch
        try:
            out = self._dali.take()
        except Exception as exc:
            self._dali = None
            raise self._bad_sample(job.encoded, exc) from exc
        # DALI recycles its buffers: take one device-local copy (never via the host).
        if self.dense:
            images: Any = torch.from_dlpack(out.as_tensor()).clone()
        else:
            images = [torch.from_dlpack(out[i]).clone() for i in range(len(out))]
        return self._join(job.batch, job.kind, job.field, images)

    def state(self) -> Any:
        saved = getattr(self, "_saved", _NONE)
        return self.inputs[0].state() if saved is _NONE else saved

    def restore(self, state: Any) -> None:
        self._saved = _NONE
        self.inputs[0].restore(state)

    def reset(self) -> None:
        self._saved = _NONE

    def decode_batch(self, batch: Any) -> Any:
        """One input batch -> the same batch with its images decoded (nvJPEG, Pillow)."""
        kind, field, encoded = self._split(batch)
        if not encoded:
            return batch
        run = self._run_nvjpeg if self.backend == "nvjpeg" else self._run_pillow
        return self._join(batch, kind, field, run(encoded))

    def _split(self, batch: Any) -> tuple[str, Any, list[Any]]:
        """(layout, image field, encoded images) of an input batch."""
        if not isinstance(batch, (list, tuple)):
            raise TypeError(f"{OP}: expects batches (lists of samples); got "
                            f"{type(batch).__name__}. Put .batch(n) before it.")
        if not batch:
            return "empty", None, []
        kind, field = self._layout_of(batch[0])
        if kind == "raw":
            return kind, field, list(batch)
        try:
            return kind, field, [sample[field] for sample in batch]
        except (KeyError, IndexError, TypeError) as exc:
            raise KeyError(f"{OP}: a sample of the batch has no image field {field!r} "
                           f"({exc!r})") from None

    def _join(self, batch: Any, kind: str, field: Any, images: Any) -> Any:
        """The batch with its images replaced by ``images``, other fields as lists."""
        if kind == "raw":
            return images
        if kind == "dict":
            keys = list(batch[0])
            return {k: images if k == field else [s.get(k) for s in batch] for k in keys}
        width = len(batch[0])
        return tuple(images if i == field else [s[i] for s in batch] for i in range(width))

    def _layout_of(self, sample: Any) -> tuple[str, Any]:
        if isinstance(sample, ENCODED):
            return "raw", None
        if isinstance(sample, Mapping):
            if self.field is not None:
                return "dict", self.field
            for key in sample:
                if isinstance(key, str) and key.lower().rsplit(".", 1)[-1] in IMAGE_KEYS:
                    return "dict", key
            raise KeyError(f"{OP}: no image key in sample keys {list(sample)}; pass field=")
        if isinstance(sample, (tuple, list)):
            return "tuple", 0 if self.field is None else self.field
        raise TypeError(f"{OP}: samples must be encoded bytes, dicts or tuples; got "
                        f"{type(sample).__name__}")

    # -- DALI -------------------------------------------------------------
    def _build(self, batch_size: int) -> Any:
        dali = _import_dali()
        fn, types = dali.fn, dali.types
        gpu = self.device == "gpu"
        device_id = None
        if gpu:
            import torch

            device_id = torch.cuda.current_device()

        @dali.pipeline_def(batch_size=batch_size, num_threads=self.num_threads,
                           device_id=device_id, prefetch_queue_depth=DALI_DEPTH,
                           exec_dynamic=True)
        def pipeline() -> Any:
            enc = fn.external_source(name="encoded", dtype=types.UINT8, no_copy=True)
            # fancy upsampling: 4:2:0 chroma as libjpeg-turbo (Pillow) upsamples it
            img = fn.decoders.image(enc, device="mixed" if gpu else "cpu",
                                    output_type=types.RGB, jpeg_fancy_upsampling=True)
            if self.size is not None:
                if isinstance(self.size, int):
                    img = fn.resize(img, resize_shorter=float(self.size),
                                    interp_type=types.INTERP_LINEAR, antialias=True,
                                    subpixel_scale=False)
                else:
                    img = fn.resize(img, resize_y=float(self.size[0]),
                                    resize_x=float(self.size[1]),
                                    interp_type=types.INTERP_LINEAR, antialias=True,
                                    subpixel_scale=False)
            normalize = self.mean is not None
            if self.crop is not None or normalize or self.layout == "CHW":
                kw: dict[str, Any] = {"output_layout": self.layout,
                                      "dtype": types.FLOAT if normalize else types.UINT8}
                if self.crop is not None:
                    kw["crop"] = self.crop
                if normalize:
                    kw["mean"] = [255.0 * m for m in self.mean]
                    kw["std"] = [255.0 * s for s in self.std]
                img = fn.crop_mirror_normalize(img, **kw)
            return img

        pipe = pipeline()
        pipe.build()
        return pipe

    def _bad_sample(self, encoded: list[Any], exc: Exception) -> Exception:
        """The error for a failed batch, naming the first sample that does not decode."""
        for i, data in enumerate(encoded):
            try:
                with open_image(bytes(data)) as im:
                    im.load()
            except Exception as bad:  # noqa: BLE001 - any decoder failure names the sample
                return ValueError(f"{OP}: cannot decode image {i} of the batch "
                                  f"({len(bytes(data))} bytes): {type(bad).__name__}: {bad}")
        return RuntimeError(f"{OP}: DALI failed on a batch of {len(encoded)} images: {exc}")

    # -- torchvision nvJPEG (GPU) -------------------------------------------
    def _run_nvjpeg(self, encoded: list[Any]) -> Any:
        import torch
        import torchvision.io as tio

        jpeg = [i for i, e in enumerate(encoded) if bytes(e[:2]) == b"\xff\xd8"]
        images: list[Any] = [None] * len(encoded)
        if jpeg:
            data = [torch.frombuffer(bytearray(encoded[i]), dtype=torch.uint8) for i in jpeg]
            try:
                decoded = tio.decode_jpeg(data, mode=tio.ImageReadMode.RGB, device="cuda")
            except Exception as exc:
                raise self._bad_sample(encoded, exc) from exc
            for i, img in zip(jpeg, decoded, strict=True):
                images[i] = img
        for i, e in enumerate(encoded):  # PNG and others: Pillow, then upload
            if images[i] is None:
                try:
                    arr = np.array(pillow_decode(bytes(e), "rgb", None, "pil"))
                except Exception as exc:
                    raise ValueError(f"{OP}: cannot decode image {i} of the batch: "
                                     f"{type(exc).__name__}: {exc}") from exc
                images[i] = torch.from_numpy(arr).permute(2, 0, 1).cuda(non_blocking=True)
        out = [self._resize_crop_chw(img) for img in images]
        result: Any = torch.stack(out) if self.dense else out
        if self.mean is not None:
            mean = torch.tensor([255.0 * m for m in self.mean], device="cuda").view(3, 1, 1)
            std = torch.tensor([255.0 * s for s in self.std], device="cuda").view(3, 1, 1)
            result = ((result.float() - mean) / std if not isinstance(result, list)
                      else [(t.float() - mean) / std for t in result])
        if self.layout == "HWC":
            result = (result.permute(0, 2, 3, 1).contiguous() if not isinstance(result, list)
                      else [t.permute(1, 2, 0).contiguous() for t in result])
        return result

    def _resize_crop_chw(self, img: Any) -> Any:
        """Resize (bilinear, antialiased as Pillow) and centre-crop a CHW uint8 tensor."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        if self.size is not None:
            h, w = _resize_shape(img.shape[1], img.shape[2], self.size)
            if (h, w) != tuple(img.shape[1:]):
                img = F.interpolate(img[None].float(), size=(h, w), mode="bilinear",
                                    align_corners=False, antialias=True)[0]
                img = img.round_().clamp_(0, 255).to(torch.uint8)
        if self.crop is not None:
            ch, cw = self.crop
            top = math.floor((img.shape[1] - ch) / 2.0 + 0.5)
            left = math.floor((img.shape[2] - cw) / 2.0 + 0.5)
            img = img[:, top:top + ch, left:left + cw]
        return img.contiguous()

    # -- Pillow -----------------------------------------------------------
    def _run_pillow(self, encoded: list[Any]) -> Any:
        import torch

        out = []
        for i, data in enumerate(encoded):
            try:
                out.append(self._pillow_one(data))
            except Exception as exc:
                raise ValueError(f"{OP}: cannot decode image {i} of the batch: "
                                 f"{type(exc).__name__}: {exc}") from exc
        if self.dense:
            result: Any = torch.from_numpy(np.stack(out))
        else:
            result = [torch.from_numpy(a.copy()) for a in out]
        if self.mean is not None:
            result = (self._normalize(result) if not isinstance(result, list)
                      else [self._normalize(t) for t in result])
        if self.layout == "CHW":
            result = (result.permute(0, 3, 1, 2).contiguous() if not isinstance(result, list)
                      else [t.permute(2, 0, 1).contiguous() for t in result])
        if self.device == "gpu":
            result = (result.cuda(non_blocking=True) if not isinstance(result, list)
                      else [t.cuda(non_blocking=True) for t in result])
        return result

    def _normalize(self, t: Any) -> Any:
        import torch

        mean = torch.tensor([255.0 * m for m in self.mean])
        std = torch.tensor([255.0 * s for s in self.std])
        return (t.float() - mean) / std

    def _pillow_one(self, data: Any) -> np.ndarray:
        from PIL import Image

        im = pillow_decode(bytes(data), "rgb", None, "pil")
        if self.size is not None:
            h, w = _resize_shape(im.height, im.width, self.size)
            im = im.resize((w, h), Image.BILINEAR)
        if self.crop is not None:
            ch, cw = self.crop
            # centre, halves rounded up as DALI's crop does
            top = math.floor((im.height - ch) / 2.0 + 0.5)
            left = math.floor((im.width - cw) / 2.0 + 0.5)
            im = im.crop((left, top, left + cw, top + ch))
        return np.asarray(im)
