"""Moving chunks of elements from a worker process to the main process.

A message is pickled once in the worker. Tensors and numpy arrays of at least
``SHM_MIN_BYTES`` are copied once into a shared-memory segment (an anonymous
``memfd``: no name in /dev/shm, so nothing can leak when a process dies) that
the worker reuses once the main process is done with it (``segments.py``); a
new segment's file descriptor travels over the same Unix socket as the bytes
(SCM_RIGHTS). The main process builds the tensor or array on its mapping of
the segment without copying. Smaller arrays and tensors are pickled inline:
for them a copy is cheaper than a segment.

Wire format: ``send_bytes(<u32 fd count> + pickle((retired ids, message)))``
then the new descriptors in groups of at most ``_FDS_PER_MSG``."""

from __future__ import annotations

import io
import os
import pickle
import socket
import struct
import sys
import threading
from multiprocessing.connection import Connection
from multiprocessing.reduction import recvfds, sendfds
from typing import Any

from .segments import SegmentPool, SegmentViews

SHM_MIN_BYTES = 64 * 1024
_FDS_PER_MSG = 250  # below the kernel's SCM_MAX_FD (253)
_HEADER = struct.Struct("<I")
_incoming = threading.local()


class Encoded:
    """A pickled message and the descriptors of the new segments it uses
    (owned by this object: closed once sent). ``shared``: the bytes of its
    tensors and arrays copied into segments."""

    __slots__ = ("data", "fds", "shared")

    def __init__(self, data: memoryview, fds: list[int], shared: int = 0) -> None:
        self.data = data
        self.fds = fds
        self.shared = shared

    def close(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            os.close(fd)


def encode(obj: Any, pool: SegmentPool) -> Encoded:
    """Pickle ``obj``, large arrays and tensors into segments of ``pool``."""
    buf = io.BytesIO()
    buf.write(_HEADER.pack(0))
    pickler = _Pickler(buf, pool)
    try:
        pickler.dump((pool.retired, obj))
    except BaseException:  # the main process never learns of the segments it made
        pool.give_back(pickler.reused, unmap=pickler.made)
        Encoded(memoryview(b""), pickler.fds).close()
        raise
    pool.retired = []  # named in this message
    data = buf.getbuffer()
    _HEADER.pack_into(data, 0, len(pickler.fds))
    return Encoded(data, pickler.fds, pickler.shared)


def decode(data: memoryview | bytes, fds: list[int], views: SegmentViews) -> Any:
    """Unpickle a message: new segments are mapped, retired ones forgotten,
    and the descriptors always closed."""
    _incoming.fds, _incoming.views = fds, views
    try:
        retired, obj = pickle.loads(memoryview(data)[_HEADER.size :])
    finally:
        _incoming.fds = _incoming.views = None
        for fd in fds:
            os.close(fd)
    views.forget(retired)
    return obj


class Deferred:
    """A chunk's elements pickled on their own, unpickled when the loop takes
    the chunk. In order, chunks that arrive early wait for their turn: as
    Python objects they would survive the collector's passes and be traversed
    again at each one (~1.1 ms per batch of 512 token lists, against ~0.3 ms
    taken at once; docs/reading-services.md), as bytes they cost it nothing."""

    __slots__ = ("data", "count")

    def __init__(self, data: bytes, count: int) -> None:
        self.data, self.count = data, count

    def __reduce__(self) -> tuple:
        return (Deferred, (self.data, self.count))

    def __len__(self) -> int:
        """How many elements it holds, as the list it stands for."""
        return self.count

    @property
    def nbytes(self) -> int:
        """Its pickled size: what it takes in a message or an object store."""
        return len(self.data)

    def load(self) -> Any:
        return pickle.loads(self.data)


def defer(items: list[Any]) -> Deferred | None:
    """``items`` pickled alone, or None when a tensor or array among them
    needs shared memory (its segment is then taken with the message's)."""
    buf = io.BytesIO()
    try:
        _Pickler(buf, None).dump(items)
    except _SegmentNeeded:
        return None
    return Deferred(buf.getvalue(), len(items))


class _SegmentNeeded(Exception):
    """Raised by a pickler without a segment pool at the first large tensor or array."""


def send(conn: Connection, sock: socket.socket, message: Encoded) -> None:
    """Write one encoded message (bytes, then descriptors) and close its fds."""
    try:
        conn.send_bytes(message.data)
        fds = message.fds
        for start in range(0, len(fds), _FDS_PER_MSG):
            sendfds(sock, fds[start : start + _FDS_PER_MSG])
    finally:
        message.close()


def receive(conn: Connection, sock: socket.socket, views: SegmentViews) -> Any:
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
    return decode(data, fds, views)


def socket_of(conn: Connection) -> socket.socket:
    """A socket object on a duplicate of ``conn``'s descriptor, for SCM_RIGHTS."""
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(conn.fileno()))


