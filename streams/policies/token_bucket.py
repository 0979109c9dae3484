"""A token bucket whose whole state is two numbers, so it can live in a changelogged table row."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class TokenBucket:
    """`rate` tokens per second up to `burst`; `tokens` as of `updated_at` (seconds, any monotonic clock).

    Exact across workers because each bucket is a table row keyed by sender, and a key lives in one partition.
    """

    rate: float
    burst: float
    tokens: float
    updated_at: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a bucket needs rate > 0 and burst >= 1, not rate={rate}, burst={burst}")
        return cls(rate=rate, burst=burst, tokens=burst, updated_at=now)

    def refilled(self, now: float) -> TokenBucket:
        """The bucket at `now`; time never runs backwards for a bucket (a late clock adds nothing)."""
        elapsed = max(0.0, now - self.updated_at)
        return replace(self, tokens=min(self.burst, self.tokens + elapsed * self.rate),
                       updated_at=max(now, self.updated_at))

    def take(self, now: float, cost: float = 1.0) -> tuple[bool, TokenBucket]:
        """Whether `cost` tokens were available at `now`, and the bucket afterwards."""
        current = self.refilled(now)
        if current.tokens + 1e-9 < cost:
            return False, current
        return True, replace(current, tokens=current.tokens - cost)

    def paused(self, now: float, seconds: float) -> TokenBucket:
        """The bucket emptied for `seconds` from `now` (the provider said slow down), then refilling at its rate."""
        return replace(self.refilled(now), tokens=-max(0.0, seconds) * self.rate)

    def wait_time(self, now: float, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens will be available (0 if they are now)."""
        missing = cost - self.refilled(now).tokens
        return max(0.0, missing / self.rate)
