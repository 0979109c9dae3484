"""Event ids are uuid5 of the aggregate position, whatever computes them: they are part of the log's meaning."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from aggregates import Contact, Message
from aggregates._base import AGGREGATE_ID_NAMESPACE
from schemas import EVENT_ID_NAMESPACE, event_id


@given(st.sampled_from(["Message", "Contact", "Template", "Tenant"]), st.text(), st.integers(1, 2**31))
def test_event_id_is_the_uuid5_of_the_position(aggregate_type: str, aggregate_id: str, version: int) -> None:
    expected = uuid.uuid5(EVENT_ID_NAMESPACE, f"{aggregate_type}:{aggregate_id}:{version}")
    assert event_id(aggregate_type, aggregate_id, version) == str(expected)


def test_a_known_event_id_never_changes() -> None:
    assert event_id("Message", "3ccb9cac-069e-5526-a1a3-31ea4dc239ab", 1) == str(
        uuid.uuid5(EVENT_ID_NAMESPACE, "Message:3ccb9cac-069e-5526-a1a3-31ea4dc239ab:1"))


@given(st.text(min_size=1), st.text(min_size=1))
def test_cached_aggregate_ids_are_the_uuid5_of_the_natural_key(tenant: str, key: str) -> None:
    for _ in range(2):  # the second answer comes from the cache
        assert Message.create_id(tenant, key) == uuid.uuid5(AGGREGATE_ID_NAMESPACE, f"message:{tenant}:{key}")
        assert Contact.create_id(tenant, key) == uuid.uuid5(AGGREGATE_ID_NAMESPACE, f"contact:{tenant}:{key}")
