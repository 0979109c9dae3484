"""The floor's arithmetic: a message's shape from a run's records per topic, the floor per part, its ceiling."""

from __future__ import annotations

import math

import pytest

from bench._floor import MessageShape, UnitCosts, budget_share, ceiling, floor_parts

COSTS = UnitCosts(http_client_us=120, http_server_us=80, produce_us=10, consume_us=4, faust_us=70,
                  broker_produce_us=10, broker_consume_us=2, broker_faust_us=5)


def test_the_shape_counts_faust_and_plain_reads_by_topic() -> None:
    # The template writer's commands count as faust reads too (a wrong topic name once left them out).
    records = {"sb.commands": 4_000, "sb.commands.template": 1_000, "sb.dispatch": 1_000, "sb.webhooks.raw": 3_000,
               "sb.events.message": 8_000, "pipeline-contacts-changelog": 3_000}
    shape = MessageShape.from_records(records, 1_000)
    assert shape == MessageShape(produced=20.0, consumed_plain=3.0, consumed_faust=6.0, exchanges=4)


def test_the_floor_is_each_part_times_its_count() -> None:
    parts = floor_parts(COSTS, MessageShape(produced=20, consumed_plain=3, consumed_faust=6))
    assert parts == pytest.approx({"HTTP exchanges": 0.8, "Kafka producing": 0.2, "plain consuming": 0.012,
                                   "faust agents": 0.42, "broker": 0.2 + 0.006 + 0.03})


def test_the_ceiling_is_the_cores_over_the_floor() -> None:
    assert ceiling(1.6, cores=2) == pytest.approx(1_250)
    assert math.isnan(ceiling(0.0, cores=2))


def test_the_budget_share_compares_the_floor_with_1000_messages_a_second() -> None:
    assert budget_share(2.5, cores=2) == pytest.approx(1.25)
