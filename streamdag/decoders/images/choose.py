"""Which device and backend a ``decode_images`` node runs. ``device=None``
is "gpu" when torch sees CUDA, else "cpu"; on the GPU, ``device_id=None`` is
the current CUDA device of the thread that starts the node (a DDP rank's,
after ``torch.cuda.set_device``), fixed then: the DALI pipeline is built in a
helper thread, whose current device is always 0. ``backend="auto"`` picks Pillow
on the CPU (DALI's CPU decoder only when asked for by name), and on the GPU
DALI if it imports, else nvJPEG if torchvision imports, else Pillow."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .backend import OP, ImageBackend
from .transform import Transform

#: backend name -> (module of this package, class)
MODULES = {
    "dali": ("dali", "DaliBackend"),
    "nvjpeg": ("nvjpeg", "NvjpegBackend"),
    "pillow": ("pillow", "PillowBackend"),
}


def auto_backend(device: str, *, dali: bool, nvjpeg: bool) -> str:
    """What ``backend="auto"`` picks on ``device`` ("gpu" or "cpu"), given
    whether DALI and torchvision are installed."""
    if device == "cpu":
        return "pillow"
    return "dali" if dali else "nvjpeg" if nvjpeg else "pillow"


def choose(backend: str, device: str | None, device_id: int | None) -> tuple[str, str, int | None]:
    """(device, backend name, CUDA device index or None on the CPU) for the
    op's ``backend``, ``device`` and ``device_id`` params."""
    import torch

    cuda = torch.cuda.is_available()
    if device is None:
        device = "gpu" if cuda else "cpu"
    if device == "gpu" and not cuda:
        raise RuntimeError(
            f"{OP}: device='gpu' but torch.cuda is not available; "
            "use device='cpu' or leave device unset"
        )
    if device == "cpu":
        if device_id is not None:
            raise RuntimeError(f"{OP}: device_id={device_id} needs device='gpu' (it is 'cpu')")
    elif device_id is None:
        device_id = torch.cuda.current_device()
    elif device_id >= torch.cuda.device_count():
        raise RuntimeError(
            f"{OP}: device_id={device_id} but torch sees {torch.cuda.device_count()} CUDA device(s)"
        )
    if backend == "auto":
        from .dali import dali_available
        from .nvjpeg import nvjpeg_available

        backend = auto_backend(
            device,
            dali=device == "gpu" and dali_available(),
            nvjpeg=device == "gpu" and nvjpeg_available(),
        )
    return device, backend, device_id


def open_backend(
    name: str, transform: Transform, device: str, num_threads: int, device_id: int | None
) -> ImageBackend:
    """A new backend ``name`` (its module is imported only now)."""
    module, cls = MODULES[name]
    backend: Any = getattr(import_module(f"{__package__}.{module}"), cls)
    return backend(transform, device, num_threads, device_id)
