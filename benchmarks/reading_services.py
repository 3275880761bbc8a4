"""Reading-service overhead on synthetic pipelines (no files needed):
streamdag's process, thread and in-process services against torch's
DataLoader with the same per-element work, 2 workers each.

    python -m benchmarks.reading_services [--reps 3] [--n 4096]

``images``: a 256x256x3 uint8 array per element, Pillow resize to 224 (releases
the GIL), batches of 64 collated into one uint8 tensor: IPC is a 9.6 MB batch.
``small``: ints through a pure-Python map, batches of 512 lists: IPC is many
small pickled objects and the work holds the GIL.
Each repetition runs in a fresh process; CPU is the whole process tree's, so
the comparison holds on a busy machine where wall time does not."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch  # as in any training script: forked workers inherit it

CONTENDERS = ("torch-dl", "sd-processes", "sd-threads", "sd-in-process")


def make_image(i: int) -> np.ndarray:
    return np.full((256, 256, 3), i % 251, dtype=np.uint8)


def resize(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR))


def image_sample(i: int) -> np.ndarray:
    return resize(make_image(i))


def small_sample(i: int) -> list[int]:
    return [i + k for k in range(20)]


def collate(batch: list) -> object:
    if isinstance(batch[0], np.ndarray):
        return torch.from_numpy(np.stack(batch))
    return batch


def _torch_loader(workload: str, n: int, batch: int):
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    fn = image_sample if workload == "images" else small_sample

    class Source(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            start, step = (info.id, info.num_workers) if info else (0, 1)
            return map(fn, range(start, n, step))

    torch.set_num_threads(1)
    return DataLoader(Source(), batch_size=batch, num_workers=2, collate_fn=collate)


def _streamdag_loader(workload: str, n: int, batch: int, kind: str):
    import streamdag as sd

    fn = image_sample if workload == "images" else small_sample
    dp = sd.IterableWrapper(range(n)).sharding_filter().map(fn).batch(batch).collate(collate)
    service = {
        "sd-processes": lambda: sd.MultiProcessingReadingService(2),
        "sd-threads": lambda: sd.MultiThreadingReadingService(2),
        "sd-in-process": lambda: None,
    }[kind]()
    return sd.DataLoader2(dp, reading_service=service, seed=0)


def run_one(contender: str, workload: str, n: int) -> dict:
    batch = 64 if workload == "images" else 512
    t0, c0 = time.perf_counter(), time.process_time()
    if contender == "torch-dl":
        loader = _torch_loader(workload, n, batch)
    else:
        loader = _streamdag_loader(workload, n, batch, contender)
    count, first = 0, None
    for b in loader:
        first = first if first is not None else time.perf_counter() - t0
        count += len(b)
    if hasattr(loader, "shutdown"):
        loader.shutdown()
    wall = time.perf_counter() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + kids.ru_utime + kids.ru_stime
    assert count == n, (contender, count)
    return {"per_s": n / wall, "first_s": first, "cpu_us": cpu / n * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--one", nargs=2, metavar=("CONTENDER", "WORKLOAD"))
    args = parser.parse_args()
    if args.one:
        n = args.n if args.one[1] == "images" else args.n * 64
        print(json.dumps(run_one(args.one[0], args.one[1], n)))
        return
    print("| workload | contender | items/s | first batch | CPU us/item (all processes) |")
    print("|---|---|---:|---:|---:|")
    for workload in ("images", "small"):
        results: dict[str, list[dict]] = {c: [] for c in CONTENDERS}
        for _ in range(args.reps):
            for contender in CONTENDERS:  # interleaved, a fresh process each
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.reading_services",
                        "--n",
                        str(args.n),
                        "--one",
                        contender,
                        workload,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[contender].append(json.loads(out.stdout))
        for contender, reps in results.items():
            med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
            print(
                f"| {workload} | {contender} | {med['per_s']:,.0f} | "
                f"{med['first_s'] * 1000:.0f} ms | {med['cpu_us']:.1f} |"
            )


if __name__ == "__main__":
    main()
