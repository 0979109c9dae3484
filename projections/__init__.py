"""Read models built from the event log, each rebuildable from history and compared with its live twin."""

from projections._delivery_stats import DeliveryStatsProjection, funnel_key, latency_key, rates, usage_key
from projections._message_status import MessageStatusProjection, message_key, recipient_key
from projections._runner import Progress, Projection, catch_up, differences, end_offsets, print_progress
from projections._store import MemoryStore, ProjectionStore, RocksStore

PROJECTIONS: dict[str, type[MessageStatusProjection] | type[DeliveryStatsProjection]] = {
    MessageStatusProjection.name: MessageStatusProjection,
    DeliveryStatsProjection.name: DeliveryStatsProjection,
}

__all__ = [
    "PROJECTIONS",
    "DeliveryStatsProjection",
    "MemoryStore",
    "MessageStatusProjection",
    "Progress",
    "Projection",
    "ProjectionStore",
    "RocksStore",
    "catch_up",
    "differences",
    "end_offsets",
    "funnel_key",
    "latency_key",
    "message_key",
    "print_progress",
    "rates",
    "recipient_key",
    "usage_key",
]
