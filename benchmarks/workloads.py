"""The workloads of /work/shared/BENCHMARKS.md: their contenders, inputs and checks.

A contender is a module in ``benchmarks/contenders/`` with one function::

    def make(inputs: Inputs) -> Callable[[], Iterable[Batch]]

``make`` is untimed setup (imports, preloading); the clock runs from calling
what it returns until the last batch has been taken, so pipeline construction,
worker start-up and shutdown are all timed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import data


@dataclass(frozen=True)
class Inputs:
    """Everything a contender may read; plain data so it can cross to the child process."""

    quick: bool
    n_ints: int
    shard_dir: str
    shards: list[str]
    files_dir: str
    keys: list[str]
    text_dir: str
    text_files: list[str]
    docs_dir: str
    doc_files: list[str]
    tokenizer: str
    num_workers: int = 2
    w1_batch: int = 256
    image_batch: int = 64
    shuffle_buffer: int = 1000
    text_batch: int = 512
    seq_len: int = 2048
    row_batch: int = 8
    seed: int = 0


@dataclass(frozen=True)
class Contender:
    name: str
    module: str  # module name under benchmarks.contenders
    role: str  # "floor", "anchor" or "streamdag"
    per_worker: bool = False  # the floor runs on one core: reported x the run's worker count


Tally = Callable[[Any], tuple[int, int]]


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    unit: str  # what throughput counts, per second
    reference: str  # contender (or "W2/streamdag") that the ratio column divides by
    contenders: tuple[Contender, ...]
    tally: Tally = field(repr=False)  # batch -> (items, checksum); runs in the timed loop
    check: Callable[[Any], None] = field(repr=False)  # validates the first batch's format
    epochs: int = 1  # timed epochs per repetition (median kept): sub-second epochs are noisy
    in_process: bool = False  # no workers: measured once whatever ``--workers`` lists


def _tally_list(batch: list) -> tuple[int, int]:
    return len(batch), 0


def _tally_images(batch: Any) -> tuple[int, int]:
    return int(batch[1].shape[0]), int(batch[1].sum())


def _tally_tokens(batch: list) -> tuple[int, int]:
    return len(batch), sum(map(len, batch))


def _tally_rows(batch: Any) -> tuple[int, int]:
    """Real tokens (padding, id 0, excluded) and their id sum: of collated rows
    ``{"input_ids", "segment_ids" | "attention_mask"}``, or of token-id lists."""
    if isinstance(batch, list):
        return sum(map(len, batch)), sum(map(sum, batch))
    mask = batch["segment_ids"] if "segment_ids" in batch else batch["attention_mask"]
    return int(mask.count_nonzero()), int(batch["input_ids"].sum())


def _check_ints(batch: Any) -> None:
    if not (isinstance(batch, list) and all(isinstance(x, int) for x in batch)):
        raise ValueError(f"expected a list of ints, got {type(batch).__name__}")


def _check_images(batch: Any) -> None:
    images, labels = batch
    n = labels.shape[0]
    if tuple(images.shape) != (n, 3, 224, 224) or str(images.dtype) != "torch.uint8":
        raise ValueError(
            f"expected uint8 images {n}x3x224x224, got {images.dtype} {tuple(images.shape)}"
        )
    if str(labels.dtype) != "torch.int64" or labels.ndim != 1:
        raise ValueError(
            f"expected int64 labels of shape ({n},), got {labels.dtype} {tuple(labels.shape)}"
        )


def _check_tokens(batch: Any) -> None:
    if not (isinstance(batch, list) and all(isinstance(t, list) for t in batch)):
        raise ValueError(f"expected a list of token-id lists, got {type(batch).__name__}")


def _check_rows(batch: Any) -> None:
    if isinstance(batch, list):
        return _check_tokens(batch)
    ids = batch["input_ids"]
    if ids.ndim != 2 or ids.shape[1] != 2048 or str(ids.dtype) != "torch.int64":
        raise ValueError(f"expected int64 rows of 2048 tokens, got {ids.dtype} {tuple(ids.shape)}")


C = Contender
_IMAGES = dict(unit="images", tally=_tally_images, check=_check_images)
WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "W1",
            "overhead: ints -> map -> filter -> batch(256), in process",
            unit="even ints",
            reference="generators",
            tally=_tally_list,
            check=_check_ints,
            epochs=5,
            in_process=True,
            contenders=(
                C("generators", "w1_generators", "floor"),
                C("streamdag", "w1_streamdag", "streamdag"),
                C("streamdag-dl2", "w1_streamdag_dl2", "streamdag"),
                C("streamdag-stats", "w1_streamdag_stats", "streamdag"),
            ),
        ),
        Workload(
            "W2",
            "images, local: tar shards -> decode -> crop 224 -> shuffle 1000 -> batch 64",
            reference="pillow-floor",
            **_IMAGES,
            contenders=(
                C("pillow-floor", "w2_floor", "floor", per_worker=True),
                C("webdataset", "w2_webdataset", "anchor"),
                C("torch-mapstyle", "w2_mapstyle", "anchor"),
                C("dali-cpu", "w2_dali", "anchor"),
                C("streamdag", "w2_streamdag", "streamdag"),
                C("streamdag-threads", "w2_streamdag_threads", "streamdag"),
                C("streamdag-ray", "w2_streamdag_ray", "streamdag"),
                C("streamdag-v4", "w2_streamdag_v4", "streamdag"),
                C("streamdag-torch-dl", "w2_streamdag_torch_dl", "streamdag"),
            ),
        ),
        Workload(
            "W3",
            "images from S3 (moto server, s3fs): W2 read over the S3 protocol",
            reference="W2/streamdag",
            **_IMAGES,
            contenders=(C("streamdag-s3", "w3_streamdag", "streamdag"),),
        ),
        Workload(
            "W4",
            "text: jsonl.gz -> lines -> json -> lang == en -> tokens -> batch 512",
            unit="en lines",
            reference="torch-generator",
            tally=_tally_tokens,
            check=_check_tokens,
            contenders=(
                C("torch-generator", "w4_generator", "anchor"),
                C("streamdag", "w4_streamdag", "streamdag"),
                C("streamdag-v4", "w4_streamdag_v4", "streamdag"),
            ),
        ),
        Workload(
            "W5",
            "GPU decode: W2 shards decoded and cropped on the GPU (device machine)",
            reference="dali-mixed",
            **_IMAGES,
            epochs=6,  # through one loader/pipeline: epoch 1 holds start-up, the median not
            contenders=(
                C("dali-mixed", "w5_dali", "anchor"),
                C("streamdag-dali", "w5_streamdag", "streamdag"),
                C("streamdag-dali-threads", "w5_streamdag_threads", "streamdag"),
            ),
        ),
        Workload(
            "W6",
            "LLM tokens: jsonl documents -> tokenize (BPE) -> pack(2048) -> batch 8",
            unit="tokens",
            reference="encode-floor",
            tally=_tally_rows,
            check=_check_rows,
            contenders=(
                C("encode-floor", "w6_floor", "floor", per_worker=True),
                C("hf-datasets", "w6_hf_datasets", "anchor"),
                C("streamdag", "w6_streamdag", "streamdag"),
            ),
        ),
    )
}


def build_inputs(manifest: dict, quick: bool) -> Inputs:
    root = Path(manifest["root"])
    shards = sorted(s["path"] for s in manifest["images"])
    return Inputs(
        quick=quick,
        n_ints=200_000 if quick else 2_000_000,
        shard_dir=str(root / "images" / "shards"),
        shards=shards,
        files_dir=str(root / "images" / "files"),
        keys=sorted(p.stem for p in (root / "images" / "files").glob("*.jpg")),
        text_dir=str(root / "text"),
        text_files=sorted(t["path"] for t in manifest["text"]),
        docs_dir=str(root / "docs"),
        doc_files=sorted(d["path"] for d in manifest["docs"]),
        tokenizer=manifest["tokenizer"],
    )


def expected(workload: Workload, manifest: dict, inputs: Inputs) -> tuple[int, int | None]:
    """The (items, checksum) a correct epoch yields; checksum None means unchecked."""
    if workload.name == "W1":
        return inputs.n_ints // 2, None
    if workload.name == "W4":
        text = manifest["text"]
        return sum(t["en_lines"] for t in text), sum(t["en_tokens"] for t in text)
    if workload.name == "W6":
        docs = manifest["docs"]
        return sum(d["tokens"] for d in docs), sum(d["id_sum"] for d in docs)
    images = manifest["images"]
    return sum(s["samples"] for s in images), sum(s["label_sum"] for s in images)


def data_paths(workload: Workload, inputs: Inputs) -> list[str]:
    """The files a workload reads, to warm the page cache before timing anything."""
    if workload.name == "W1":
        return []
    if workload.name == "W4":
        return inputs.text_files
    if workload.name == "W6":
        return [*inputs.doc_files, inputs.tokenizer]
    files = Path(inputs.files_dir)
    return inputs.shards + [
        str(files / f"{k}.{ext}") for k in inputs.keys for ext in ("jpg", "cls")
    ]


def spec_for(quick: bool, name: str = "full") -> data.DataSpec:
    """``--quick`` wins over ``--data``: the small subset whatever size was asked for."""
    return data.QUICK if quick else data.SPECS[name]
