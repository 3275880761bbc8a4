"""W3 streamdag from S3 (moto server + s3fs). Placeholder: the S3 path is not benchmarked yet."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from benchmarks.workloads import Inputs


def make(inputs: Inputs) -> Callable[[], Iterator]:
    raise NotImplementedError("W3 (moto S3 server + s3fs) is not benchmarked yet")
