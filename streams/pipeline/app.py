"""The pipeline worker: triggers, the contact writer and the dispatcher as faust agents, with a partition clock."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import faust
from faust.serializers import codecs
from mode import Service
from prometheus_client import CollectorRegistry

from streams import _faust_fixes
from streams.observability import DispatchMetrics, StageMetrics, install_endpoints, is_ready
from streams.pipeline._fence import Fence
from streams.pipeline._guard import ClusterIdentity
from streams.pipeline._runtime import Runtime, Topics
from streams.pipeline._template_agent import TemplateAgent
from streams.pipeline._templates import TemplateTopics
from streams.tally import service_worker
from switchboard.config import PipelineWatcher
from switchboard.followers import EventFollower
from switchboard.groups import describe_group
from switchboard.kafka_io import MURMUR2_PARTITIONER
from switchboard.topics import AUDIT_LOG_CONFIG, TopicSpec, ensure_topics

__all__ = ["PipelineSettings", "build_app", "run_pipeline"]

_log = logging.getLogger(__name__)
# Commands and dispatch jobs are inputs, not history (the writer records every decision as an event), and the
# partition clock ticks into them: a week covers any outage we would replay them through.
COMMAND_TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}
# Table changelogs keep the latest row per key. We create them before faust starts: faust declares them
# itself, but a batch can write a row before its own declaration has reached the consumer's metadata.
CHANGELOG_CONFIG = {"cleanup.policy": "compact"}
# RocksDB keeps one database per table partition (6 tables x 6 partitions by default). faust's defaults give each
# a 64 MiB memtable (up to 3) and a 2 GiB block cache: a worker's memory grew with its writes, not its state.
# Reads that miss the small block cache are served from the OS page cache (BENCHMARKS.md: same rate, less memory).
ROCKSDB_OPTIONS = {"write_buffer_size": 2 * 2**20, "max_write_buffer_number": 2, "block_cache_size": 2**20}
# Due timers are not a table: each contact row knows its next timer, and the runtime indexes them in memory.
TABLES = ("contacts", "senders", "sender_index", "dispatched", "templates")


@dataclass(frozen=True)
class PipelineSettings:
    """Where a pipeline worker connects, what it reads its declaration from and where it keeps local state."""

    bootstrap: str
    data_dir: str
    config_path: str = "pipeline.toml"
    app_id: str = "switchboard-pipeline"
    topic_prefix: str = ""
    worker_name: str = "pipeline-1"
    partitions: int = 6
    replication: int = -1
    web_host: str = "127.0.0.1"
    web_port: int | None = None
    tick_seconds: float = 0.25  # the partition clock: how often due timers and waiting jobs are looked at
    batch_max: int = 500
    batch_within: float = 0.05
    send_concurrency: int = 64
    ready_lag: int = 10_000  # /readyz answers 503 while a partition is further behind than this

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def topic_specs(self) -> list[TopicSpec]:
        """Every topic the pipeline reads or writes; faust creates its tables' compacted changelogs itself."""
        t, n, r = self.topics, self.partitions, self.replication
        return [TopicSpec(t.commands, n, r, COMMAND_TOPIC_CONFIG), TopicSpec(t.dispatch, n, r, COMMAND_TOPIC_CONFIG),
                *(TopicSpec(name, n, r, AUDIT_LOG_CONFIG) for name in
                  (t.message_events, t.contact_events, t.business_events, t.deadletters)),
                *(TopicSpec(self.changelog(table), n, r, CHANGELOG_CONFIG) for table in TABLES),
                TopicSpec(TemplateTopics(self.topic_prefix).commands, n, r, COMMAND_TOPIC_CONFIG),
                TopicSpec(TemplateTopics(self.topic_prefix).events, n, r, AUDIT_LOG_CONFIG)]

    def table_name(self, table: str) -> str:
        return f"{self.topic_prefix}{table}"

    def changelog(self, table: str) -> str:
        """faust's name for a table's changelog topic."""
        return f"{self.app_id}-{self.table_name(table)}-changelog"

    def command_line(self) -> list[str]:
        """The `switchboard` arguments that run this worker."""
        return ["pipeline", "--bootstrap", self.bootstrap, "--config", self.config_path, "--app-id", self.app_id,
                "--topic-prefix", self.topic_prefix, "--data-dir", self.data_dir, "--name", self.worker_name,
                "--partitions", str(self.partitions), "--replication", str(self.replication),
                "--web-host", self.web_host, *(["--web-port", str(self.web_port)] if self.web_port else []),
                "--ready-lag", str(self.ready_lag),
                "--batch-max", str(self.batch_max), "--batch-within", str(self.batch_within)]


