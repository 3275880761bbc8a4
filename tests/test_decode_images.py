"""decode_images: what backend="auto" picks, and on_error on corrupt images
(Pillow, and DALI's CPU backend where DALI is installed)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import streamdag as sd
from streamdag.decoders.images.choose import auto_backend, choose
from streamdag.errors import NodeError, ParamError
from streamdag.testing import assert_resumes
from tests.support.readers import run_with_stats
from tests.test_dali import (
    TOLERANCE,
    _as_444,
    _image,
    mad,
    needs_dali,
    needs_gpu,
    run,
)

DALI = [pytest.mark.dali, needs_dali]
GPU = [pytest.mark.gpu, needs_gpu]
#: (backend, device): the CPU ones run everywhere DALI is installed
ON_CPU = [("pillow", "cpu"), pytest.param("dali", "cpu", marks=DALI)]
EVERYWHERE = [
    *ON_CPU,
    pytest.param("dali", "gpu", marks=DALI + GPU),
    pytest.param("nvjpeg", "gpu", marks=GPU),
]


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    return [_image(60 + 7 * i, 80 - 5 * i, 30 + i) for i in range(8)]


def corrupt(jpeg: bytes) -> bytes:
    return jpeg[:60] + b"\xff" * 50


def samples(jpegs: list[bytes], bad: set[int]) -> list[dict[str, Any]]:
    return [
        {"__key__": f"s{i}", "jpg": corrupt(img) if i in bad else img, "cls": i}
        for i, img in enumerate(jpegs)
    ]


# -- backend="auto" ------------------------------------------------------------
@pytest.mark.parametrize(
    ("device", "dali", "nvjpeg", "picked"),
    [
        ("cpu", True, True, "pillow"),
        ("cpu", False, False, "pillow"),
        ("gpu", True, True, "dali"),
        ("gpu", True, False, "dali"),
        ("gpu", False, True, "nvjpeg"),
        ("gpu", False, False, "pillow"),
    ],
)
def test_what_auto_picks(device: str, dali: bool, nvjpeg: bool, picked: str) -> None:
    """The table of docs/dali.md."""
    assert auto_backend(device, dali=dali, nvjpeg=nvjpeg) == picked


def test_auto_on_the_cpu_is_pillow_even_with_dali(jpegs: list[bytes]) -> None:
    assert choose("auto", "cpu", None) == ("cpu", "pillow", None)
    if not torch.cuda.is_available():
        assert choose("auto", None, None) == ("cpu", "pillow", None)
    auto = run(jpegs, backend="auto", device="cpu", size=48, crop=40)
    pil = run(jpegs, backend="pillow", device="cpu", size=48, crop=40)
    assert all(torch.equal(a, b) for a, b in zip(auto, pil, strict=True))


def test_device_id_is_checked() -> None:
    with pytest.raises(ParamError, match="decode_images: device_id must be an int >= 0, got -1"):
        sd.IterableWrapper([]).batch(2).decode_images(device_id=-1)


def test_device_id_on_the_cpu_is_a_clear_error(jpegs: list[bytes]) -> None:
    """A device index with nothing to index: said, not ignored."""
    with pytest.raises(RuntimeError, match="device_id=1 needs device='gpu'"):
        run(jpegs, backend="pillow", device="cpu", device_id=1)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("backend", [pytest.param("dali", marks=DALI), "nvjpeg", "pillow"])
def test_images_land_on_the_device_id_asked_for(jpegs: list[bytes], backend: str) -> None:
    """``device_id`` picks the GPU (the last one torch sees), whatever the
    current device; the DALI pipeline, built in a helper thread, uses it too."""
    last = torch.cuda.device_count() - 1
    images = run(pictures(jpegs, backend), backend=backend, device="gpu", device_id=last, crop=32)
    assert all(i.device == torch.device("cuda", last) for i in images)
    with pytest.raises(RuntimeError, match=f"device_id={last + 1} but torch sees"):
        run(jpegs, backend=backend, device="gpu", device_id=last + 1)


def test_on_error_is_checked() -> None:
    with pytest.raises(ParamError, match="decode_images.*on_error"):
        sd.IterableWrapper([]).batch(2).decode_images(on_error="ignore")


# -- on_error ------------------------------------------------------------------
def pictures(jpegs: list[bytes], backend: str) -> list[bytes]:
    """The test's JPEGs, as 4:4:4 for nvJPEG: torchvision's decode_jpeg on CUDA
    upsamples 4:2:0 chroma its own way (docs/dali.md), and on these small
    images with saturated discs the 32x32 centre crop keeps the worst of it
    (MAD 5.1 and 6.1 against Pillow on an H100, over the NVJPEG_420_TOLERANCE
    of 4). On 4:4:4 it decodes as Pillow does (MAD 0.0), so what these tests
    check, that the kept images are the right ones, is held to TOLERANCE."""
    return [_as_444(j) for j in jpegs] if backend == "nvjpeg" else jpegs


@pytest.mark.parametrize(("backend", "device"), EVERYWHERE)
@pytest.mark.parametrize("policy", ["skip", "warn"])
def test_a_corrupt_image_drops_its_sample(
    jpegs: list[bytes], backend: str, device: str, policy: str
) -> None:
    """One fewer image in its batch; labels and keys stay aligned; one skip counted."""
    if backend == "nvjpeg":
        pytest.importorskip("torchvision")
    jpegs = pictures(jpegs, backend)
    dp = (
        sd.IterableWrapper(samples(jpegs, {2}))
        .batch(4)
        .decode_images(backend=backend, device=device, crop=32, on_error=policy)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, stats = run_with_stats(dp)
    assert [b["jpg"].shape[0] for b in out] == [3, 4]
    assert [b["cls"] for b in out] == [[0, 1, 3], [4, 5, 6, 7]]
    assert out[0]["__key__"] == ["s0", "s1", "s3"]
    assert stats["decode_images"]["skipped"] == 1
    warned = [str(w.message) for w in caught if issubclass(w.category, sd.SkippedInputWarning)]
    assert len(warned) == (1 if policy == "warn" else 0)
    assert all("image 2 of the batch" in m and "sample 's2'" in m for m in warned)
    pil = run(jpegs, batch=len(jpegs), backend="pillow", device="cpu", crop=32)[0]
    for batch in out:
        assert all(
            mad(img, pil[i]) <= TOLERANCE for img, i in zip(batch["jpg"], batch["cls"], strict=True)
        )


@pytest.mark.parametrize(("backend", "device"), ON_CPU)
def test_raise_names_the_node_the_index_and_the_sample(
    jpegs: list[bytes], backend: str, device: str
) -> None:
    dp = (
        sd.IterableWrapper(samples(jpegs, {6}))
        .batch(4)
        .decode_images(name="dec", backend=backend, device=device, crop=32)
    )
    with pytest.raises(
        NodeError,
        match=r"decode_images node 'dec' failed on image 2 of the "
        r"batch \(\d+ bytes, sample 's6'\)",
    ) as info:
        list(dp)
    assert info.value.op == "decode_images"


@pytest.mark.parametrize(("backend", "device"), EVERYWHERE)
def test_skip_in_batches_queued_behind_others(
    jpegs: list[bytes], backend: str, device: str
) -> None:
    """Tuples and raw bytes too; a batch with no image left is dropped whole;
    the batches queued after a failed one (DALI holds two) come out in order."""
    if backend == "nvjpeg":
        pytest.importorskip("torchvision")
    jpegs = pictures(jpegs, backend)
    bad = {1, 4, 5, 6, 7, 10}
    tuples = [
        (img, i)
        for i, img in enumerate(corrupt(j) if i in bad else j for i, j in enumerate(jpegs * 2))
    ]
    out = list(
        sd.IterableWrapper(tuples)
        .batch(4)
        .decode_images(backend=backend, device=device, crop=32, on_error="skip")
    )
    assert [ids for _, ids in out] == [[0, 2, 3], [8, 9, 11], [12, 13, 14, 15]]
    pil = run(jpegs, batch=len(jpegs), backend="pillow", device="cpu", crop=32)[0]
    for images, ids in out:
        assert all(
            mad(img, pil[i % len(jpegs)]) <= TOLERANCE for img, i in zip(images, ids, strict=True)
        )
    raw = list(
        sd.IterableWrapper([img for img, _ in tuples])
        .batch(4)
        .decode_images(backend=backend, device=device, size=[30, 20], on_error="skip")
    )
    assert [t.shape for t in raw] == [(3, 3, 30, 20), (3, 3, 30, 20), (4, 3, 30, 20)]


@pytest.mark.parametrize(("backend", "device"), ON_CPU)
def test_skip_resumes_exactly(jpegs: list[bytes], backend: str, device: str) -> None:
    dp = (
        sd.IterableWrapper(samples(jpegs * 2, {3, 9}))
        .shuffle(buffer_size=6)
        .batch(3)
        .decode_images(backend=backend, device=device, crop=32, on_error="skip")
    )
    epoch = assert_resumes(dp, seed=4)
    assert sum(len(b["cls"]) for b in epoch) == 14


@pytest.mark.dali
@needs_dali
@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_dali_epoch_left_with_a_corrupt_batch_queued(jpegs: list[bytes], policy: str) -> None:
    """The corrupt batch DALI held when the epoch was left is not an error of
    the next epoch's start: that epoch decodes (or fails on) it in turn."""
    dp = (
        sd.IterableWrapper(samples(jpegs, {5}))
        .batch(4)
        .decode_images(name="dec", backend="dali", device="cpu", crop=32, on_error=policy)
    )
    with sd.DataLoader2(dp) as loader:
        assert next(iter(loader))["cls"] == [0, 1, 2, 3]  # the next batch is queued
        if policy == "skip":
            assert [b["cls"] for b in loader] == [[0, 1, 2, 3], [4, 6, 7]]
        else:
            with pytest.raises(NodeError, match=r"image 1 of the batch .*sample 's5'"):
                list(loader)
