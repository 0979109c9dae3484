"""MirrorMaker 2 for disaster recovery (docker/mirrormaker/mm2.properties): it parses as Java reads it, replicates
every sb.* topic family the code uses and the pipeline's changelogs under the same names, one way, and checkpoints
the consumer groups' offsets into the DR cluster."""

from __future__ import annotations

from typing import Any

import pytest

from streams.pipeline.app import TABLES, PipelineSettings
from tests.unit import monitoring_checks as mc
from tests.unit.compose_checks import parse_command, switchboard_parser


def pipeline_changelogs() -> set[str]:
    """The changelog topics of the pipeline's tables, named as the pipeline names them (default app id)."""
    args, _ = parse_command(switchboard_parser(), ["pipeline", "--bootstrap", "x:9092", "--data-dir", "/tmp/x"])
    settings = PipelineSettings(bootstrap="x:9092", app_id=args.app_id, data_dir="/tmp/x")
    return {settings.changelog(table) for table in TABLES}


def consumer_groups() -> set[str]:
    """The default consumer groups of the parts that commit offsets: the pipeline (its app id), the normaliser,
    status callbacks."""
    parser = switchboard_parser()
    groups = {parse_command(parser, ["pipeline", "--bootstrap", "x", "--data-dir", "y"])[0].app_id}
    groups |= {parse_command(parser, [part])[0].group for part in ("normaliser", "callbacks")}
    return groups


def test_the_properties_pass() -> None:
    problems = mc.mm2_problems(mc.load_properties(), mc.code_topic_names(), pipeline_changelogs(), consumer_groups())
    assert problems == []


def test_every_topic_family_is_found_in_the_code() -> None:
    assert {"sb.events.business", "sb.events.message", "sb.events.contact", "sb.events.template",
            "sb.events.tenant", "sb.events.followup", "sb.commands", "sb.commands.template", "sb.dispatch",
            "sb.webhooks.raw", "sb.rejects", "sb.deadletters"} <= mc.code_topic_names()
    assert "switchboard-pipeline-contacts-changelog" in pipeline_changelogs()
    assert consumer_groups() == {"switchboard-pipeline", "switchboard-normaliser", "switchboard-callbacks"}


def _broken(old: str, new: str) -> list[str]:
    text = mc.MM2_FILE.read_text()
    assert old in text, old
    properties = mc.parse_properties(text.replace(old, new))
    return mc.mm2_problems(properties, mc.code_topic_names(), pipeline_changelogs(), consumer_groups())


@pytest.mark.parametrize(("old", "new"), [
    ("primary->dr.topics = sb\\\\..*, switchboard-.*-changelog", "primary->dr.topics = sb\\\\.events\\\\..*"),
    ("primary->dr.topics = sb\\\\..*, switchboard-.*-changelog", "primary->dr.topics = sb\\..*, switchboard-.*"),
    ("primary->dr.topics = sb\\\\..*, switchboard-.*-changelog", "primary->dr.topics = sb\\\\..*"),
    ("primary->dr.topics.exclude = ", "primary->dr.topics.exclude = .*\\\\.deadletters, "),
    ("replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
     "replication.policy.class = org.apache.kafka.connect.mirror.DefaultReplicationPolicy"),
    ("primary->dr.sync.group.offsets.enabled = true", "primary->dr.sync.group.offsets.enabled = false"),
    ("primary->dr.emit.checkpoints.enabled = true", "primary->dr.emit.checkpoints.enabled = false"),
    ("dr->primary.enabled = false", "dr->primary.enabled = true"),
    ("primary->dr.groups = switchboard-.*", "primary->dr.groups = switchboard-pipeline"),
    ("primary->dr.offset-syncs.topic.location = target", "primary->dr.offset-syncs.topic.location = source"),
    ("checkpoints.topic.replication.factor = 3", "checkpoints.topic.replication.factor = 1"),
    ("primary->dr.topics = sb\\\\..*", "primary->dr.topics = sb\\\\..*["),
])
def test_a_broken_file_is_reported(old: str, new: str) -> None:
    assert _broken(old, new) != []


@pytest.mark.parametrize(("text", "expected"), [
    ("a = b", {"a": "b"}),
    ("a=b\nc: d\ne f", {"a": "b", "c": "d", "e": "f"}),
    ("# comment\n! comment\n\n  a = b  ", {"a": "b  "}),
    ("regex = sb\\\\..*", {"regex": "sb\\..*"}),
    ("regex = sb\\..*", {"regex": "sb..*"}),  # Java drops an unknown escape's backslash
    ("primary->dr.enabled = true", {"primary->dr.enabled": "true"}),
    ("list = a, \\\n       b", {"list": "a, b"}),
    ("key\\ with\\ spaces = v", {"key with spaces": "v"}),
    ("u = \\u0041\\t", {"u": "A\t"}),
    ("empty =", {"empty": ""}),
])
def test_java_properties(text: str, expected: dict[str, Any]) -> None:
    assert mc.parse_properties(text) == expected


def test_a_repeated_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="repeated key 'a'"):
        mc.parse_properties("a = 1\na = 2")


# ---- the mirror-maker service's health check (docker/mirrormaker/healthcheck.sh) ----

HEALTHCHECK = mc.DOCKER_DIR / "mirrormaker" / "healthcheck.sh"


def _run_check(tmp_path: Any, offsets: str) -> tuple[int, str]:
    """Runs the script with a stand-in kafka-get-offsets.sh that prints `offsets` (and a log line, as Kafka's tools
    may)."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "kafka-get-offsets.sh"
    tool.write_text(f"#!/bin/bash\necho '[2026-01-01 00:00:00,000] INFO AdminClientConfig values: a:1:2'\n"
                    f"printf '{offsets}'\n")
    tool.chmod(0o755)
    done = subprocess.run(["bash", str(HEALTHCHECK), "dr-kafka-1:9092"], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "KAFKA_BIN": str(bin_dir),
                               "MM2_HEALTH_STATE": str(tmp_path / "seen")}, check=False)
    return done.returncode, done.stdout + done.stderr


def test_heartbeats_that_keep_coming_are_healthy(tmp_path: Any) -> None:
    assert _run_check(tmp_path, "heartbeats:0:10\\n") == (0, "healthy: 10 heartbeats\n")
    assert _run_check(tmp_path, "heartbeats:0:12\\n")[0] == 0
    code, said = _run_check(tmp_path, "heartbeats:0:12\\n")
    assert (code, said) == (1, "unhealthy: no heartbeat since the previous check (12 records)\n")


def test_no_heartbeats_topic_is_unhealthy(tmp_path: Any) -> None:
    code, said = _run_check(tmp_path, "")
    assert code == 1
    assert "no heartbeats topic with records" in said
