"""Reading-service overhead on synthetic pipelines (no files needed):
streamdag's process, thread and in-process services against torch's
DataLoader with the same per-element work.

    python -m benchmarks.reading_services [--reps 3] [--n 4096]

``images`` (2 workers): a 256x256x3 uint8 array per element, Pillow resize to
224 (releases the GIL), batches of 64 collated into one uint8 tensor: IPC is a
9.6 MB batch. ``small`` (2 workers): ints through a pure-Python map, batches of
512 lists: IPC is many small pickled objects and the work holds the GIL.
``waiting`` (14 workers): each element sleeps 20 ms, batches of one list of
64 ints: the main process's cost per batch with many workers, which on a
2-core machine is otherwise hidden by workers crowding it out (on a many-core
host it is what limits the worker count).
Each repetition runs in a fresh process; CPU is the whole process tree's, so
the comparison holds on a busy machine where wall time does not, and the main
process's alone."""

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

import streamdag as sd  # imported before the clock starts, as torch is

CONTENDERS = ("torch-dl", "sd-processes", "sd-threads", "sd-in-process")
PROCESSES = ("torch-dl", "sd-processes")
#: workload -> (workers, batch size, elements for --n N)
WORKLOADS = {
    "images": (2, 64, lambda n: n),
    "small": (2, 512, lambda n: n * 64),
    "waiting": (14, 1, lambda n: 14 * 100),
}


def make_image(i: int) -> np.ndarray:
    return np.full((256, 256, 3), i % 251, dtype=np.uint8)


def resize(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR))


def image_sample(i: int) -> np.ndarray:
    return resize(make_image(i))


def small_sample(i: int) -> list[int]:
    return [i + k for k in range(20)]


def waiting_sample(i: int) -> list[int]:
    time.sleep(0.02)
    return [i] * 64


SAMPLES = {"images": image_sample, "small": small_sample, "waiting": waiting_sample}


def collate(batch: list) -> object:
    if isinstance(batch[0], np.ndarray):
        return torch.from_numpy(np.stack(batch))
    return batch


def _torch_loader(workload: str, n: int, batch: int, workers: int):
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    fn = SAMPLES[workload]

    class Source(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            start, step = (info.id, info.num_workers) if info else (0, 1)
            return map(fn, range(start, n, step))

    torch.set_num_threads(1)
    return DataLoader(Source(), batch_size=batch, num_workers=workers, collate_fn=collate)


def _streamdag_loader(workload: str, n: int, batch: int, workers: int, kind: str):
    fn = SAMPLES[workload]
    dp = sd.IterableWrapper(range(n)).sharding_filter().map(fn).batch(batch).collate(collate)
    service = {
        "sd-processes": lambda: sd.MultiProcessingReadingService(workers),
        "sd-threads": lambda: sd.MultiThreadingReadingService(workers),
        "sd-in-process": lambda: None,
    }[kind]()
    return sd.DataLoader2(dp, reading_service=service, seed=0)


def run_one(contender: str, workload: str, n: int) -> dict:
    workers, batch, size = WORKLOADS[workload]
    n = size(n)
    t0, c0 = time.perf_counter(), time.process_time()
    if contender == "torch-dl":
        loader = _torch_loader(workload, n, batch, workers)
    else:
        loader = _streamdag_loader(workload, n, batch, workers, contender)
    count, first, c1 = 0, None, 0.0
    for b in loader:
        if first is None:
            first, c1 = time.perf_counter() - t0, time.process_time()
        count += len(b)
    if hasattr(loader, "shutdown"):
        loader.shutdown()
    wall = time.perf_counter() - t0
    c2 = time.process_time()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = c2 - c0 + kids.ru_utime + kids.ru_stime
    assert count == n, (contender, count)
    return {
        "per_s": n / wall,
        "first_s": first,
        "cpu_us": cpu / n * 1e6,
        "main_us": (c2 - c1) / (-(-n // batch) - 1) * 1e6,  # after the first batch
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--one", nargs=2, metavar=("CONTENDER", "WORKLOAD"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.n)))
        return
    print(
        "| workload | contender | items/s | first batch | CPU us/item (all processes) "
        "| main process CPU us/batch after the first |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for workload in WORKLOADS:
        # in process, 14 x 100 elements of 20 ms would take 28 s to say nothing
        contenders = [c for c in CONTENDERS if workload != "waiting" or c != "sd-in-process"]
        results: dict[str, list[dict]] = {c: [] for c in contenders}
        for _ in range(args.reps):
            for contender in contenders:  # interleaved, a fresh process each
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
            # threads and in process: the main process does all the work
            main = f"{med['main_us']:.0f}" if contender in PROCESSES else "-"
            print(
                f"| {workload} | {contender} | {med['per_s']:,.0f} | "
                f"{med['first_s'] * 1000:.0f} ms | {med['cpu_us']:.1f} | {main} |"
            )


if __name__ == "__main__":
    main()
