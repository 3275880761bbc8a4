"""Every registered op passes the four resume phases of ``streamdag.testing``
under every built-in service: in process, threads and worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

import streamdag as sd
from streamdag.datapipes import registered_ops
from streamdag.testing import SERVICES, assert_resumes
from tests.support.services import SERVICE_PARAMS
from tests.test_graph_io import PIPELINES
from tests.test_graph_io_ops import INTERNAL_OPS, OPS
from tests.test_graph_io_ops import data as data  # noqa: F401 - the files the readers read

EXAMPLES = sorted({*PIPELINES, *OPS})
# several of the examples have no sharding_filter: each worker yields all of
# them, which is what the resume checks compare (a ShardingWarning each time)
pytestmark = pytest.mark.filterwarnings("ignore::streamdag.errors.ShardingWarning")


def test_every_registered_op_has_an_example() -> None:
    """New ops join the resume guard through the round-trip tables."""
    missing = set(registered_ops) - set(EXAMPLES) - INTERNAL_OPS
    assert not {op for op in missing if not op.startswith("test")}, sorted(missing)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("service", SERVICE_PARAMS)
@pytest.mark.parametrize("op", EXAMPLES)
def test_op_resumes_exactly(op: str, service: str, data: Path) -> None:  # noqa: F811
    pipe = PIPELINES[op]() if op in PIPELINES else OPS[op](data)
    assert any(n.op == op for n in sd.Graph(pipe))
    full = assert_resumes(pipe, reading_service=SERVICES[service])
    assert full, f"{op}: the example yields nothing"
