"""Fixed test ports, shifted by SWITCHBOARD_TEST_PORT_OFFSET so that checkouts side by side run their suites at once."""

from __future__ import annotations

import os


def shifted(port: int) -> int:
    """The port plus the offset this run was given (0 by default)."""
    return port + int(os.environ.get("SWITCHBOARD_TEST_PORT_OFFSET", "0"))
