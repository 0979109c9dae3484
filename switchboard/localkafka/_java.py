"""Locating Java 17+ and Maven, the two tools the local broker needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from switchboard.errors import KafkaSetupError

MIN_JAVA = 17


def java_executable() -> str:
    """The `java` to run the broker with: $JAVA_HOME/bin/java, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise KafkaSetupError(
            f"Java {MIN_JAVA} or newer is needed to run the local Kafka broker, and none was found "
            "(looked at $JAVA_HOME and PATH). Install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless) "
            "or set KAFKA_BOOTSTRAP_SERVERS to use an existing cluster."
        )
    _check_java_version(candidate)
    return candidate


def _check_java_version(java: str) -> None:
    banner = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    found = re.search(r'version "(\d+)', banner)
    major = int(found.group(1)) if found else 0
    if major < MIN_JAVA:
        raise KafkaSetupError(
            f"{java} is Java {major or 'of unknown version'}; Kafka 4 needs Java {MIN_JAVA} or newer. "
            "Point JAVA_HOME at a JDK 17+."
        )


def maven_executable() -> str:
    """The `mvn` that fetches the broker's jars from Maven Central."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaSetupError(
            "Maven (mvn) is needed once to fetch the Kafka broker's jars from Maven Central and was not found "
            "on PATH. Install it (Debian: apt-get install maven) or set KAFKA_BOOTSTRAP_SERVERS."
        )
    return mvn
