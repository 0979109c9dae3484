"""A sliding second of sends, counted in twentieths, so that no second ever holds more than a provider's rate."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

SLICES_PER_SECOND = 20


@dataclass(frozen=True)
class SendWindow:
    """At most `limit` sends in any one-second span, however the spans are placed.

    A provider counts its rate per sliding second (WhatsApp answers 130429 to every send over it), while a token
    bucket admits its whole burst plus a second's refill within one second: up to twice the rate. The window keeps
    the sends of the current slice and of the full second before it, a span that covers every second which
    could still contain a send made now, so admitting only while their sum is under `limit` bounds every such
    second. It costs at most a slice (50 ms) of each second's rate in a steady stream.
    """

    limit: int
    counts: tuple[int, ...]  # sends per slice, oldest first; the last is the slice `newest` is in
    newest: int  # the index of the newest slice (seconds * SLICES_PER_SECOND, floored)

    @classmethod
    def empty(cls, per_second: float, now: float) -> SendWindow:
        """No sends yet."""
        return cls(limit=window_limit(per_second), counts=(0,) * (SLICES_PER_SECOND + 1), newest=_slice(now))

    @property
    def sent(self) -> int:
        """Sends in the span the window covers."""
        return sum(self.counts)

    def moved_to(self, now: float) -> SendWindow:
        """The window at `now`: slices older than a second before now's slice are forgotten; a late clock adds none."""
        newest = _slice(now)
        if newest <= self.newest:
            return self
        shift = min(len(self.counts), newest - self.newest)
        return replace(self, counts=self.counts[shift:] + (0,) * shift, newest=newest)

    def take(self, now: float) -> tuple[bool, SendWindow]:
        """Whether a send may go at `now`, and the window afterwards (with the send counted if it may)."""
        current = self.moved_to(now)
        if current.sent >= current.limit:
            return False, current
        return True, replace(current, counts=(*current.counts[:-1], current.counts[-1] + 1))

    def recounted(self, made_at: float, settled_at: float) -> SendWindow:
        """A send counted when it was made, counted again at `settled_at` instead.

        The provider counts a send when it arrives, some time before its answer: a send queued behind others of its
        batch can arrive well after it was made, so only its answer's time bounds its arrival. A send whose first
        count has already left the window (or was never in it: a restored row) is only added.
        """
        current = self.moved_to(settled_at)
        age = current.newest - _slice(made_at)  # slices from the send to its answer
        if age <= 0:
            return current  # already counted in the newest slice
        counts = list(current.counts)
        if age < len(counts) and counts[-1 - age] > 0:
            counts[-1 - age] -= 1
        counts[-1] += 1
        return replace(current, counts=tuple(counts))

    def with_limit(self, per_second: float) -> SendWindow:
        """The same sends under a new rate (the pipeline's declaration was reloaded)."""
        return replace(self, limit=window_limit(per_second))


def window_limit(per_second: float) -> int:
    """Whole sends a second; a rate under one a second still admits one (its token bucket spaces them further)."""
    if per_second <= 0:
        raise ValueError(f"a send window needs per_second > 0, not {per_second}")
    return max(1, math.floor(per_second + 1e-9))


def _slice(now: float) -> int:
    return math.floor(now * SLICES_PER_SECOND)
