"""Pretraining data, end to end: three text sources mixed 60/30/10, tokenized,
packed into rows of 2048 tokens, batched, read by 2 worker processes, and
resumed exactly in a new process.

The example makes everything it needs (no network): two sources of
``.jsonl.zst`` shards and one of Parquet files, with deterministic text, and a
small BPE tokenizer trained on them with ``tokenizers``. It trains a tiny
causal LM for a few steps, saves ``loader.state_dict()`` (with the model and
optimizer) mid-epoch and goes on to record the batches an uninterrupted run
reads next. Then a new Python process loads the saved state, trains the same
steps and checks that its tokens are those of the uninterrupted run.

Run: python examples/pretrain_tokens.py [--dir DIR]"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import tokenizers
import torch
import zstandard

import streamdag as sd
from streamdag.dataloader2 import DataLoader2, MultiProcessingReadingService

SEQ_LEN = 2048
BATCH = 2
STEPS = 6  # steps of the uninterrupted run
STOP = 3  # steps before the state is saved
SHARDS = 4  # files per source: the 2 workers share them out
WEIGHTS = {"web": 0.6, "books": 0.3, "wiki": 0.1}
WORDS = (
    "the a of and to in data stream model token pipeline worker batch resume state "
    "river mountain city light night morning garden letter window story music paper"
).split()


# -- data -------------------------------------------------------------------------
def documents(source: str, shard: int, count: int) -> list[str]:
    """Deterministic text: the same words for the same source and shard."""
    rng = random.Random(f"{source}-{shard}")
    return [
        f"{source} {shard}.{i}: " + " ".join(rng.choices(WORDS, k=rng.randint(20, 400)))
        for i in range(count)
    ]


def write_data(root: Path) -> Path:
    """``web/*.jsonl.zst``, ``books/*.jsonl.zst``, ``wiki/*.parquet`` and a
    BPE ``tokenizer.json`` trained on them; returns the tokenizer's path."""
    texts = []
    for source in WEIGHTS:
        (root / source).mkdir(parents=True, exist_ok=True)
        for shard in range(SHARDS):
            docs = documents(source, shard, 60 if source != "wiki" else 20)
            texts += docs
            if source == "wiki":
                table = pa.table({"id": list(range(len(docs))), "text": docs})
                pq.write_table(table, root / source / f"{shard}.parquet", row_group_size=8)
            else:
                lines = "".join(json.dumps({"text": d}) + "\n" for d in docs)
                data = zstandard.ZstdCompressor().compress(lines.encode())
                (root / source / f"{shard}.jsonl.zst").write_bytes(data)
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=512, special_tokens=["[PAD]", "[EOS]"])
    tok.train_from_iterator(texts, trainer)
    tok.save(str(root / "tokenizer.json"))
    return root / "tokenizer.json"


# -- pipeline -----------------------------------------------------------------------
def build_pipe(root: Path) -> sd.DataPipe:
    """Documents of three sources, mixed by weight, as batches of packed rows."""

    def files(source: str, mask: str) -> sd.DataPipe:
        return sd.FileLister(str(root / source), mask).sharding_filter().open_files(mode="b")

    sources = {
        files("web", "*.jsonl.zst").decompress().parse_jsonl(): WEIGHTS["web"],
        files("books", "*.jsonl.zst").decompress().parse_jsonl(): WEIGHTS["books"],
        files("wiki", "*.parquet").load_parquet(columns=["text"]): WEIGHTS["wiki"],
    }
    tok = tokenizers.Tokenizer.from_file(str(root / "tokenizer.json"))
    eos = tok.token_to_id("[EOS]")
    return (
        sd.SampleMultiplexer(sources)
        .tokenize(str(root / "tokenizer.json"), add_special_tokens=False)
        .pack(SEQ_LEN, field="input_ids", eos_id=eos, pad_id=tok.token_to_id("[PAD]"))
        .batch(BATCH)
        .collate()  # dicts of (BATCH, SEQ_LEN) int64 tensors
    )


def make_loader(root: Path) -> DataLoader2:
    return DataLoader2(build_pipe(root), reading_service=MultiProcessingReadingService(2), seed=0)


# -- model ----------------------------------------------------------------------------
class TinyLM(torch.nn.Module):
    """Embeddings and one attention block; a token attends only to earlier
    tokens of its own document (``segment_ids``), positions from ``position_ids``."""

    def __init__(self, vocab: int, dim: int = 64, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.tokens = torch.nn.Embedding(vocab, dim)
        self.positions = torch.nn.Embedding(SEQ_LEN, dim)
        self.norm1, self.norm2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.qkv, self.proj = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(), torch.nn.Linear(4 * dim, dim)
        )
        self.out = torch.nn.Linear(dim, vocab)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        segs = batch["segment_ids"]
        x = self.tokens(batch["input_ids"]) + self.positions(batch["position_ids"])
        n, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        mask = (segs[:, :, None] == segs[:, None, :]) & causal  # block-diagonal, causal
        att = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])
        x = x + self.proj(att.transpose(1, 2).reshape(n, length, dim))
        return self.out(x + self.mlp(self.norm2(x)))


def loss_of(model: TinyLM, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token loss, only where the next token is of the same document."""
    logits = model(batch)[:, :-1]
    ids, segs = batch["input_ids"], batch["segment_ids"]
    keep = (segs[:, 1:] == segs[:, :-1]) & (segs[:, 1:] != 0)
    return torch.nn.functional.cross_entropy(logits[keep], ids[:, 1:][keep])


def train(
    model: TinyLM, opt: torch.optim.Optimizer, batches: Iterator[dict], steps: range
) -> list[torch.Tensor]:
    """One optimizer step per batch; returns the input_ids of each batch."""
    seen = []
    for step, batch in zip(steps, batches, strict=False):  # range first: no batch pulled past it
        opt.zero_grad()
        loss = loss_of(model, batch)
        loss.backward()
        opt.step()
        seen.append(batch["input_ids"])
        print(f"step {step}: loss {loss.item():.3f}", flush=True)
    return seen


def new_model(root: Path) -> tuple[TinyLM, torch.optim.Optimizer]:
    torch.manual_seed(0)
    vocab = tokenizers.Tokenizer.from_file(str(root / "tokenizer.json")).get_vocab_size()
    model = TinyLM(vocab)
    return model, torch.optim.AdamW(model.parameters(), lr=3e-3)


# -- the two processes -------------------------------------------------------------------
def first_run(root: Path) -> int:
    """Train STOP steps, save everything, then record what an uninterrupted
    run reads next; a new process resumes from the save and compares."""
    write_data(root)
    model, opt = new_model(root)
    loader = make_loader(root)
    try:
        it = iter(loader)
        train(model, opt, it, range(STOP))
        torch.save(
            {"loader": loader.state_dict(), "model": model.state_dict(), "opt": opt.state_dict()},
            root / "checkpoint.pt",
        )
        print(f"saved the state after step {STOP - 1}; the uninterrupted run goes on", flush=True)
        expected = train(model, opt, it, range(STOP, STEPS))
    finally:
        loader.shutdown()
    torch.save(expected, root / "expected.pt")
    cmd = [sys.executable, __file__, "--dir", str(root), "--resume"]
    return subprocess.run(cmd, check=False).returncode


def resumed_run(root: Path) -> int:
    """Load the checkpoint in this new process, train on, compare the tokens."""
    saved = torch.load(root / "checkpoint.pt", weights_only=True)
    model, opt = new_model(root)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    loader = make_loader(root)
    try:
        loader.load_state_dict(saved["loader"])
        print("resumed in a new process", flush=True)
        got = train(model, opt, iter(loader), range(STOP, STEPS))
    finally:
        loader.shutdown()
    expected = torch.load(root / "expected.pt", weights_only=True)
    same = len(got) == len(expected) and all(map(torch.equal, got, expected))
    tokens = sum(t.numel() for t in got)
    if not same:
        print(
            f"MISMATCH: the {len(got)} batches after the resume differ from the uninterrupted run"
        )
        return 1
    print(f"OK: resumed exactly: {len(got)} batches ({tokens} tokens) equal the uninterrupted run")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", help="where to write the data (default: a temporary folder)")
    parser.add_argument("--resume", action="store_true", help="(the second process)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.resume:
        return resumed_run(Path(args.dir))
    if args.dir:
        return first_run(Path(args.dir))
    with tempfile.TemporaryDirectory() as tmp:
        return first_run(Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