class _StateCodec(codecs.Codec):
    """Table rows (dataclasses holding aggregates) as pickles; only our workers write the changelog topics.

    A changelog is derived state: after an incompatible change to these classes it is rebuilt by replaying the
    event topics, which stay the source of truth.
    """

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, bytes):
            return obj  # a row the runtime has pickled already (its rollback image)
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def _loads(self, s: bytes) -> Any:
        return pickle.loads(s)  # our own changelog, written only by our workers


codecs.register("switchboard-state", _StateCodec())


def build_app(settings: PipelineSettings, watcher: PipelineWatcher) -> faust.App:
    """A faust app with three agents (concurrency 1 each: faust #606 loses offsets with more) and four tables."""
    _faust_fixes.apply()
    app = faust.App(
        settings.app_id, broker=[f"kafka://{server}" for server in settings.bootstrap.split(",")],
        store="rocksdb://", datadir=settings.data_dir, topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication, consumer_auto_offset_reset="earliest",
        web_enabled=settings.web_port is not None, web_bind=settings.web_host, web_port=settings.web_port or 6066,
        processing_guarantee="at_least_once", producer_linger=0.002, producer_acks=-1,
        producer_partitioner=MURMUR2_PARTITIONER,  # faust's default too, with each key's hash remembered
        # A worker that dies is noticed after 10 s instead of faust's 60: its partitions move that much sooner.
        broker_session_timeout=10.0, broker_heartbeat_interval=3.0,
    )
    topics, n = settings.topics, settings.partitions
    # Raw values, parsed by the agents: a record faust cannot deserialize would be dropped unseen (docs/FAULTS.md).
    commands = app.topic(topics.commands, key_type=str, value_serializer="raw", partitions=n)
    dispatch = app.topic(topics.dispatch, key_type=str, value_serializer="raw", partitions=n)
    business = app.topic(topics.business_events, key_type=str, value_serializer="raw", partitions=n)
    tables = {name: _state_table(app, settings.table_name(name), n) for name in TABLES}
    registry = CollectorRegistry()
    metrics = {stage: StageMetrics(stage, registry) for stage in ("triggers", "writer", "dispatch", "templates")}
    install_endpoints(app, registry, ready_lag=settings.ready_lag)
    cluster = ClusterIdentity(settings.bootstrap)  # the rows' offsets are this cluster's numbers (_guard.py)
    fence = Fence(lambda: _group_generation(app), lambda: _member_id(app),
                  lambda: _members(settings.bootstrap, settings.app_id))
    runtime = Runtime(app, topics, watcher, tables, metrics, settings.send_concurrency, cluster, fence,
                      DispatchMetrics(registry))

    async def forget_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        runtime.partitions_revoked(revoked)

    async def forget_assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        runtime.partitions_assigned(assigned)

    app.on_partitions_revoked.connect(forget_revoked, weak=False)  # type: ignore[arg-type]  # signal's own type
    app.on_partitions_assigned.connect(forget_assigned, weak=False)  # type: ignore[arg-type]  # signal's own type
    batch = (settings.batch_max, settings.batch_within)

    @app.agent(business, concurrency=1)
    async def triggers(stream: faust.StreamT[Any]) -> None:
        async for events in _batches(stream, *batch):
            await _or_die(runtime.triggers_batch(events))

    @app.agent(commands, concurrency=1)
    async def contact_writer(stream: faust.StreamT[Any]) -> None:
        async for events in _batches(stream, *batch):
            await _or_die(runtime.writer_batch(events))

    @app.agent(dispatch, concurrency=1)
    async def dispatcher(stream: faust.StreamT[Any]) -> None:
        async for events in _batches(stream, *batch):
            await _or_die(runtime.dispatch_batch(events))

    template_commands = app.topic(TemplateTopics(topics.prefix).commands, key_type=str, value_serializer="raw",
                                  partitions=n)
    templates = TemplateAgent(app, topics.prefix, topics.deadletters, tables["templates"], metrics["templates"],
                              cluster, fence)

    @app.agent(template_commands, concurrency=1)
    async def template_writer(stream: faust.StreamT[Any]) -> None:
        async for events in _batches(stream, *batch):
            await _or_die(templates.batch(events))

    @app.timer(settings.tick_seconds)  # type: ignore[untyped-decorator]  # faust's decorator is untyped
    async def partition_clock() -> None:
        if is_ready(app):
            await _tick(app, {topics.commands, topics.dispatch})

    @app.task  # type: ignore[untyped-decorator]  # faust's decorator is untyped
    async def watch_config() -> None:
        watcher.start()

    template_follower = EventFollower(settings.bootstrap, TemplateTopics(topics.prefix).events,
                                      runtime.templates.apply, "the template gate")

    @app.task  # type: ignore[untyped-decorator]  # faust's decorator is untyped
    async def follow_templates() -> None:
        try:
            await template_follower.start()
            runtime.templates.caught_up()
            await template_follower.followed()
        except Exception:  # the gate only spares the provider a refusal: sends go on without it
            runtime.templates.forget()
            _log.exception("template gate: cannot follow %s; templates go out unchecked and the provider decides",
                           TemplateTopics(topics.prefix).events)

    @app.service
    class Closer(Service):
        """Closes the channel drivers (their HTTP sessions), the config watcher and the template follower."""

        async def on_stop(self) -> None:
            await runtime.drivers.aclose()
            await runtime.watcher_stop()
            await template_follower.stop()

    return app


