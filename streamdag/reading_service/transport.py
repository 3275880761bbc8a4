"""Moving chunks of elements from a worker process to the main process.

A message is pickled once in the worker. Tensors and numpy arrays of at least
``SHM_MIN_BYTES`` are copied once into an anonymous shared-memory file
(``memfd_create``: no name in /dev/shm, so nothing can leak when a process
dies) and only the file descriptor travels, over the same Unix socket as the
bytes (SCM_RIGHTS). The main process maps it and builds the tensor or array on
the mapping without copying. Smaller arrays and tensors are pickled inline:
for them a copy is cheaper than passing a descriptor.

Wire format: ``send_bytes(<u32 fd count> + pickle)`` then the descriptors in
groups of at most ``_FDS_PER_MSG``."""

from __future__ import annotations

import io
import mmap
import os
import pickle
import socket
import struct
import sys
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import recvfds, sendfds
from typing import Any

SHM_MIN_BYTES = 64 * 1024
_FDS_PER_MSG = 250  # below the kernel's SCM_MAX_FD (253)
_HEADER = struct.Struct("<I")
_incoming = threading.local()


class Encoded:
    """A pickled message and the shared-memory descriptors it refers to (owned
    by this object: closed once sent)."""

    __slots__ = ("data", "fds")

    def __init__(self, data: memoryview, fds: list[int]) -> None:
        self.data = data
        self.fds = fds

    def close(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            os.close(fd)


def encode(obj: Any) -> Encoded:
    buf = io.BytesIO()
    buf.write(_HEADER.pack(0))
    pickler = _Pickler(buf)
    try:
        pickler.dump(obj)
    except BaseException:
        Encoded(memoryview(b""), pickler.fds).close()
        raise
    data = buf.getbuffer()
    _HEADER.pack_into(data, 0, len(pickler.fds))
    return Encoded(data, pickler.fds)


def decode(data: memoryview | bytes, fds: list[int]) -> Any:
    """Unpickle a message; its descriptors are mapped where referenced and
    always closed."""
    _incoming.fds = fds
    try:
        return pickle.loads(memoryview(data)[_HEADER.size:])
    finally:
        _incoming.fds = None
        for fd in fds:
            os.close(fd)


def send(conn: Connection, sock: socket.socket, message: Encoded) -> None:
    """Write one encoded message (bytes, then descriptors) and close its fds."""
    try:
        conn.send_bytes(message.data)
        fds = message.fds
        for start in range(0, len(fds), _FDS_PER_MSG):
            sendfds(sock, fds[start:start + _FDS_PER_MSG])
    finally:
        message.close()


def receive(conn: Connection, sock: socket.socket) -> Any:
    """Read and decode one message written by ``send``."""
    data = conn.recv_bytes()
    count = _HEADER.unpack_from(data)[0]
    fds: list[int] = []
    try:
        while len(fds) < count:
            fds.extend(recvfds(sock, min(_FDS_PER_MSG, count - len(fds))))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return decode(data, fds)


def socket_of(conn: Connection) -> socket.socket:
    """A socket object on a duplicate of ``conn``'s descriptor, for SCM_RIGHTS."""
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(conn.fileno()))


class _Pickler(pickle.Pickler):
    """Pickles large tensors and arrays into shared memory. ``reducer_override``
    is not called for ints, strings, lists, tuples or dicts, so plain Python
    data pickles at full C speed."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.fds: list[int] = []
        self._np = sys.modules.get("numpy")
        torch = sys.modules.get("torch")
        self._tensor = torch.Tensor if torch is not None else None

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if self._np is not None and kind is self._np.ndarray:
            return self._reduce_array(obj)
        if kind is self._tensor:
            return self._reduce_tensor(obj)
        return NotImplemented

    def _shared(self, nbytes: int) -> tuple[int, mmap.mmap]:
        fd = os.memfd_create("streamdag", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, nbytes)
            mapping = mmap.mmap(fd, nbytes)
        except BaseException:
            os.close(fd)
            raise
        self.fds.append(fd)
        return len(self.fds) - 1, mapping

    def _reduce_array(self, array: Any) -> Any:
        if array.dtype.hasobject or array.nbytes < SHM_MIN_BYTES:
            return NotImplemented
        index, mapping = self._shared(array.nbytes)
        view = self._np.frombuffer(mapping, dtype=array.dtype, count=array.size)
        self._np.copyto(view.reshape(array.shape), array)
        del view
        mapping.close()
        return (_rebuild_array, (index, array.nbytes, array.dtype, array.shape))

    def _reduce_tensor(self, tensor: Any) -> Any:
        torch = sys.modules["torch"]
        if (tensor.device.type != "cpu" or tensor.requires_grad or tensor.is_quantized
                or tensor.layout != torch.strided):
            return NotImplemented
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes < SHM_MIN_BYTES:
            flat = tensor.detach().contiguous().reshape(-1)
            data = flat.view(torch.uint8).numpy().tobytes()
            return (_rebuild_small_tensor, (data, tensor.dtype, tuple(tensor.shape)))
        index, mapping = self._shared(nbytes)
        view = torch.frombuffer(mapping, dtype=tensor.dtype, count=tensor.numel())
        view.view(tensor.shape).copy_(tensor.detach())
        del view
        mapping.close()
        return (_rebuild_tensor, (index, nbytes, tensor.dtype, tuple(tensor.shape)))


def _mapping(index: int, nbytes: int) -> mmap.mmap:
    """Map descriptor ``index`` of the message being decoded."""
    return mmap.mmap(_incoming.fds[index], nbytes)


def _rebuild_array(index: int, nbytes: int, dtype: Any, shape: tuple[int, ...]) -> Any:
    import numpy as np

    return np.frombuffer(_mapping(index, nbytes), dtype=dtype).reshape(shape)


def _rebuild_tensor(index: int, nbytes: int, dtype: Any, shape: tuple[int, ...]) -> Any:
    import torch

    return torch.frombuffer(_mapping(index, nbytes), dtype=dtype).view(shape)


def _rebuild_small_tensor(data: bytes, dtype: Any, shape: tuple[int, ...]) -> Any:
    import torch

    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape)
