"""Image decoding (numpy HWC / torch CHW, modes, draft-mode shrinking) and
decode()'s routing by extension: user handlers, by_ext, built-ins, npy
without pickles, pth only with weights_only, corrupt images per policy."""

from __future__ import annotations

import io
import pickle
import warnings

import msgpack
import numpy as np
import pytest
import torch
from PIL import Image

import streamdag as sd
from streamdag.decoders import decode_image, image_handler
from streamdag.errors import NodeError, ParamError
from streamdag.testing import run_epoch
from tests.support.readers import jpeg_bytes, run_with_stats, write_tar


@pytest.mark.parametrize(("mode", "channels"), [("rgb", 3), ("rgba", 4), ("l", 1)])
def test_decode_image_layouts(mode, channels):
    data = jpeg_bytes(40, 30, fmt="PNG")
    array = decode_image(data, mode)
    assert array.dtype == np.uint8 and array.shape == (30, 40, channels)
    assert array.flags.writeable
    tensor = decode_image(data, mode, to="torch")
    assert tensor.dtype == torch.uint8 and tensor.shape == (channels, 30, 40)
    assert tensor.is_contiguous()
    assert np.array_equal(tensor.permute(1, 2, 0).numpy(), array)
    assert decode_image(data, mode, to="pil").size == (40, 30)


def test_png_pixels_are_exact():
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    assert np.array_equal(decode_image(out.getvalue()), pixels)


