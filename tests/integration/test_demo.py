"""`switchboard demo` (what bin/run runs) end to end on the test broker: every message final, the funnel adds up,
nothing left running, also after Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard.localkafka import project_root

FINAL = re.compile(r"^(read|delivered|sent \(the \w+ stand-in sends no receipts\)|suppressed: \w+|"
                   r"deferred \(quiet hours\) until \d\d:\d\d \S+|dead-lettered: .+|expired: .+)$")
FUNNEL = re.compile(r"^  (?P<indent> *)(?P<name>[a-z -]+?)\s+(?P<count>\d+)   ")


def _demo(bootstrap: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "switchboard.cli", "demo", *args], cwd=project_root(),
                            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _run_id(output: str) -> str:
    found = re.search(r"var/demo/(\d{8}-\d{6}-[0-9a-f]{4})/", output)
    assert found, output
    return found[1]


def _processes_of(run_id: str) -> list[str]:
    """Command lines of live processes that belong to the run (its id is in their topic prefix)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"demo-{run_id}-" in command:
            found.append(command)
    return found


@pytest.fixture
def demo_runs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.timeout(300)
def test_the_demo_brings_every_message_to_a_final_state(kafka_bootstrap: str,
                                                         demo_runs: list[subprocess.Popen[str]]) -> None:
    demo = _demo(kafka_bootstrap, "--messages", "10", "--timeout", "150")
    demo_runs.append(demo)
    output, _ = demo.communicate(timeout=280)
    assert demo.returncode == 0, output
    assert "final 10/10" in output
    table = output.split("Messages (10):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    statuses = [re.split(r"\s{2,}", row.strip())[5] for row in table[1:]]
    assert len(statuses) == 10
    assert all(FINAL.match(status) for status in statuses), table
    assert not re.findall(r"\+\d{5,}", output)  # phone numbers only ever appear masked
    funnel = {m["name"]: int(m["count"]) for line in output.split("Funnel:\n", 1)[1].splitlines()
              if (m := FUNNEL.match(line))}
    assert funnel["requested"] == 10
    closed = ("suppressed", "deferred", "dead-lettered", "expired", "sent")
    assert sum(funnel[name] for name in closed) == funnel["requested"], funnel
    assert "in flight" not in funnel
    assert funnel["read"] <= funnel["delivered"] <= funnel["sent"]
    assert funnel["fallen back"] >= 1  # the customer not on WhatsApp gets an SMS instead
    assert funnel["suppressed"] >= 1  # a marketing offer without consent
    assert funnel["failed"] >= 1  # the first send is answered 503 and retried
    assert re.search(r"requested 10 = .*sent \d+", output)
    assert "Stopped the simulator, webhook receiver, pipeline worker, normaliser." in output
    run_id = _run_id(output)
    assert _processes_of(run_id) == []
    logs = project_root() / "var" / "demo" / run_id
    assert {p.name for p in logs.iterdir()} == {"pipeline.toml", "receiver.log", "pipeline.log", "normaliser.log"}


@pytest.mark.timeout(300)
def test_ctrl_c_stops_every_part(kafka_bootstrap: str, demo_runs: list[subprocess.Popen[str]]) -> None:
    demo = _demo(kafka_bootstrap, "--messages", "30")
    demo_runs.append(demo)
    assert demo.stdout is not None
    seen = []
    for line in demo.stdout:
        seen.append(line)
        if line.startswith("[   1s]"):  # the scenario is being played
            run_id = _run_id("".join(seen))
            assert len(_processes_of(run_id)) == 3, seen  # receiver, pipeline worker, normaliser
            demo.send_signal(signal.SIGINT)
            break
    else:
        pytest.fail("".join(seen))
    rest, _ = demo.communicate(timeout=120)
    assert demo.returncode == 130, "".join(seen) + rest
    assert "Interrupted (Ctrl-C): every part of the demo is stopped." in rest
    assert _processes_of(run_id) == []
