"""A DataLoader2 + MultiProcessingReadingService training loop ported from
torchdata: only the import lines change (``torchdata.datapipes.iter`` ->
``streamdag.datapipes.iter``, ``torchdata.dataloader2`` ->
``streamdag.dataloader2``). torchdata's ``worker_init_fn(datapipe,
worker_info)`` keeps working; ``state_dict()`` between two batches then
resumes exactly (a streamdag addition torchdata 0.9 did not have).

Run: python examples/torchdata_port_training_loop.py"""

from __future__ import annotations

import torch

from streamdag.dataloader2 import DataLoader2, MultiProcessingReadingService
from streamdag.datapipes.iter import Batcher, Collator, IterableWrapper, Mapper, Shuffler

FEATURES = 4
TRUE_WEIGHTS = torch.tensor([1.0, -2.0, 0.5, 3.0])


def make_row(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A sample of a linear problem, the same every time for the same i."""
    x = torch.sin(torch.arange(FEATURES, dtype=torch.float32) * (i + 1))
    return x, (x * TRUE_WEIGHTS).sum()


def worker_init_fn(datapipe, worker_info):
    """torchdata's signature: runs once in each worker; returns the pipe to run."""
    torch.set_num_threads(1)
    return datapipe


def build_pipe(rows: int = 256, batch_size: int = 16):
    dp = IterableWrapper(range(rows))
    dp = Shuffler(dp, buffer_size=64)
    dp = dp.sharding_filter()
    dp = Mapper(dp, make_row)
    return Collator(Batcher(dp, batch_size))


def main(epochs: int = 3, num_workers: int = 2) -> dict[str, float]:
    model = torch.nn.Linear(FEATURES, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rs = MultiProcessingReadingService(num_workers=num_workers, worker_init_fn=worker_init_fn)
    dl = DataLoader2(build_pipe(), reading_service=rs)
    dl.seed(0)
    losses = []
    try:
        for epoch in range(epochs):
            for xs, ys in dl:
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(xs).squeeze(1), ys)
                loss.backward()
                opt.step()
            losses.append(loss.item())
            print(f"epoch {epoch}: last batch loss {loss.item():.4f}")
    finally:
        dl.shutdown()
    return {"first": losses[0], "last": losses[-1]}


if __name__ == "__main__":
    main()
