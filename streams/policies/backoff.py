"""Retry policy: exponential backoff with full jitter and a cap, then a dead letter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt n (1-based) waits uniform(0, min(cap, base * factor**(n-1))) seconds; after max_attempts, give up."""

    max_attempts: int = 5
    base_seconds: float = 1.0
    factor: float = 2.0
    cap_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_seconds <= 0 or self.factor < 1 or self.cap_seconds < self.base_seconds:
            raise ValueError(f"invalid retry policy {self}")

    def exhausted(self, attempts_made: int) -> bool:
        """True when no further attempt is allowed after `attempts_made` attempts."""
        return attempts_made >= self.max_attempts

    def ceiling(self, attempts_made: int) -> float:
        """The largest delay before the next attempt."""
        return min(self.cap_seconds, self.base_seconds * self.factor ** max(0, attempts_made - 1))

    def delay(self, attempts_made: int, rng: random.Random) -> float:
        """Full jitter (AWS architecture blog): spreads retries so a provider outage does not end in a stampede."""
        return rng.uniform(0.0, self.ceiling(attempts_made))
