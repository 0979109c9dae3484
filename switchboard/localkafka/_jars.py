"""Fetching the broker's jars from Maven Central once, into a cache reused by every later run."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

from switchboard.errors import KafkaSetupError
from switchboard.localkafka._java import maven_executable

_COMPLETE_MARKER = ".complete"


def pom_path() -> Path:
    """The Maven project that names the broker's artifacts."""
    return Path(str(resources.files("switchboard.localkafka") / "pom.xml"))


def kafka_version() -> str:
    """The single Kafka version used for every Kafka artifact, read from the pom."""
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom_path().read_text())
    if found is None:
        raise KafkaSetupError(f"{pom_path()} does not declare <kafka.version>")
    return found.group(1)


def ensure_jars(cache_root: Path) -> Path:
    """The folder holding the broker's classpath, fetched by Maven on first use."""
    libs = cache_root / f"kafka-{kafka_version()}" / "libs"
    if (libs / _COMPLETE_MARKER).exists():
        print(f"switchboard: Kafka {kafka_version()} jars reused from cache {libs}", file=sys.stderr)
        return libs
    print(f"switchboard: fetching Kafka {kafka_version()} jars from Maven Central into {libs}", file=sys.stderr)
    _copy_dependencies(libs)
    (libs / _COMPLETE_MARKER).write_text(kafka_version())
    return libs


def _copy_dependencies(libs: Path) -> None:
    libs.mkdir(parents=True, exist_ok=True)
    command = [
        maven_executable(), "-B", "-q", "-f", str(pom_path()),
        "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise KafkaSetupError(f"Maven could not fetch the Kafka {kafka_version()} jars:\n{tail}")
