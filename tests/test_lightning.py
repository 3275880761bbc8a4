"""Lightning: a run that crashes and resumes from a mid-epoch checkpoint
(``ModelCheckpoint(every_n_train_steps=...)``, ``fit(ckpt_path=...)``)
trains on exactly the batches of an uninterrupted run from the checkpoint on,
although Lightning's fetcher holds one batch ahead when it saves."""

from __future__ import annotations

from pathlib import Path

import pytest

import streamdag as sd

pl = pytest.importorskip("pytorch_lightning")
torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EPOCHS, BATCHES = 2, 10  # batches per epoch
EVERY = 5  # steps between checkpoints


class Crash(Exception):
    """The failure injected into training_step."""


class Recorder(pl.LightningModule):
    """A linear layer that records every batch it trains on, and raises
    ``Crash`` before training step ``crash_at``."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.crash_at = crash_at
        self.trained: list[list[int]] = []

    def training_step(self, batch: list[int], batch_idx: int) -> torch.Tensor:
        if self.global_step == self.crash_at:
            raise Crash(f"step {self.global_step}")
        self.trained.append(list(batch))
        return self.layer(torch.tensor(batch, dtype=torch.float32).unsqueeze(1)).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader(service: str, in_flight: int = 0, workers: int = 2) -> sd.DataLoader2:
    dp = sd.IterableWrapper(range(BATCHES * 4)).shuffle(buffer_size=16).sharding_filter().batch(4)
    reading = sd.MultiProcessingReadingService(workers) if service == "processes" else None
    return sd.DataLoader2(dp, reading_service=reading, seed=7, in_flight=in_flight)


def fit(
    model: Recorder,
    service: str,
    root: Path,
    ckpt_path: Path | None = None,
    in_flight: int = 0,
    workers: int = 2,
) -> None:
    checkpoints = pl.callbacks.ModelCheckpoint(
        dirpath=root, filename="{step}", every_n_train_steps=EVERY, save_top_k=-1
    )
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoints],
    )
    data = loader(service, in_flight, workers)
    try:
        trainer.fit(model, data, ckpt_path=ckpt_path)
    finally:
        data.shutdown()


@pytest.fixture(scope="module", params=["in_process", "processes"])
def uninterrupted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The service and the batches of a run without crash, in training order."""
    full = Recorder()
    fit(full, request.param, tmp_path_factory.mktemp("full"))
    assert len(full.trained) == EPOCHS * BATCHES
    assert sorted(x for b in full.trained[:BATCHES] for x in b) == list(range(BATCHES * 4))
    return request.param, full.trained


# checkpoints at steps 5 (mid-epoch 0), 10 (after the last batch of epoch 0), 15 (mid-epoch 1)
# a loader without in_flight (Lightning's fit loop is recognised) and with in_flight=1
@pytest.mark.parametrize(("crash_at", "in_flight"), [(7, 0), (13, 1), (17, 0)])
def test_resume_from_a_checkpoint_trains_the_remaining_batches(
    tmp_path: Path, uninterrupted: tuple[str, list[list[int]]], crash_at: int, in_flight: int
) -> None:
    """The batches trained after ``fit(ckpt_path=...)`` are the uninterrupted
    run's batches from the checkpoint step on: none skipped, none repeated."""
    service, trained = uninterrupted
    crashed = Recorder(crash_at=crash_at)
    with pytest.raises(Crash):
        fit(crashed, service, tmp_path, in_flight=in_flight)
    assert crashed.trained == trained[:crash_at]

    step = crash_at // EVERY * EVERY
    resumed = Recorder()
    fit(resumed, service, tmp_path, tmp_path / f"step={step}.ckpt", in_flight)
    assert resumed.trained == trained[step:]


def test_resume_with_another_number_of_workers_trains_each_remaining_sample_once(
    tmp_path: Path,
) -> None:
    """A checkpoint of 2 worker processes (Lightning takes it with a batch in
    flight) resumed with 3: the samples trained before it and after it in
    its epoch are the epoch's, each once; the next epoch is whole."""
    crashed = Recorder(crash_at=7)
    with pytest.raises(Crash):
        fit(crashed, "processes", tmp_path)
    resumed = Recorder()
    fit(resumed, "processes", tmp_path, tmp_path / f"step={EVERY}.ckpt", workers=3)
    epoch = crashed.trained[:EVERY] + resumed.trained[: BATCHES - EVERY]
    assert sorted(x for batch in epoch for x in batch) == list(range(BATCHES * 4))
    after = resumed.trained[BATCHES - EVERY :]
    assert sorted(x for batch in after for x in batch) == list(range(BATCHES * 4))