def test_target_size_uses_jpeg_draft_when_shrinking(monkeypatch):
    """An 800x600 JPEG asked for at 150x100 is decoded at 1/4 scale (200x150)
    by libjpeg, then resized."""
    from PIL import JpegImagePlugin

    original = JpegImagePlugin.JpegImageFile.draft
    seen = []

    def spy(self, mode, size):
        result = original(self, mode, size)
        seen.append((size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    out = decode_image(jpeg_bytes(800, 600), size=(150, 100))
    assert out.shape == (100, 150, 3)
    assert seen == [((150, 100), (200, 150))]
    decode_image(jpeg_bytes(800, 600))
    assert len(seen) == 1  # no target size: no draft


def test_image_handler_passes_other_keys():
    handler = image_handler("l", size=8, to="torch")
    assert handler("seg.png", jpeg_bytes(fmt="PNG")).shape == (1, 8, 8)
    assert handler("txt", b"hello") is None


def test_a_graph_with_an_image_handler_saves_and_loads(tmp_path):
    """The handler is a partial of a module function: no closure to refuse."""
    dp = sd.IterableWrapper([("a.jpg", jpeg_bytes(32, 24))]).decode(image_handler(size=(16, 8)))
    sd.save(dp, tmp_path / "g.sdag")
    ((path, image),) = list(sd.load(tmp_path / "g.sdag"))
    assert path == "a.jpg" and image.shape == (8, 16, 3)


def sample_with_every_type():
    arr = np.arange(6, dtype=np.int16).reshape(2, 3)
    npy = io.BytesIO()
    np.save(npy, arr)
    pth = io.BytesIO()
    torch.save({"w": torch.ones(2)}, pth)
    return {
        "__key__": "k",
        "__url__": "u",
        "jpg": jpeg_bytes(32, 16),
        "png": jpeg_bytes(8, 8, fmt="PNG"),
        "webp": jpeg_bytes(8, 8, fmt="WEBP"),
        "bmp": jpeg_bytes(8, 8, fmt="BMP"),
        "txt": "héllo".encode(),
        "cls": b" 7\n",
        "index": b"3",
        "json": b'{"a": [1, 2]}',
        "npy": npy.getvalue(),
        "msgpack": msgpack.packb({"m": 1}),
        "pth": pth.getvalue(),
        "bin": b"\x00raw",
    }


def test_builtin_routing_by_extension():
    (out,) = list(sd.IterableWrapper([sample_with_every_type()]).decode(image="torch"))
    assert out["__key__"] == "k" and out["__url__"] == "u"
    assert out["jpg"].shape == (3, 16, 32) and out["png"].shape == (3, 8, 8)
    assert out["webp"].shape == (3, 8, 8) and out["bmp"].shape == (3, 8, 8)
    assert out["txt"] == "héllo" and out["cls"] == 7 and out["index"] == 3
    assert out["json"] == {"a": [1, 2]} and out["msgpack"] == {"m": 1}
    assert out["npy"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert torch.equal(out["pth"]["w"], torch.ones(2))
    assert out["bin"] == b"\x00raw"


def test_handler_order_by_ext_then_handlers_then_builtins():
    def shout(key, data):
        return data.decode().upper() if key == "txt" else None

    def never(key, data):
        return None

    sample = {"__key__": "k", "txt": b"abc", "cls": b"5", "seg.png": b"raw", "jpg": b"j"}
    dp = sd.IterableWrapper([sample]).decode(
        never, shout, by_ext={"png": len, "cls": bytes.hex}, image="bytes"
    )
    (out,) = list(dp)
    assert out == {"__key__": "k", "txt": "ABC", "cls": "35", "seg.png": 3, "jpg": b"j"}


def test_decode_path_data_pairs_and_streams(tmp_path):
    (tmp_path / "a.cls").write_bytes(b"4")
    (tmp_path / "b.json").write_bytes(b"[1]")
    (tmp_path / "c.PNG").write_bytes(jpeg_bytes(4, 4, fmt="PNG"))
    out = list(sd.FileLister(str(tmp_path)).open_files(mode="b").decode(image="torch"))
    assert out[0] == (str(tmp_path / "a.cls"), 4) and out[1][1] == [1]
    assert out[2][1].shape == (3, 4, 4)


def test_npy_never_unpickles():
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    sample = {"__key__": "k", "npy": buf.getvalue()}
    with pytest.raises(NodeError, match=r"field 'npy'.*allow_pickle"):
        run_epoch(sd.IterableWrapper([sample]).decode())


def test_pth_refused_unless_weights_only():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    torch.save({"x": Evil()}, buf)
    sample = {"__key__": "k", "pth": buf.getvalue(), "pyd": pickle.dumps([1])}
    with pytest.raises(NodeError, match=r"field 'pth'.*UnpicklingError"):
        run_epoch(sd.IterableWrapper([sample]).decode())
    (out,) = list(sd.IterableWrapper([sample]).decode(defaults=True, by_ext={"pth": len}))
    assert out["pyd"] == pickle.dumps([1])  # pickles stay bytes


def corrupt_jpeg_shard(tmp_path):
    good = jpeg_bytes(16, 16)
    truncated = good[: len(good) // 3]
    return write_tar(
        tmp_path / "img.tar",
        [
            ("0.jpg", good),
            ("0.cls", b"0"),
            ("1.jpg", b"\xff\xd8 definitely not a jpeg"),
            ("1.cls", b"1"),
            ("2.jpg", truncated),
            ("2.cls", b"2"),
            ("3.jpg", good),
            ("3.cls", b"3"),
        ],
    )


@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_corrupt_jpegs_drop_their_samples(tmp_path, policy):
    dp = (
        sd.IterableWrapper([str(corrupt_jpeg_shard(tmp_path))])
        .open_files(mode="b")
        .load_from_tar()
        .webdataset(keys="webdataset")
        .decode(on_error=policy)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = run_with_stats(dp)
    assert [s["cls"] for s in out] == [0, 3]
    assert stats["decode"]["skipped"] == 2
    assert len([w for w in caught if issubclass(w.category, sd.SkippedInputWarning)]) == (
        2 if policy == "warn" else 0
    )


def test_corrupt_jpeg_raises_naming_sample_archive_and_field(tmp_path):
    shard = corrupt_jpeg_shard(tmp_path)
    dp = (
        sd.IterableWrapper([str(shard)])
        .open_files(mode="b")
        .load_from_tar()
        .webdataset(keys="webdataset")
        .decode(name="dec")
    )
    with pytest.raises(
        NodeError,
        match=r"decode node 'dec' failed on sample '1' of "
        r"'.*img\.tar', field 'jpg'",
    ):
        run_epoch(dp)


def test_bad_decode_params():
    dp = sd.IterableWrapper([])
    with pytest.raises(ParamError, match="decode: image"):
        dp.decode(image="jpeg")
    with pytest.raises(ParamError, match="decode: size"):
        dp.decode(size=(0, 3))
    with pytest.raises(ParamError, match="decode: by_ext"):
        dp.decode(by_ext={"png": 3})
    with pytest.raises(ParamError, match="decode: on_error"):
        dp.decode(on_error="ignore")
