"""The arithmetic of the floor: what a message costs in the parts no implementation of the design can skip."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from bench._figures import budget_ms
from connectors._receiver_sinks import RAW_TOPIC
from streams.pipeline._runtime import Topics
from streams.pipeline._templates import TEMPLATE_COMMANDS_TOPIC

__all__ = ["FAUST_TOPICS", "PLAIN_TOPICS", "MessageShape", "UnitCosts", "budget_share", "ceiling", "floor_parts"]

# The topics a faust agent reads (the contact writer's commands with the partition clock's ticks, the dispatcher's
# jobs, the template writer's commands) and the one a plain aiokafka consumer reads (the normaliser's raw webhooks).
FAUST_TOPICS = (Topics("").commands, Topics("").dispatch, TEMPLATE_COMMANDS_TOPIC)
PLAIN_TOPICS = (RAW_TOPIC,)
# One message's HTTP exchanges with WhatsApp: the send, then the sent, delivered and read webhooks.
EXCHANGES = 4


@dataclass(frozen=True)
class UnitCosts:
    """CPU microseconds per unit of work, each measured alone, at its best (keep-alive, large batches)."""

    http_client_us: float  # one exchange, the side that posts and reads the answer
    http_server_us: float  # one exchange, the side that reads, checks the signature, parses and answers
    produce_us: float  # one record, the producing client (acks=all)
    consume_us: float  # one record, a plain aiokafka consumer
    faust_us: float  # one record through a faust agent that does nothing with it, its consumer included
    broker_produce_us: float  # the broker's share of one record produced
    broker_consume_us: float  # ... of one record fetched by a plain consumer
    broker_faust_us: float  # ... of one record fetched (and committed) by the faust agent


@dataclass(frozen=True)
class MessageShape:
    """What one message makes the machine do, counted from an end-to-end run's records per topic."""

    produced: float  # Kafka records written
    consumed_plain: float  # records read by plain aiokafka consumers
    consumed_faust: float  # records read by faust agents
    exchanges: float = EXCHANGES

    @classmethod
    def from_records(cls, records: Mapping[str, int], messages: int) -> MessageShape:
        """The shape of `messages` messages that wrote `records` (topic -> count, the run's prefix removed)."""
        def per(topics: tuple[str, ...]) -> float:
            return sum(records.get(topic, 0) for topic in topics) / messages
        return cls(sum(records.values()) / messages, per(PLAIN_TOPICS), per(FAUST_TOPICS))


def floor_parts(costs: UnitCosts, shape: MessageShape) -> dict[str, float]:
    """CPU milliseconds per message, per part of the floor."""
    return {
        "HTTP exchanges": shape.exchanges * (costs.http_client_us + costs.http_server_us) / 1000,
        "Kafka producing": shape.produced * costs.produce_us / 1000,
        "plain consuming": shape.consumed_plain * costs.consume_us / 1000,
        "faust agents": shape.consumed_faust * costs.faust_us / 1000,
        "broker": (shape.produced * costs.broker_produce_us + shape.consumed_plain * costs.broker_consume_us
                   + shape.consumed_faust * costs.broker_faust_us) / 1000,
    }


def ceiling(floor_ms: float, cores: int) -> float:
    """Messages/s that `cores` could carry if a message cost only the floor."""
    return cores * 1000 / floor_ms if floor_ms > 0 else math.nan


def budget_share(floor_ms: float, cores: int) -> float:
    """The floor as a share of the CPU a message may cost at the target rate."""
    return floor_ms / budget_ms(cores)
