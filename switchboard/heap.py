"""Python's cyclic garbage collector, set for a long-running Switchboard process."""

from __future__ import annotations

import gc
import os
from typing import Final

from switchboard.errors import SwitchboardError

__all__ = ["ENV_GC", "SERVICE_THRESHOLDS", "settle"]

ENV_GC: Final = "SWITCHBOARD_GC"
# Allocations between collections of the young generation, then young collections between middle ones and middle
# ones between full ones. Python's defaults are (700, 10, 10).
SERVICE_THRESHOLDS: Final = (50_000, 20, 100)
_MODES: Final = ("service", "python")


def settle() -> bool:
    """Collects the young generation every 50,000 allocations instead of every 700; False, with Python's defaults
    left, when SWITCHBOARD_GC is `python`.

    A worker allocates hundreds of short-lived containers for each record and keeps few of them, so at the defaults
    most collections find nothing, and the middle and full ones walk the live rows and every object the imports made
    again. The pipeline worker spent 0.5-0.6 ms of a message's 4.1-4.8 ms in them, more as its heap grew
    (BENCHMARKS.md, "The garbage collector"). Garbage in cycles is still collected, a little later.
    """
    mode = os.environ.get(ENV_GC) or "service"
    if mode not in _MODES:
        raise SwitchboardError(f"{ENV_GC}={mode!r} is not one of {', '.join(_MODES)}")
    if mode == "python":
        return False
    gc.set_threshold(*SERVICE_THRESHOLDS)
    return True
