"""Train a tiny model straight from S3: S3 -> tar -> decode -> shuffle -> batch.

Starts a local S3 server (moto, from the dev extras) unless --endpoint names
one, uploads generated webdataset shards, then streams them with retrying,
read-ahead reads (docs/s3.md) through two worker processes into a few
training steps of a small torch model on CPU.

    .venv/bin/python examples/train_from_s3.py [--endpoint http://host:port]
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from typing import Any

import numpy as np
import torch

import streamdag as sd

SHARDS, PER_SHARD = 4, 256


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server on a free loopback port (the same server the tests use)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("moto server did not start")


def make_shard(index: int) -> bytes:
    """A webdataset tar: <key>.npy (8x8x3 uint8 image) and <key>.cls (label)."""
    rng = np.random.default_rng(index)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(PER_SHARD):
            label = int(rng.integers(0, 10))
            image = np.full((8, 8, 3), label * 25, np.uint8) + rng.integers(
                0, 20, (8, 8, 3), dtype=np.uint8
            )
            npy = io.BytesIO()
            np.save(npy, image)
            for ext, data in (("npy", npy.getvalue()), ("cls", str(label).encode())):
                info = tarfile.TarInfo(f"{index:04d}_{i:05d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def to_example(sample: dict[str, Any]) -> tuple[np.ndarray, int]:
    """A decoded sample (``decode()`` made the .npy an array, the .cls an int)."""
    return sample[".npy"].transpose(2, 0, 1).astype(np.float32) / 255.0, sample[".cls"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="an S3 endpoint URL; default: start moto locally")
    parser.add_argument("--key", default="testing")
    parser.add_argument("--secret", default="testing")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    import s3fs

    proc, endpoint = (None, args.endpoint) if args.endpoint else start_moto()
    try:
        opts = {
            "key": args.key,
            "secret": args.secret,
            "client_kwargs": {"endpoint_url": endpoint},
            "use_listings_cache": False,
        }
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
        bucket = f"streamdag-example-{uuid.uuid4().hex[:8]}"
        fs.mkdir(bucket)
        for i in range(SHARDS):
            fs.pipe_file(f"{bucket}/train/shard-{i:04d}.tar", make_shard(i))
        print(f"uploaded {SHARDS} shards to s3://{bucket}/train/ on {endpoint}")

        shards = (
            sd.FileLister(f"s3://{bucket}/train/", "*.tar", storage_options=opts)
            .shuffle(buffer_size=SHARDS)
            .sharding_filter()
        )
        # retrying, read-ahead ranged reads (docs/s3.md); storage_options from the lister
        batches = (
            shards.open_files(mode="b", retry={"chunk_size": 1 << 20})
            .load_from_tar()
            .webdataset()
            .decode()
            .map(to_example, pure=True)  # pure: the shuffle may run before the decode
            # buffers the samples still encoded; they are decoded as they leave it
            .shuffle(buffer_size=256)
            .batch(32, drop_last=True)
            .collate()
        )

        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 3, 10))
        optim = torch.optim.SGD(model.parameters(), lr=0.05)
        loader = sd.DataLoader2(batches, sd.MultiProcessingReadingService(num_workers=2), seed=0)
        step = 0
        try:
            t0 = time.perf_counter()
            while step < args.steps:
                for images, labels in loader:
                    loss = torch.nn.functional.cross_entropy(model(images), labels)
                    optim.zero_grad()
                    loss.backward()
                    optim.step()
                    step += 1
                    if step % 5 == 0 or step == 1:
                        print(
                            f"step {step:3d}  loss {loss.item():.3f}  "
                            f"batch {tuple(images.shape)}  {time.perf_counter() - t0:.2f}s"
                        )
                    if step >= args.steps:
                        break
        finally:
            loader.shutdown()
        fs.rm(bucket, recursive=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(5)


if __name__ == "__main__":
    main()
