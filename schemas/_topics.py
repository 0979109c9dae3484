"""Which Kafka topic each event family goes to, and which field of the event is the record key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from schemas._registry import Registry, default_registry

__all__ = ["EVENT_TOPICS", "EventTopic", "Route", "route"]


@dataclass(frozen=True)
class EventTopic:
    """An event topic: its name, the dotted path of the key in each event, and its aggregate type if fixed."""

    family: str
    name: str
    key_path: str
    aggregate_type: str | None

    def key_of(self, event: Mapping[str, Any]) -> str:
        """The record key of an event on this topic."""
        value: Any = event
        for part in self.key_path.split("."):
            value = value[part]
        return str(value)


@dataclass(frozen=True)
class Route:
    """Where one event goes: topic name and record key."""

    topic: str
    key: str


# Keys decide partitions, and partitions decide order: each key's events stay in order.
# Messages are keyed by contact so a contact's messages and contact events share partition numbers
# (co-partitioned with sb.events.contact), which lets one worker see consent and sends together.
EVENT_TOPICS: Mapping[str, EventTopic] = MappingProxyType(
    {
        "business": EventTopic("business", "sb.events.business", "envelope.aggregate_id", None),
        "message": EventTopic("message", "sb.events.message", "contact_id", "Message"),
        "contact": EventTopic("contact", "sb.events.contact", "envelope.aggregate_id", "Contact"),
        "template": EventTopic("template", "sb.events.template", "envelope.aggregate_id", "Template"),
        "tenant": EventTopic("tenant", "sb.events.tenant", "envelope.aggregate_id", "Tenant"),
        "followup": EventTopic("followup", "sb.events.followup", "contact_id", None),  # derived, not an aggregate
    }
)


def route(event_type: str, event: Mapping[str, Any], registry: Registry | None = None) -> Route:
    """Topic and key for an event of this type."""
    family = (registry or default_registry()).latest(event_type).family
    topic = EVENT_TOPICS[family]
    return Route(topic.name, topic.key_of(event))
