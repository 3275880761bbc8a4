"""Whether this code runs in a worker of torch's own DataLoader, asked
without importing torch (a process that never imported it is in none)."""

from __future__ import annotations

import sys
from typing import Any

_TORCH_DATA = "torch.utils.data"


def torch_worker_info() -> Any:
    """torch's ``get_worker_info()`` (None outside its DataLoader's workers)."""
    data = sys.modules.get(_TORCH_DATA)
    return None if data is None else data.get_worker_info()
