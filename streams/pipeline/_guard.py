"""The redelivery guard: a record at or below the offset a row last applied, on the same cluster, is a redelivery."""

from __future__ import annotations

from typing import Protocol

from aiokafka.admin import AIOKafkaAdminClient

__all__ = ["ClusterIdentity", "Guarded", "is_redelivery", "mark_applied"]


class Guarded(Protocol):
    """A table row that remembers the last source record it applied."""

    applied_offset: int
    applied_cluster: str


def is_redelivery(row: Guarded, offset: int, cluster: str) -> bool:
    """Whether the row applied this record already. Offsets are numbers of one cluster: after a switchover to a
    MirrorMaker 2 copy they say nothing about the copy's records (its partitions may start lower), so a row of
    another cluster guards nothing and the aggregates' own idempotence absorbs what the translated group
    offsets deliver again. A row written before rows knew their cluster ("") counts as this cluster's."""
    return row.applied_cluster in ("", cluster) and offset <= row.applied_offset


def mark_applied(row: Guarded, offset: int, cluster: str) -> None:
    """Records that the row has applied this record of this cluster."""
    row.applied_offset, row.applied_cluster = offset, cluster


class ClusterIdentity:
    """The id of the Kafka cluster the worker reads, asked once (it changes only with a switchover, which
    restarts the workers against the other cluster)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._id: str | None = None

    async def id(self) -> str:
        if self._id is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
            await admin.start()
            try:
                self._id = str((await admin.describe_cluster())["cluster_id"])
            finally:
                await admin.close()
        return self._id
