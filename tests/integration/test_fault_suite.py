"""The fault-injection suite's fast part (bin/faults --quick) on the suite's broker: each scenario breaks the
platform mid-run and its checker finds every message in exactly one terminal state, the projections equal to a
rebuild from the log, nothing lost and every bad input parked or refused with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import QUICK, Environment, Report, run_scenario

# Each scenario starts its own worker (and receiver and normaliser) and waits for a few hundred messages to settle;
# on a 2-core machine shared with other suites that can exceed the default 300 s.
pytestmark = pytest.mark.timeout(600)


async def _run(name: str, bootstrap: str, directory: Path) -> Report:
    report = await run_scenario(name, QUICK[name], Environment(bootstrap, directory))
    print("\n".join(report.lines()))  # the tally, shown with -s or on failure
    assert report.ok, "\n".join(report.lines())
    assert report.tally["requests"] == QUICK[name]
    assert report.tally["lost"] == 0
    assert sum(report.tally["terminal states"].values()) == QUICK[name]
    for projection in ("message-status", "delivery-stats"):
        assert "identical to a rebuild" in report.tally[f"projection {projection}"]
    return report


@pytest.mark.parametrize("name", ["worker-sigkill", "state-loss", "slow-sender"])
async def test_a_worker_lost_mid_run_loses_and_doubles_nothing(name: str, kafka_bootstrap: str,
                                                               tmp_path: Path) -> None:
    report = await _run(name, kafka_bootstrap, tmp_path)
    assert report.tally["terminal states"] == {"accepted": QUICK[name]}  # in-process channel: all accepted
    if name == "slow-sender":  # the backlog really waited on pages when the worker died
        assert report.tally["page writes in the senders changelog before the kill"] > 0


async def test_a_worker_joining_mid_run_leaves_no_request_unapplied(kafka_bootstrap: str, tmp_path: Path) -> None:
    report = await _run("worker-join", kafka_bootstrap, tmp_path)
    assert report.tally["terminal states"] == {"accepted": QUICK["worker-join"]}
    assert report.tally["workers in the group at the end"] == 2  # the join really happened


async def test_simulator_faults_end_every_message_once_with_each_receipt_once(kafka_bootstrap: str,
                                                                             tmp_path: Path) -> None:
    report = await _run("simulator-faults", kafka_bootstrap, tmp_path)
    receipts = report.tally["receipt statuses (once each)"]
    assert receipts["read"] > 0
    assert receipts["sent"] >= receipts["read"]
    assert "refused {" in report.tally["simulator"]  # the faults really happened: some sends were refused


async def test_poison_on_every_input_is_parked_or_refused_with_its_reason(kafka_bootstrap: str,
                                                                          tmp_path: Path) -> None:
    report = await _run("poison", kafka_bootstrap, tmp_path)
    assert report.tally["poison records"] == 15
    assert report.tally["poison dead-lettered, by topic"] == {
        f"sb.{topic}": 3 for topic in ("commands", "dispatch", "events.business", "commands.template",
                                       "webhooks.raw")}
    refused = report.tally["refused requests"]
    assert {"receiver 400 as expected (400)", "receiver 401 as expected (401)", "receiver 403 as expected (403)",
            "ingest 422 schema_violation", "ingest 401 missing_signature"} <= set(refused)
    assert report.tally["sb.rejects records (with reason)"] == 3
