"""Read models built from the event log, each rebuildable from history and compared with its live twin."""

from projections._message_status import MessageStatusProjection, message_key, recipient_key
from projections._runner import Progress, Projection, catch_up, differences, end_offsets, print_progress
from projections._store import MemoryStore, ProjectionStore, RocksStore

PROJECTIONS: dict[str, type[MessageStatusProjection]] = {MessageStatusProjection.name: MessageStatusProjection}

__all__ = [
    "PROJECTIONS",
    "MemoryStore",
    "MessageStatusProjection",
    "Progress",
    "Projection",
    "ProjectionStore",
    "RocksStore",
    "catch_up",
    "differences",
    "end_offsets",
    "message_key",
    "print_progress",
    "recipient_key",
]
