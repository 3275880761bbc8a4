"""Mersenne-Twister states as compact plain data, for resume states.

Python's ``random.Random``, numpy's legacy ``RandomState`` and torch's CPU
generator each hold 2.5-5 KB of state. As lists of 625 ints or hex text they
made most of a worker's resume state; here they are their raw little-endian
words as base64 text: a str, which JSON, msgpack, pickle, ``torch.save``
(``weights_only``) and ``torch.distributed.checkpoint`` all hold as it is
(bytes would not go through JSON, a documented state format). The older
forms (int lists, hex text) still decode, so states saved by earlier
releases restore."""

from __future__ import annotations

import base64
import struct

#: random.Random's words: 624 of the twister and the position in them
_MT_WORDS = struct.Struct("<625I")


def pack_words(data: bytes) -> str:
    """Raw state bytes as text that every state format holds."""
    return base64.b64encode(data).decode("ascii")


def unpack_words(text: str) -> bytes:
    return base64.b64decode(text)


def encode_random_state(state: tuple) -> list:
    """``random.Random.getstate()`` as ``[version, words, gauss]``: 3.3 KB of
    text instead of a 625-int list (3.1 KB in msgpack, 7.3 KB in JSON)."""
    version, internal, gauss = state
    return [version, pack_words(_MT_WORDS.pack(*internal)), gauss]


def decode_random_state(data: list | tuple) -> tuple:
    """What ``random.Random.setstate`` takes, from ``encode_random_state``'s
    form or the int list earlier releases saved."""
    version, internal, gauss = data
    if isinstance(internal, str):
        internal = _MT_WORDS.unpack(unpack_words(internal))
    return version, tuple(internal), gauss
