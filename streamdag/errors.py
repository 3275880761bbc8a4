"""Exception types. Every error a user sees names the node (op and name) and,
where known, the file and sample it was working on."""

from __future__ import annotations


class StreamdagError(Exception):
    """Base class of all streamdag errors."""


class ParamError(StreamdagError, ValueError):
    """A node was built with invalid parameters (raised at construction)."""


class GraphFormatError(StreamdagError, ValueError):
    """A saved graph is malformed, unsafe or from an unsupported version."""


class NodeError(StreamdagError, RuntimeError):
    """A node failed while the pipeline ran; ``__cause__`` holds the original
    exception with its traceback. ``source`` says which element it failed on
    (a sample's key and archive, a file's path, a short repr), where known."""

    def __init__(
        self,
        message: str,
        *,
        op: str = "",
        name: str | None = None,
        node_id: str = "",
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.op = op
        self.name = name
        self.node_id = node_id
        self.source = source

    def __reduce__(self):  # keep the node fields when sent from a worker process
        return (_rebuild_node_error, (str(self), self.op, self.name, self.node_id, self.source))


def _rebuild_node_error(
    message: str, op: str, name: str | None, node_id: str, source: str | None = None
) -> NodeError:
    return NodeError(message, op=op, name=name, node_id=node_id, source=source)


class BufferOverflowError(StreamdagError, BufferError):
    """An output of a fork or demux fell further behind the others than the
    node's ``buffer_size`` allows (a ``BufferError``, as torchdata raises)."""


class ResumeError(StreamdagError, RuntimeError):
    """A saved loader state does not fit the pipeline it is loaded into."""


class SkippedInputWarning(UserWarning):
    """Issued for each bad input dropped by a node with ``on_error="warn"``
    (at most a few per node per epoch, then a summary: ``skip_warnings.py``)."""


class ShardingWarning(UserWarning):
    """A pipeline run by several workers has no ``sharding_filter`` on some
    path from a source, so every worker yields those elements."""
