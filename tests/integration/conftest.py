"""One real Kafka broker per test run, shared by every integration test; topics are unique per test."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.pipeline.app import PipelineSettings
from streams.tally import TallyConfig
from switchboard.localkafka import cache_root, ensure_jars, external_bootstrap, kafka_version, local_cluster
from switchboard.topics import ensure_topics
from switchboard.workers import TallyWorker, WorkerProcess
from tests.ports import shifted

TEST_BASE_PORT = shifted(21092)  # apart from the demo's 19092; below the ephemeral range, so no client socket holds it


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest, kafka_libs: Path) -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set (checked), else a fresh local single-broker cluster for this run."""
    external = external_bootstrap()
    if external is not None:
        _announce(request, f"integration tests use KAFKA_BOOTSTRAP_SERVERS={external}")
        yield external
        return
    cluster = local_cluster("test", base_port=TEST_BASE_PORT)
    cluster.stop()
    shutil.rmtree(cluster.directory, ignore_errors=True)
    cluster.start(cache_root())
    _announce(request, f"\nintegration tests use a local Apache Kafka {cluster.version} (KRaft) broker, "
                       f"reporting metadata.version {cluster.reported_metadata_version()}, "
                        f"at {cluster.bootstrap_servers}, data in {cluster.directory}")
    try:
        yield cluster.bootstrap_servers
    finally:
        cluster.stop()


_BROKER_NOTES = pytest.StashKey[list[str]]()


def _announce(request: pytest.FixtureRequest, line: str) -> None:
    """Keeps a line for the run's summary, so the log shows which broker the tests really used."""
    request.config.stash.setdefault(_BROKER_NOTES, []).append(line.strip())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for line in config.stash.get(_BROKER_NOTES, []):
        terminalreporter.write_line(line)


@pytest.fixture
def unique_prefix(request: pytest.FixtureRequest) -> str:
    """A topic/group prefix no other test uses: the test's name plus a random suffix."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:40]
    return f"it-{name}-{uuid.uuid4().hex[:8]}-"


@pytest.fixture(scope="session")
def kafka_libs(request: pytest.FixtureRequest) -> Path:
    """The broker's jars (kafka-clients among them), fetched once per cache; the summary says which happened."""
    cached = (cache_root() / f"kafka-{kafka_version()}" / "libs" / ".complete").exists()
    libs = ensure_jars(cache_root())
    how = "reused from the cache" if cached else "fetched from Maven Central into the cache"
    _announce(request, f"Kafka {kafka_version()} jars {how} ({libs})")
    return libs


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[TallyConfig], TallyWorker]]:
    """Starts tally workers for a test and makes sure none outlives it, whatever the test's outcome."""
    started: list[TallyWorker] = []

    def start(config: TallyConfig) -> TallyWorker:
        worker = WorkerProcess(config, tmp_path / f"{config.worker_name}.log")
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.is_running():
            worker.kill()


StartPipeline = Callable[..., Awaitable[WorkerProcess[PipelineSettings]]]


@pytest.fixture
def start_pipeline(tmp_path: Path, kafka_bootstrap: str, unique_prefix: str) -> Iterator[StartPipeline]:
    """Starts pipeline workers for a test; none outlives it."""
    started: list[WorkerProcess[PipelineSettings]] = []

    async def start(config: Path, name: str = "pipeline-1", **options: object) -> WorkerProcess[PipelineSettings]:
        settings = PipelineSettings(bootstrap=kafka_bootstrap, data_dir=str(tmp_path / name / "state"),
                                    config_path=str(config), app_id=f"{unique_prefix}pipeline",
                                    topic_prefix=unique_prefix, worker_name=name, **options)  # type: ignore[arg-type]
        await ensure_topics(kafka_bootstrap, settings.topic_specs())  # before any test record is produced
        worker = WorkerProcess(settings, tmp_path / f"{name}.log")
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.is_running():
            worker.kill()


async def until_committed(bootstrap: str, group: str, topic: str, timeout: float = 60) -> None:
    """Until the group's committed offsets reach what the topic's partitions hold now (records added later do not
    count; a partition without a commit counts as at 0)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await probe.start()
    try:
        [described] = await admin.describe_topics([topic])
        ends = await probe.end_offsets([TopicPartition(topic, p["partition"]) for p in described["partitions"]])
        assert ends, f"{topic} has no partitions"
        committed: dict[TopicPartition, int] = {}
        for _ in range(int(timeout / 0.2)):
            offsets = await admin.list_consumer_group_offsets(group)
            committed = {tp: max(meta.offset, 0) for tp, meta in offsets.items()}
            if all(committed.get(tp, 0) >= end for tp, end in ends.items()):
                return
            await asyncio.sleep(0.2)  # polling the group's offsets: there is no event to wait on
        raise TimeoutError(f"{group} did not commit {ends} within {timeout} s (last {committed})")
    finally:
        await probe.stop()
        await admin.close()


# The PostgreSQL sink's fixtures live beside its helpers; importing them here makes them the run's fixtures.
from tests.integration.postgres_support import postgres_database, postgres_dsn  # noqa: E402, F401
