"""Deterministic benchmark data, generated once into a cache folder and reused.

Layout under ``cache_root()/<full|quick|large|smoke>/``:

    images/shards/shard-NNNNNN.tar   WebDataset tars (``KEY.jpg`` + ``KEY.cls``)
    images/shards/shard-NNNNNN.idx   DALI index of each tar (what ``wds2idx`` writes)
    images/files/KEY.jpg, KEY.cls    the same samples extracted (map-style anchor)
    text/part-K.jsonl.gz             ``{"id", "text", "lang"}`` lines
    docs/part-K.jsonl                W6 ``{"id", "text"}`` documents, long-tailed lengths
    docs/tokenizer.json              a BPE tokenizer trained on the first docs file
    manifest.json                    written last: marks the set complete and
                                     holds the expected counts and checksums

A folder without a matching manifest is deleted and generated again, so an
interrupted generation never leaves a half-written cache in use. Every shard and
text file has its own seed, so the quick set is a prefix of the full one and the
files are the same whatever the number of generating processes.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_ENV = "STREAMDAG_BENCH_CACHE"  # the only environment variable the benchmarks read
SEED = 20240601
FORMAT_VERSION = 2
IMG_H, IMG_W = 240, 320
VOCAB_SIZE = 5000
BPE_VOCAB = 8192  # W6 tokenizer: every word of the vocabulary plus merges, [PAD] = 0
DOC_SHAPE, DOC_SCALE = 1.5, 400.0  # W6 document words ~ gamma: mean 600, a long tail


@dataclass(frozen=True)
class DataSpec:
    """How much data a set holds; the quick set is a prefix of the full one."""

    name: str
    shards: int
    per_shard: int
    text_files: int
    lines_per_file: int
    doc_files: int
    docs_per_file: int


FULL = DataSpec(
    "full", 16, 500, text_files=8, lines_per_file=50_000, doc_files=8, docs_per_file=2000
)
QUICK = DataSpec(
    "quick", 4, 500, text_files=2, lines_per_file=50_000, doc_files=2, docs_per_file=2000
)
# Scaling runs: an epoch of several seconds at 14 workers, and files for every worker.
LARGE = DataSpec(
    "large", 112, 300, text_files=56, lines_per_file=50_000, doc_files=8, docs_per_file=2000
)
# Smoke tests of the plumbing (W7 on the CPU): seconds to make, too small to time.
SMOKE = DataSpec("smoke", 2, 32, text_files=1, lines_per_file=500, doc_files=1, docs_per_file=50)
SPECS = {s.name: s for s in (FULL, QUICK, LARGE, SMOKE)}


def cache_root() -> Path:
    """The cache folder: $STREAMDAG_BENCH_CACHE, else ``.bench_cache/`` at the repo root."""
    return Path(os.environ.get(CACHE_ENV) or REPO_ROOT / ".bench_cache")


def ensure(spec: DataSpec, processes: int | None = None) -> dict:
    """Return the manifest of ``spec``'s data, generating the data first if needed
    (in ``processes`` processes, default one per usable core)."""
    root = cache_root() / spec.name
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == FORMAT_VERSION and manifest.get("spec") == asdict(spec):
            return manifest
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("images/shards", "images/files", "text", "docs"):
        (root / sub).mkdir(parents=True)
    jobs = [("image", root, spec, i) for i in range(spec.shards)]
    jobs += [("text", root, spec, k) for k in range(spec.text_files)]
    jobs += [("docs", root, spec, k) for k in range(spec.doc_files)]
    # Workers are fresh processes so this (parent) process never imports numpy/PIL:
    # shared library pages would otherwise lower the children's measured PSS.
    processes = processes or len(os.sched_getaffinity(0))
    with get_context("spawn").Pool(processes) as pool:
        stats = pool.map(_run_job, jobs, chunksize=1)
        docs = [s for s in stats if s["kind"] == "docs"]
        tokenizer, docs = pool.apply(_train_and_count, (root, docs))
    manifest = {
        "version": FORMAT_VERSION,
        "spec": asdict(spec),
        "root": str(root),
        "images": [s for s in stats if s["kind"] == "image"],
        "text": [s for s in stats if s["kind"] == "text"],
        "docs": docs,
        "tokenizer": tokenizer,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def _run_job(job: tuple) -> dict:
    kind, root, spec, index = job
    if kind == "image":
        return write_shard(root, spec, index)
    if kind == "docs":
        return _write_docs(root, spec, index)
    return _write_text(root, spec, index)


def _photo_like(rng, yy, xx) -> bytes:
    """A JPEG (q90) of a smooth colour field, a tilted gradient, mild noise and shapes."""
    import numpy as np
    from PIL import Image, ImageDraw

    grid = rng.uniform(0, 255, (3, 4, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(grid, "RGB").resize((IMG_W, IMG_H), Image.BICUBIC))
    tilt = rng.uniform(-0.3, 0.3, (2, 3)).astype(np.float32)
    img = field + xx[..., None] * tilt[0] + yy[..., None] * tilt[1]
    img += rng.standard_normal((IMG_H, IMG_W, 3), dtype=np.float32) * rng.uniform(5.0, 9.0)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, IMG_W - 20)), int(rng.integers(0, IMG_H - 20))
        box = (x0, y0, x0 + int(rng.integers(15, 120)), y0 + int(rng.integers(15, 100)))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_shard(root: Path, spec: DataSpec, shard: int) -> dict:
    """Image shard ``shard`` of ``spec`` under ``root`` (tar, DALI index and
    extracted files); its manifest entry."""
    import numpy as np

    rng = np.random.default_rng([SEED, 1, shard])
    yy, xx = np.mgrid[0:IMG_H, 0:IMG_W].astype(np.float32)
    tar_path = root / "images" / "shards" / f"shard-{shard:06d}.tar"
    files = root / "images" / "files"
    label_sum = nbytes = 0
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(spec.per_shard):
            key = f"{shard * spec.per_shard + i:06d}"
            label = int(rng.integers(0, 1000))
            jpg, cls = _photo_like(rng, yy, xx), str(label).encode()
            for name, payload in ((f"{key}.jpg", jpg), (f"{key}.cls", cls)):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(payload), 0o644
                tar.addfile(info, io.BytesIO(payload))
                (files / name).write_bytes(payload)
            label_sum += label
            nbytes += len(jpg)
    _write_dali_index(tar_path)
    return {
        "kind": "image",
        "path": str(tar_path),
        "samples": spec.per_shard,
        "label_sum": label_sum,
        "jpeg_bytes": nbytes,
    }


def _write_dali_index(tar_path: Path) -> None:
    """Write the index DALI's webdataset reader takes (format v1.2 of DALI's wds2idx)."""
    samples: list[list[str]] = []
    last = None
    with tarfile.open(tar_path) as tar:
        for m in tar:
            base, ext = m.name.split(".", 1)
            if base != last:
                samples.append([])
                last = base
            samples[-1].append(f"{ext} {m.offset_data} {m.size} {m.name}")
    lines = [f"v1.2 {len(samples)}"] + [" ".join(s) for s in samples]
    tar_path.with_suffix(".idx").write_text("\n".join(lines) + "\n")


def _vocabulary(np) -> list[str]:
    rng = np.random.default_rng([SEED, 2])
    syllables = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < VOCAB_SIZE:
        n = int(rng.integers(1, 4))
        words.add("".join(syllables[j] for j in rng.integers(0, len(syllables), n)))
    return sorted(words)


def _texts(np, rng, lengths) -> list[str]:
    """One text per length: that many words of the vocabulary, Zipf-like frequencies."""
    vocab = _vocabulary(np)
    weights = 1.0 / (np.arange(VOCAB_SIZE) + 10.0)
    words = rng.choice(VOCAB_SIZE, size=int(lengths.sum()), p=weights / weights.sum()).tolist()
    texts, start = [], 0
    for end in np.cumsum(lengths).tolist():
        texts.append(" ".join([vocab[w] for w in words[start:end]]))
        start = end
    return texts


def _write_text(root: Path, spec: DataSpec, part: int) -> dict:
    import numpy as np

    rng = np.random.default_rng([SEED, 3, part])
    lengths = rng.integers(20, 81, spec.lines_per_file)
    is_en = rng.random(spec.lines_per_file) < 0.6
    first_id = part * spec.lines_per_file
    lines = [
        json.dumps({"id": first_id + i, "text": text, "lang": "en" if is_en[i] else "fr"})
        for i, text in enumerate(_texts(np, rng, lengths))
    ]
    path = root / "text" / f"part-{part}.jsonl.gz"
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz,
    ):
        gz.write(("\n".join(lines) + "\n").encode())
    return {
        "kind": "text",
        "path": str(path),
        "lines": spec.lines_per_file,
        "en_lines": int(is_en.sum()),
        "en_tokens": int(lengths[is_en].sum()),
    }


def _write_docs(root: Path, spec: DataSpec, part: int) -> dict:
    import numpy as np

    rng = np.random.default_rng([SEED, 4, part])
    lengths = np.maximum(1, rng.gamma(DOC_SHAPE, DOC_SCALE, spec.docs_per_file)).astype(np.int64)
    first_id = part * spec.docs_per_file
    path = root / "docs" / f"part-{part}.jsonl"
    with open(path, "w") as f:
        for i, text in enumerate(_texts(np, rng, lengths)):
            f.write(json.dumps({"id": first_id + i, "text": text}) + "\n")
    return {"kind": "docs", "path": str(path), "docs": spec.docs_per_file}


def _train_and_count(root: Path, docs: list[dict]) -> tuple[str, list[dict]]:
    """Train the W6 BPE tokenizer on the first docs file, save it next to the
    data, and add each file's token count and token-id sum (the W6 checks)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    def texts(path: str) -> list[str]:
        with open(path) as f:
            return [json.loads(line)["text"] for line in f]

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB, special_tokens=["[PAD]", "[UNK]"], show_progress=False
    )
    tokenizer.train_from_iterator(texts(docs[0]["path"]), trainer)
    path = root / "docs" / "tokenizer.json"
    tokenizer.save(str(path))
    for d in docs:
        ids = [e.ids for e in tokenizer.encode_batch(texts(d["path"]))]
        d["tokens"], d["id_sum"] = sum(map(len, ids)), sum(map(sum, ids))
    return str(path), docs
