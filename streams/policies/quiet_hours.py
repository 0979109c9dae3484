"""Quiet hours in the recipient's own time zone: whether now is quiet, and when it ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class QuietHours:
    """A daily window [start, end) in `timezone`; it may cross midnight (22:00-07:00)."""

    start: time
    end: time
    timezone: str

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {self.timezone!r}") from error
        if self.start == self.end:
            raise ValueError("quiet hours need start != end")

    def is_quiet(self, at: datetime) -> bool:
        """Whether the instant `at` (timezone-aware) falls inside the window, in the recipient's local time."""
        local = at.astimezone(ZoneInfo(self.timezone)).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, at: datetime) -> datetime:
        """The first instant at or after `at` that is not quiet (as a UTC-aware datetime)."""
        if not self.is_quiet(at):
            return at
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        candidate = datetime.combine(local.date(), self.end, tzinfo=zone)
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return candidate.astimezone(ZoneInfo("UTC"))
