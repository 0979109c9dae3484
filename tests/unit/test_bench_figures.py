"""The benchmarks' cost arithmetic: cores busy, CPU per message against the 1,000 msg/s budget, Kafka records per
message from end offsets, the ceiling the Kafka client work alone sets, and the broker pids its CPU is read from."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

import pytest

from bench._common import BenchBroker
from bench._figures import BROKER, PhaseCost, budget_ms, busy_cores, kafka_ceiling, records_written, without_prefix
from bench.e2e_bench import E2EResult, paced_figure
from switchboard.localkafka import LocalCluster


def test_busy_cores_is_the_busy_share_of_jiffies_times_the_cores() -> None:
    assert busy_cores((1_000, 10_000), (1_900, 11_000), cores=2) == pytest.approx(1.8)
    assert busy_cores((0, 0), (500, 1_000), cores=4) == pytest.approx(2.0)


def test_busy_cores_of_no_elapsed_time_is_zero() -> None:
    assert busy_cores((5, 9), (5, 9), cores=2) == 0.0


def test_the_budget_at_1000_messages_a_second_is_a_millisecond_per_core() -> None:
    assert budget_ms(2) == pytest.approx(2.0)
    assert budget_ms(8) == pytest.approx(8.0)
    assert budget_ms(2, rate=250) == pytest.approx(8.0)


def test_records_written_sums_partitions_per_topic() -> None:
    before = {("p-sb.commands", 0): 100, ("p-sb.commands", 1): 50, ("p-sb.dispatch", 0): 7}
    after = {("p-sb.commands", 0): 160, ("p-sb.commands", 1): 90, ("p-sb.dispatch", 0): 7}
    assert records_written(before, after) == {"p-sb.commands": 100, "p-sb.dispatch": 0}


def test_a_partition_created_during_the_phase_counts_from_zero() -> None:
    before = {("p-sb.commands", 0): 10}
    after = {("p-sb.commands", 0): 15, ("p-pipeline-contacts-changelog", 0): 42}
    assert records_written(before, after) == {"p-sb.commands": 5, "p-pipeline-contacts-changelog": 42}


def test_topic_names_lose_the_run_s_prefix_even_inside_a_changelog_s_name() -> None:
    written = {"e2e-ab-1w-sb.commands": 5, "e2e-ab-1w-pipeline-e2e-ab-1w-contacts-changelog": 3}
    assert without_prefix(written, "e2e-ab-1w-") == {"sb.commands": 5, "pipeline-contacts-changelog": 3}


def test_the_kafka_ceiling_divides_raw_records_by_records_per_message() -> None:
    assert kafka_ceiling(30_000, 10.0) == pytest.approx(3_000)
    assert math.isnan(kafka_ceiling(30_000, 0.0))


def _cost(**changes: object) -> PhaseCost:
    values: dict[str, object] = {
        "messages": 2_000, "cpu": {"pipeline-1": 5.4, "receiver": 1.2, BROKER: 3.0}, "cores": 2, "busy": 1.93,
        "records": {"sb.commands": 6_000, "sb.events.message": 8_000, "sb.webhooks.raw": 0}}
    values.update(changes)
    return PhaseCost(**values)  # type: ignore[arg-type]


def test_cpu_per_message_per_process_and_in_total() -> None:
    cost = _cost()
    assert cost.cpu_ms() == pytest.approx({"pipeline-1": 2.7, "receiver": 0.6, BROKER: 1.5})
    assert cost.total_cpu_ms == pytest.approx(4.8)
    assert cost.budget_ms == pytest.approx(2.0)
    assert cost.broker_measured


def test_records_per_message_over_every_topic() -> None:
    assert _cost().records_per_message == pytest.approx(7.0)


def test_the_records_line_ranks_topics_and_leaves_out_idle_ones() -> None:
    assert _cost().records_line() == "7.00 (sb.events.message 4.00, sb.commands 3.00)"


def test_the_cpu_line_names_every_process_the_total_and_the_budget() -> None:
    assert _cost().cpu_line() == ("broker 1.50, pipeline-1 2.70, receiver 0.60; total 4.80; "
                                  "budget at 1,000 msg/s on 2 cores 2.00")


def test_an_external_broker_is_said_to_be_not_measured() -> None:
    cost = _cost(cpu={"pipeline-1": 5.4})
    assert not cost.broker_measured
    assert "total 2.70 (broker not measured)" in cost.cpu_line()


def test_the_busy_line_is_cores_busy_of_the_machine_s_cores() -> None:
    assert _cost(busy=1.934).busy_line() == "1.93 of 2 cores"


def test_a_phase_without_messages_has_no_per_message_figures() -> None:
    cost = _cost(messages=0)
    assert math.isnan(cost.total_cpu_ms)
    assert math.isnan(cost.records_per_message)


def test_a_benchmark_s_own_broker_gives_its_nodes_live_pids(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "kafka", brokers=3, base_port=30_000)
    cluster.nodes[0].pid_file.parent.mkdir(parents=True)
    cluster.nodes[0].pid_file.write_text(str(os.getpid()))
    cluster.nodes[1].pid_file.parent.mkdir(parents=True)
    cluster.nodes[1].pid_file.write_text("not a pid")  # node 3 has no pid file at all
    assert BenchBroker("127.0.0.1:30000", cluster).pids() == [os.getpid()]


def test_an_external_broker_has_no_pids_to_measure() -> None:
    assert BenchBroker("kafka.example:9092").pids() is None


def test_the_paced_row_gives_the_offered_rate_and_the_latencies_of_its_own_messages() -> None:
    requested = {f"m{n}": 1_000 + 10 * n for n in range(100)}  # one request every 10 ms: 100 offered a second
    read = {m: at + (200 if n < 99 else 900) for n, (m, at) in enumerate(requested.items())}
    paced = E2EResult(1, requested, read, Counter(), PhaseCost(100, {}, 2, 0.0), offered=100.0)
    name, value = paced_figure(paced)
    assert name == "latency request -> read p50 / p99 at 100 msg/s offered (open loop)"
    assert value == "200 / 900 ms (100 read at 53 msg/s, 0 not)"  # 100 in 1.89 s: the last read came late
