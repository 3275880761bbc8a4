"""webdataset: archive members -> one dict per sample, keyed as torchdata's
``webdataset()`` or as the webdataset package keys them.

Consecutive members with the same key (the member path up to the first dot
of its file name) form a sample. ``keys="torchdata"`` (the default, what
torchdata's WebDataset yields): ``{"__key__": "<archive>/<key>", ".jpg":
b"...", ".cls": b"..."}``, field names the rest of the file name from that
dot, case kept. ``keys="webdataset"`` (``webdataset.WebDataset``'s, so its
handlers and code work unchanged): ``{"__key__": key, "__url__": archive,
"jpg": b"...", "cls": b"..."}``, field names lowercased without the dot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..core.streams import MemberPath
from ..runtime.counting import Tally
from ..runtime.node import ResumableNode
from ..runtime.policy import ErrorPolicy
from ..runtime.replay import Replayer, restore_source

_META = re.compile(r"__[^/]*__($|/)")  # webdataset's skip_meta: "__index__", "__x__/..."
_REPLAY_EVERY = 32


def split_key_torchdata(name: str) -> tuple[str | None, str]:
    """``"dir/00001.Seg.png"`` -> ``("dir/00001", ".Seg.png")``; (None, "")
    for a file name without a dot (torchdata's ``pathsplit``)."""
    name = name.replace("\\", "/")
    dot = name.find(".", name.rfind("/") + 1)
    if dot < 0:
        return None, ""
    return name[:dot], name[dot:]


def split_key(name: str) -> tuple[str | None, str]:
    """``"dir/00001.seg.png"`` -> ``("dir/00001", "seg.png")``; (None, "")
    for a name without an extension (webdataset's ``base_plus_ext``)."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot <= slash + 1:
        return None, ""
    return name[:dot], name[dot + 1 :]


class WebDatasetNode(ErrorPolicy, ResumableNode):
    """Input: ``(path, data)`` pairs from load_from_tar/load_from_zip (``__url__``
    is the archive and ``__key__`` the key inside it; for other paths,
    ``__key__`` is the whole path up to the dot and ``__url__`` is None).
    Members without an extension are passed over, and with
    ``keys="webdataset"`` so are webdataset's ``__meta__`` entries. A key repeated within one sample is bad input: the whole
    sample is dropped under ``skip``/``warn``. So is a sample that the node
    reading the archive cut under its policy (a member dropped, or the
    archive cut while this sample was read: ``graph.dropped``); that skip was
    counted there.

    State: a checkpoint of the input at most 32 members back and the number
    of the first member of the sample not yet delivered (the sample being
    filled when the state is read); a resume replays from the checkpoint."""

    def setup(self) -> None:
        super().setup()
        self._pulls = Tally()
        self._out = 0
        self._torchdata = self.params["keys"] == "torchdata"
        self._split = split_key_torchdata if self._torchdata else split_key

    def counted(self) -> tuple[int | None, int | None]:
        return self._pulls.value, self._out

    def iterator(self) -> Iterator[dict[str, Any]]:
        self._replay = replay = Replayer(self.inputs[0], _REPLAY_EVERY)
        self._pulls.follow(replay.pulled)
        replay.resume(self.take_restored(), self.label)
        self._next = replay.seq
        return self._samples()

    def _samples(self) -> Iterator[dict[str, Any]]:
        replay = self._replay
        pull = replay.pull
        dropped = self.graph.dropped
        sample: dict[str, Any] | None = None
        key = url = None
        bad = False
        torchdata, split = self._torchdata, self._split
        while True:
            seq = replay.seq
            try:
                item = pull()
            except StopIteration:
                break
            if type(item) is not tuple or len(item) != 2:
                msg = f"expects (path, data) pairs as load_from_tar() yields, got {item!r:.80}"
                self.reraise(TypeError(msg), f"input element {seq}")
            path, data = item
            if type(path) is MemberPath:
                name, where = path.member, path.archive
            else:
                name, where = path, None
            if name[:2] == "__" and not torchdata and _META.match(name):
                continue
            prefix, field = split(name)
            if prefix is None:
                continue
            if not torchdata:
                field = field.lower()
            if prefix != key or where != url:
                if (
                    sample is not None
                    and not (dropped and self._cut(dropped, url, key, where != url))
                    and not bad
                ):
                    self._next = seq
                    self._out += 1
                    yield sample
                    replay.forget_before(seq)
                key, url, bad = prefix, where, False
                if not torchdata:
                    sample = {"__key__": prefix, "__url__": where}
                else:
                    sample = {"__key__": prefix if where is None else f"{where}/{prefix}"}
            elif bad:
                continue
            if field in sample:
                msg = f"field {field!r} appears twice in sample {prefix!r}"
                self.fail(ValueError(msg), f"{where or path!r} member {name!r}")
                bad = True
                continue
            sample[field] = data
        self._next = replay.seq
        if sample is not None and not (dropped and self._cut(dropped, url, key, True)) and not bad:
            self._out += 1
            yield sample

    def _cut(
        self, dropped: dict[str, list[str | None]], url: str | None, key: str | None, last: bool
    ) -> bool:
        """Did the node reading archive ``url`` drop a member of sample ``key``
        under its error policy? ``last``: the archive's last sample, which a
        damage that hit no member's data (a header, a cut stream) may have cut
        too. The archive's notes are used up with its last sample."""
        members = dropped.pop(url, None) if last else dropped.get(url)
        if not members:
            return False
        return any(key == self._split(name)[0] if name is not None else last for name in members)

    def live_state(self) -> dict:
        return {"next": self._next, "ckpt": self._replay.checkpoint(self._next)}

    def restore(self, state: dict | None) -> None:
        super().restore(state)
        restore_source(self.inputs[0], state and state["ckpt"])