def _batches(stream: faust.StreamT[Any], size: int, within: float) -> Any:
    """Batches of events from an agent's stream; acknowledged by faust once the loop body is done with one."""
    return cast(faust.Stream[Any], stream).take_events(size, within)


class _StateRow:
    """The value type of our tables: faust reads a table's codec from `_options.serializer` of its value type
    (for a faust Record), else uses json, for writes and for recovery alike; rows pass through unchanged."""

    _options = SimpleNamespace(serializer="switchboard-state")

    @classmethod
    def from_data(cls, data: Any, *, preferred_type: Any = None) -> Any:
        return data


def _state_table(app: faust.App, name: str, partitions: int) -> Any:
    # faust pops `driver` and `read_only` from the options it is given: each table gets its own dict.
    return app.Table(name, key_type=str, value_type=_StateRow, partitions=partitions, options=dict(ROCKSDB_OPTIONS))


def _group_generation(app: faust.App) -> int:
    """The consumer's group generation as its coordinator client knows it now (aiokafka resets it to -1 the moment
    the coordinator answers that the worker was expelled). faust keeps only the generation of the last assignment
    (`consumer_generation_id`), which does not change until the worker has rejoined: too late for the fence."""
    try:
        return int(app.consumer._thread._consumer._coordinator.generation)  # type: ignore[attr-defined]
    except AttributeError:  # no consumer yet (nothing to fence), or another transport: never fence
        return 0


def _member_id(app: faust.App) -> str:
    """This consumer's member id in the group ("" while it is not a member)."""
    try:
        return str(app.consumer._thread._consumer._coordinator.member_id)  # type: ignore[attr-defined]
    except AttributeError:
        return ""


async def _members(bootstrap: str, group: str) -> set[str]:
    return set((await describe_group(bootstrap, group)).member_ids)


async def _tick(app: faust.App, topic_names: set[str]) -> None:
    """One tick record into every partition this worker owns: timers fire inside the partition's own stream."""
    value = json.dumps({"kind": "tick", "v": 1, "at": time.time()}).encode()
    sent = [await app.producer.send(tp.topic, None, value, tp.partition, None, None)
            for tp in app.assignor.assigned_actives() if tp.topic in topic_names]
    await asyncio.gather(*sent)


async def _or_die(batch: Any) -> None:
    """Runs a batch; if Kafka fails under it, the process exits before faust can acknowledge the batch.

    take_events() acknowledges a batch in a `finally`, even when its body raised: continuing after a failed
    write could commit offsets whose outputs were never written. Exiting loses nothing: the records are read
    again by whichever worker takes the partition.
    """
    try:
        await batch
    except Exception:
        _log.exception("pipeline batch failed; exiting so that its records are processed again")
        logging.shutdown()
        os._exit(70)


def run_pipeline(settings: PipelineSettings) -> int:
    """Creates the topics and the state directory, then runs one worker until SIGTERM or SIGINT."""
    watcher = PipelineWatcher(Path(settings.config_path))
    if settings.partitions != watcher.current.streams.partitions:
        _log.warning("--partitions %s differs from streams.partitions %s in %s", settings.partitions,
                     watcher.current.streams.partitions, settings.config_path)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    default_replication = asyncio.run(ensure_topics(settings.bootstrap, settings.topic_specs()))
    if settings.replication <= 0:
        settings = replace(settings, replication=default_replication)
    os.environ.setdefault("SWITCHBOARD_WORKER", settings.worker_name)
    service_worker(build_app(settings, watcher)).execute_from_commandline()
    return 0
