"""How a Ray actor's messages reach the trainer: pickled by the actor with
large tensors and arrays out of band, so that Ray copies their bytes into the
object store once and the trainer builds them on it without a copy.

Ray pickles numpy arrays out of band by itself, but torch tensors in band:
the actor copied each batch into the pickle, Ray copied the pickle into the
store, and torch copied it again on the trainer (8 ms of the trainer's CPU
per W2 batch of 9.6 MB, against 0.6 ms for worker processes). Here a CPU
tensor of at least ``SHM_MIN_BYTES`` travels as a numpy view of its bytes.

On the trainer the tensor views the chunk's object in the object store. Ray
marks that memory read-only for numpy, which torch cannot express; the
object is read by this trainer alone, once, so writing into the batch (an
in-place normalisation) changes nothing anyone else reads. Arrays stay
read-only views, as Ray gives them."""

from __future__ import annotations

import io
import pickle
import sys
import warnings
from typing import Any

from .transport import SHM_MIN_BYTES, plain_cpu_tensor, tensor_bytes

#: (pickled messages, their out-of-band buffers as uint8 arrays)
Packed = tuple[bytes, list[Any]]


def pack(message: tuple) -> Packed:
    """``message`` pickled, tensors and arrays of ``SHM_MIN_BYTES`` or more
    out of band. In the worker loop's thread, as a worker process encodes:
    an element that cannot be pickled ends the pass with an error naming it."""
    import numpy as np

    buffers: list[pickle.PickleBuffer] = []
    out = io.BytesIO()
    _Pickler(out, buffers.append).dump(message)
    return out.getvalue(), [np.frombuffer(b.raw(), dtype=np.uint8) for b in buffers]


def unpack(packed: Packed) -> tuple:
    data, buffers = packed
    return pickle.loads(data, buffers=buffers)


class _Pickler(pickle.Pickler):
    """Protocol 5: numpy arrays hand their buffers to ``buffer_callback``
    themselves; large CPU tensors become an array of their bytes."""

    def __init__(self, file: io.BytesIO, buffer_callback: Any) -> None:
        super().__init__(file, protocol=5, buffer_callback=buffer_callback)
        torch = sys.modules.get("torch")
        self._tensor = torch.Tensor if torch is not None else None

    def reducer_override(self, obj: Any) -> Any:
        if (
            type(obj) is not self._tensor
            or not plain_cpu_tensor(obj)
            or obj.numel() * obj.element_size() < SHM_MIN_BYTES
        ):
            return NotImplemented
        return (_tensor_of, (tensor_bytes(obj), obj.dtype, tuple(obj.shape)))


def _tensor_of(data: Any, dtype: Any, shape: tuple[int, ...]) -> Any:
    import torch

    with warnings.catch_warnings():  # read-only for numpy: see the module's docstring
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(data)
    return tensor.view(dtype).view(shape)
