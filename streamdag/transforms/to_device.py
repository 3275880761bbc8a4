"""to_device(device): a prefetch thread that moves each element's tensors to
``device`` ahead of the consumer. For CUDA the thread pins host tensors that
are not pinned yet and copies them on a side stream of its own; the consumer
makes its current stream wait for that copy (an event: the host never
blocks) and records the tensors as used on it, so the caching allocator does
not hand their memory to the side stream while the loop's kernels still read
it. Its spec places it in the main process, which owns the device."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .prefetch import PrefetchNode


class ToDeviceNode(PrefetchNode):
    """Tuples, named tuples, lists and dicts are walked (torch's pytree);
    other values pass unchanged. State and resume are prefetch's."""

    def setup(self) -> None:
        super().setup()
        import torch
        from torch.utils import _pytree

        self._torch, self._tree = torch, _pytree
        self._device = device = torch.device(self.params["device"])
        self._cuda = device.type == "cuda"
        if self._cuda and not torch.cuda.is_available():
            msg = (
                f"{self.label}: to_device({self.params['device']!r}) needs CUDA, which is "
                "not available on this machine; move batches to 'cpu' or drop to_device"
            )
            raise RuntimeError(msg)
        if self._cuda and device.index is None:  # "cuda": the loop's current device
            self._device = torch.device("cuda", torch.cuda.current_device())

    def iterator(self) -> Iterator[Any]:
        it = super().iterator()
        return map(self._arrive, it) if self._cuda else it

    def _thread_pull(self) -> Callable[[], Any]:
        pull, torch, tree, device = self._replay.pull, self._torch, self._tree, self._device
        if not self._cuda:
            return lambda: tree.tree_map_only(torch.Tensor, lambda t: t.to(device), pull())
        torch.cuda.set_device(device)
        stream = torch.cuda.Stream(device)

        def copy(t: Any) -> Any:
            if not t.is_cuda and not t.is_pinned():
                t = t.pin_memory()
            return t.to(device, non_blocking=True)

        def moved() -> tuple[Any, Any]:
            item = pull()
            with torch.cuda.stream(stream):
                item = tree.tree_map_only(torch.Tensor, copy, item)
                done = torch.cuda.Event()
                done.record(stream)
            return item, done

        return moved

    def _arrive(self, moved: tuple[Any, Any]) -> Any:
        item, done = moved
        current = self._torch.cuda.current_stream(self._device)
        current.wait_event(done)
        for leaf in self._tree.tree_leaves(item):
            if isinstance(leaf, self._torch.Tensor) and leaf.is_cuda:
                leaf.record_stream(current)
        return item
