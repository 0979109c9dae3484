"""`switchboard demo` (what bin/run runs) end to end on the test broker: every message final, the report's funnel
equal to what the read API serves, the console answering, nothing left running, also after Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections._api_follow import open_read_models
from projections._api_reads import DayRange, funnel, today
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
        if process.poll() is None:  # a failed test: SIGTERM lets the demo stop its children (SIGKILL would orphan them)
            process.terminate()
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.timeout(900)
def test_the_demo_plays_the_campaign_to_the_end_and_reports_what_the_api_serves(
        kafka_bootstrap: str, demo_runs: list[subprocess.Popen[str]]) -> None:
    demo = _demo(kafka_bootstrap, "--messages", "10", "--campaign", "300", "--duration", "600")
    demo_runs.append(demo)
    assert demo.stdout is not None
    seen = []
    for line in demo.stdout:  # while it runs: the console answers at the URL printed at the start
        seen.append(line)
        if line.startswith("Web console"):
            console = re.search(r"(http://\S+/console/)#token=\S+", line)
            assert console, line
            with urllib.request.urlopen(console[1], timeout=30) as page:
                assert page.status == 200
                assert "<html" in page.read().decode().lower()
            break
    else:
        pytest.fail("".join(seen))
    rest, _ = demo.communicate(timeout=880)
    output = "".join(seen) + rest
    assert demo.returncode == 0, output
    assert re.search(r"final 3\d\d/3\d\d · [\d.,]+/s · ETA done", output), output
    table = output.split("Transactional messages (10):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    statuses = [re.split(r"\s{2,}", row.strip())[5] for row in table[1:]]
    assert len(statuses) == 10
    assert all(FINAL.match(status) for status in statuses), table
    assert not re.findall(r"\+\d{5,}", output)  # phone numbers only ever appear masked
    funnel = {m["name"]: int(m["count"]) for line in output.split("Funnel:\n", 1)[1].splitlines()
              if (m := FUNNEL.match(line))}
    closed = ("suppressed", "deferred", "dead-lettered", "expired", "sent")
    assert sum(funnel[name] for name in closed) == funnel["requested"] >= 310, funnel
    assert "in flight" not in funnel
    assert funnel["read"] <= funnel["delivered"] <= funnel["sent"]
    assert funnel["suppressed"] >= 24  # the opted-out share of the campaign, and offers without consent
    assert funnel["fallen back"] >= 15  # the recipients not on WhatsApp get an SMS instead
    assert funnel["failed"] >= 1  # the first send is answered 503 and retried
    assert "The read API's funnel (its delivery-stats projection) agrees with the demo's own count." in output
    assert "Stopped the simulator, webhook receiver, pipeline worker 1, pipeline worker 2, normaliser, read API." \
        in output
    run_id = _run_id(output)
    assert _processes_of(run_id) == []
    run = project_root() / "var" / "demo" / run_id
    assert f"HTML report: var/demo/{run_id}/report.html" in output
    report = _report_cells((run / "report.html").read_text())
    served = _served_funnel(run / "projections")
    assert report == served
    offers = sum(" weekend_offer " in row for row in table[1:])  # the ERP part's direct offers
    assert served[("weekend_offer", "all", "requested")] == 300 + offers
    assert served[("-", "all", "requested")] >= 1  # a reply answered in free text inside its window


def _report_cells(html: str) -> dict[tuple[str, str, str], int]:
    """(template, channel, stage) -> count, from the report's funnel table."""
    cells = {}
    for row in re.finditer(r'<tr class=\w+ data-template="([^"]*)" data-channel="([^"]*)">(.*?)</tr>', html):
        for stage, count in re.findall(r"<td data-stage=(\w+)>(\d+)</td>", row[3]):
            if int(count):
                cells[(row[1], row[2], stage)] = int(count)
    return cells


def _served_funnel(root: Path) -> dict[tuple[str, str, str], int]:
    """What GET /v1/stats/funnel answers from the API's projections, the same cells as the report's table."""
    models = open_read_models(root)
    try:
        answer = funnel(models.stats, "acme", DayRange({}, today()), None)
    finally:
        models.close()
    cells: dict[tuple[str, str, str], int] = {}
    for row in answer["rows"]:
        for channel, entry in [("all", {"counts": row["counts"]}), *row["by_channel"].items()]:
            for stage, count in entry["counts"].items():
                key = (row["template"], channel, stage)
                cells[key] = cells.get(key, 0) + count
    return cells


@pytest.mark.timeout(300)
def test_ctrl_c_stops_every_part(kafka_bootstrap: str, demo_runs: list[subprocess.Popen[str]]) -> None:
    demo = _demo(kafka_bootstrap, "--messages", "30", "--campaign", "2000")
    demo_runs.append(demo)
    assert demo.stdout is not None
    seen = []
    for line in demo.stdout:
        seen.append(line)
        if re.match(r"\[ *\d+s\] requested", line):  # the scenario is being played
            run_id = _run_id("".join(seen))
            assert len(_processes_of(run_id)) == 5, seen  # receiver, two pipeline workers, normaliser, read API
            demo.send_signal(signal.SIGINT)
            break
    else:
        pytest.fail("".join(seen))
    rest, _ = demo.communicate(timeout=120)
    assert demo.returncode == 130, "".join(seen) + rest
    assert "Interrupted (Ctrl-C): every part of the demo is stopped." in rest
    assert _processes_of(run_id) == []