class _Pickler(pickle.Pickler):
    """Pickles large tensors and arrays into shared segments. ``reducer_override``
    is not called for ints, strings, lists, tuples or dicts, so plain Python
    data pickles at full C speed."""

    def __init__(self, file: io.BytesIO, pool: SegmentPool | None) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.pool = pool
        self.fds: list[int] = []
        self.reused: list[int] = []  # ids of free segments taken
        self.made: list[int] = []  # ids of new segments, whose descriptors are in fds
        self.shared = 0  # bytes copied into segments
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

    def _segment(self, nbytes: int) -> tuple[Any, tuple[int, int, int, int]]:
        """A segment for ``nbytes`` and how the main process finds it:
        (segment id, index of its descriptor in this message or -1, capacity, nbytes)."""
        if self.pool is None:
            raise _SegmentNeeded
        segment, fd = self.pool.take(nbytes)
        self.shared += nbytes
        index = -1
        if fd is None:
            self.reused.append(segment.id)
        else:
            self.made.append(segment.id)
            self.fds.append(fd)
            index = len(self.fds) - 1
        return segment.mapping, (segment.id, index, segment.capacity, nbytes)

    def _reduce_array(self, array: Any) -> Any:
        if array.dtype.hasobject or array.nbytes < SHM_MIN_BYTES:
            return NotImplemented
        mapping, where = self._segment(array.nbytes)
        view = self._np.frombuffer(mapping, dtype=array.dtype, count=array.size)
        self._np.copyto(view.reshape(array.shape), array)
        del view
        return (_rebuild_array, (where, array.dtype, array.shape))

    def _reduce_tensor(self, tensor: Any) -> Any:
        torch = sys.modules["torch"]
        if not plain_cpu_tensor(tensor):
            return NotImplemented
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes < SHM_MIN_BYTES:
            data = tensor_bytes(tensor).tobytes()
            return (_rebuild_small_tensor, (data, tensor.dtype, tuple(tensor.shape)))
        mapping, where = self._segment(nbytes)
        view = torch.frombuffer(mapping, dtype=tensor.dtype, count=tensor.numel())
        view.view(tensor.shape).copy_(tensor.detach())
        del view
        return (_rebuild_tensor, (where, tensor.dtype, tuple(tensor.shape)))


def plain_cpu_tensor(tensor: Any) -> bool:
    """Whether a tensor is plain data in CPU memory: its bytes, dtype and
    shape are all there is to send (no autograd, quantization or sparsity)."""
    import torch

    return (
        tensor.device.type == "cpu"
        and not tensor.requires_grad
        and not tensor.is_quantized
        and tensor.layout == torch.strided
    )


def tensor_bytes(tensor: Any) -> Any:
    """A plain CPU tensor's bytes as a flat uint8 numpy array (a view where
    it is contiguous): any dtype, bfloat16 included."""
    import torch

    return tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy()


def _bytes_of(where: tuple[int, int, int, int]) -> Any:
    """A uint8 array on the segment a message refers to (mapped first if new)."""
    segment_id, index, capacity, nbytes = where
    views = _incoming.views
    if index >= 0:
        views.add(segment_id, _incoming.fds[index], capacity)
    return views.array(segment_id, nbytes)


def _rebuild_array(where: tuple[int, int, int, int], dtype: Any, shape: tuple[int, ...]) -> Any:
    return _bytes_of(where).view(dtype).reshape(shape)


def _rebuild_tensor(where: tuple[int, int, int, int], dtype: Any, shape: tuple[int, ...]) -> Any:
    import torch

    return torch.from_numpy(_bytes_of(where)).view(dtype).view(shape)


def _rebuild_small_tensor(data: bytes, dtype: Any, shape: tuple[int, ...]) -> Any:
    import torch

    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape)
