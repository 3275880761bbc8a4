"""The checks streamdag's own tests run, shipped for third-party ops and
readers: exact resume in four phases, determinism, a save/load round trip,
and conformance classes to mix into a pytest class.

``reading_service`` arguments are zero-argument factories (a service belongs
to one loader, and the checks create several): ``None`` runs in process,
``SERVICES`` has one factory per built-in worker service."""

from .conformance import OpConformance, ReaderConformance
from .loaders import SERVICES, plain, resumed_epoch, run_epoch, run_epochs
from .resume import assert_deterministic, assert_resumes
from .round_trip import assert_round_trips

__all__ = [
    "SERVICES",
    "OpConformance",
    "ReaderConformance",
    "assert_deterministic",
    "assert_resumes",
    "assert_round_trips",
    "plain",
    "resumed_epoch",
    "run_epoch",
    "run_epochs",
]
