"""The built-in services as pytest params for the resume guards: the worker
services start threads or processes for every case, so they are ``slow``
(``make test-fast`` runs the in-process case; ``make test`` runs all)."""

from __future__ import annotations

import pytest

from streamdag.testing import SERVICES

SERVICE_PARAMS = [
    name if name == "in_process" else pytest.param(name, marks=pytest.mark.slow)
    for name in sorted(SERVICES)
]
