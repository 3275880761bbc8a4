"""What a reading service may do beyond running epochs: small protocols that
``DataLoader2`` and ``DistributedReadingService`` check with ``isinstance``.
A service has a capability by having its methods; it need not inherit."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Ranked(Protocol):
    """Can run as one rank of a distributed job: ``DistributedReadingService``
    (and ``SequentialReadingService(dist, service)``) needs it of the service
    it runs on each rank."""

    def set_rank(self, rank: int, world_size: int) -> None:
        """Run as rank ``rank`` of ``world_size``; called before ``initialize``,
        so sharding splits over ``rank * num_workers + worker``."""


@runtime_checkable
class SpansRanks(Protocol):
    """Runs across the ranks of a job: ``DataLoader2`` has the ranks agree on
    each epoch's base seed and gathers every rank's statistics through it.
    Without it a service is the only rank."""

    def agree_seed(self, seed: int) -> int:
        """The base seed every rank uses (e.g. rank 0's, broadcast); a
        collective: every rank calls it in the same order."""

    def gather(self, snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every rank's statistics snapshots, concatenated (a collective)."""

    def ranks(self) -> tuple[int, int]:
        """(this rank, world size): a loader state records its rank, and
        every old rank's states are dealt to the ranks (elastic resume)."""


@runtime_checkable
class CollectsStats(Protocol):
    """Counts elements and samples time per node: ``DataLoader2(stats=True)``
    and ``progress=True`` need it."""

    def collect_stats(self) -> None:
        """From now on count elements and sample time per node (called after
        ``initialize``, in the thread that trains)."""

    def stats_snapshots(self) -> list[dict[str, Any]]:
        """This rank's statistics: plain-data snapshots
        (``streamdag.stats.snapshot``) of every worker, to be summed."""


@runtime_checkable
class PreparesEpochs(Protocol):
    """Takes a hint to start the next epoch early."""

    def prepare_epoch(self, base_seed: int, epoch: int) -> None:
        """Given when an epoch starts: the one after it is most likely
        ``epoch`` with ``base_seed``. The service may start it as soon as it
        can; it must give the same elements whatever the next ``epoch()`` call
        asks for."""


@runtime_checkable
class StatesBack(Protocol):
    """Can say its state a few elements back: ``DataLoader2.state_dict`` with
    ``in_flight`` then saves where the loop really is, per virtual worker
    (so it resumes on any layout), instead of an earlier state to replay from."""

    def state_back(self, count: int) -> Any:
        """``state()`` as it was ``count`` elements before the last one handed
        out; None where the service cannot tell."""

    def start_state(self) -> Any:
        """A state of a fresh epoch's start that keeps what its order depends
        on (a replay from it must follow that order); None: start afresh."""


CAPABILITIES: tuple[type, ...] = (Ranked, SpansRanks, CollectsStats, PreparesEpochs, StatesBack)


def methods_of(capability: type) -> list[str]:
    """The method names that make up ``capability``."""
    return [name for name in vars(capability) if not name.startswith("_")]


def require(service: object, capability: type, to: str) -> None:
    """Raise a TypeError saying what ``service`` lacks to do ``to``."""
    if not isinstance(service, capability):
        names = " and ".join(f"{name}()" for name in methods_of(capability))
        msg = (
            f"{type(service).__name__} cannot {to}: it has no {names} (the "
            f"{capability.__name__} capability of streamdag.reading_service)"
        )
        raise TypeError(msg)
