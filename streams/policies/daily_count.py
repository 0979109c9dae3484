"""A sender's sends on the current UTC day, so a daily quota needs nothing but one small value in its row."""

from __future__ import annotations

from dataclasses import dataclass, replace

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class DailyCount:
    """`sent` sends on UTC day `day` (whole days since the epoch); a new day starts from none."""

    day: int
    sent: int = 0

    @classmethod
    def starting(cls, now: float) -> DailyCount:
        """No sends yet on the day of `now` (seconds since the epoch)."""
        return cls(day=_day(now))

    def on(self, now: float) -> DailyCount:
        """The count on the day of `now`; a clock that went back to an earlier day keeps the later day's count."""
        return self if _day(now) <= self.day else DailyCount(day=_day(now))

    def take(self, now: float, limit: int | None) -> tuple[bool, DailyCount]:
        """Whether one more send fits `limit` (None: no quota, counted all the same) today, and the count after."""
        current = self.on(now)
        if limit is not None and current.sent >= limit:
            return False, current
        return True, replace(current, sent=current.sent + 1)


def _day(now: float) -> int:
    return int(now // SECONDS_PER_DAY)
