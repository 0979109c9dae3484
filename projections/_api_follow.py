"""The API keeps its read models up to date itself: catch-up rounds into the serving versions, and their pace."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from projections._delivery_stats import DeliveryStatsProjection
from projections._message_status import MessageStatusProjection
from projections._runner import Projection, catch_up, end_offsets
from projections._store import ProjectionStore, RocksStore
from projections._versions import ProjectionVersions
from switchboard.errors import SwitchboardError

__all__ = ["Follower", "ReadModels", "Throughput", "open_read_models"]

_log = logging.getLogger("projections.api")


@dataclass
class ReadModels:
    """The stores the API reads (and its follower writes): message status and delivery statistics."""

    status: ProjectionStore
    stats: ProjectionStore
    versions: dict[str, int] = field(default_factory=dict)  # projection -> the version served, when on disk
    is_open: bool = True

    def close(self) -> None:
        self.is_open = False
        self.status.close()
        self.stats.close()


def open_read_models(root: Path) -> ReadModels:
    """The serving version of both projections under `root` (the first one is created if there is none)."""
    stores: dict[str, ProjectionStore] = {}
    served: dict[str, int] = {}
    try:
        for name in (MessageStatusProjection.name, DeliveryStatsProjection.name):
            versions = ProjectionVersions(root, name)
            served[name] = versions.current() or versions.next()
            versions.switch(served[name])
            stores[name] = _open(versions.path(served[name]))
    except BaseException:
        for store in stores.values():
            store.close()
        raise
    return ReadModels(stores[MessageStatusProjection.name], stores[DeliveryStatsProjection.name], served)


def _open(path: Path) -> RocksStore:
    try:
        return RocksStore(path)
    except Exception as error:  # rocksdict raises a bare Exception, e.g. for the directory's lock
        raise SwitchboardError(f"cannot open {path} ({error}): one process owns a projection's directory; stop "
                               "`switchboard project --follow` or `replay` on it first") from None


class Throughput:
    """Events applied per second, per tenant, over the last `keep` seconds."""

    def __init__(self, keep: int = 300, clock: Callable[[], float] = time.time) -> None:
        self._keep, self._clock = keep, clock
        self._seconds: defaultdict[str, dict[int, int]] = defaultdict(dict)

    def add(self, tenant: str, events: int = 1) -> None:
        now = int(self._clock())
        seconds = self._seconds[tenant]
        seconds[now] = seconds.get(now, 0) + events
        if len(seconds) > self._keep:
            for second in [s for s in seconds if s <= now - self._keep]:
                del seconds[second]

    def recent(self, tenant: str, seconds: int = 60) -> list[tuple[int, int]]:
        """(unix second, events) for each of the last `seconds` seconds, oldest first, zeros included."""
        now, counts = int(self._clock()), self._seconds.get(tenant, {})
        return [(second, counts.get(second, 0)) for second in range(now - seconds + 1, now + 1)]


class _Counted:
    """A projection that also counts the events it is given, per tenant (the console's live chart)."""

    def __init__(self, inner: Projection, throughput: Throughput) -> None:
        self.inner, self.topic, self.throughput = inner, inner.topic, throughput
        self.reads = (*getattr(inner, "reads", ()), "envelope.tenant_id") if hasattr(inner, "reads") else None

    def apply(self, lookup: Callable[[str], Any], event_type: str,
              payload: Mapping[str, Any]) -> dict[str, Any] | tuple[dict[str, Any], list[dict[str, Any]]]:
        self.throughput.add(str(payload["envelope"]["tenant_id"]))
        return self.inner.apply(lookup, event_type, payload)


class Follower:
    """Rounds of: measure how far behind the stores are, then catch both up to the topic's end."""

    def __init__(self, bootstrap: str, prefix: str, models: ReadModels, throughput: Throughput,
                 interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.bootstrap, self.topic = bootstrap, prefix + MessageStatusProjection.topic
        self.models, self.interval, self.clock = models, interval, clock
        self._folds: list[tuple[str, Projection]] = [
            (MessageStatusProjection.name, _Counted(MessageStatusProjection(), throughput)),
            (DeliveryStatsProjection.name, DeliveryStatsProjection())]
        self.behind: int | None = None  # events behind at the start of the last round; None before one
        self.applied: dict[str, int] = {name: 0 for name, _ in self._folds}
        self.last_round: float | None = None  # clock() when the last round completed
        self.last_error: str | None = None

    async def run(self) -> None:
        """Rounds until cancelled; a failed round (Kafka away) is logged and tried again."""
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                _log.warning("api: catching up failed, retrying: %s", self.last_error)
            await asyncio.sleep(self.interval)

    async def round(self) -> None:
        """One measurement and catch-up of both projections to the same end offsets."""
        ends = await end_offsets(self.bootstrap, self.topic)
        self.behind = max(_behind(self._store(name).positions(), ends) for name, _ in self._folds)
        for name, fold in self._folds:
            done = await catch_up(self.bootstrap, self.topic, fold, self._store(name), ends)
            self.applied[name] += done.applied
        self.last_round, self.last_error = self.clock(), None

    def ready(self, within: int, stale_after: float) -> bool:
        """Caught up to within `within` events at a round that completed less than `stale_after` s ago."""
        return (self.behind is not None and self.behind <= within and self.last_round is not None
                and self.clock() - self.last_round <= stale_after)

    def _store(self, name: str) -> ProjectionStore:
        return self.models.status if name == MessageStatusProjection.name else self.models.stats


def _behind(positions: Mapping[int, int], ends: Mapping[int, int]) -> int:
    return sum(max(0, end - positions.get(partition, 0)) for partition, end in ends.items())
