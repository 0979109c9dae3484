"""The parts as separate processes (`switchboard run --role ...`) on one broker: a message sent through the API
completes end to end, and every process's /metrics shows the RED series of its stages with the traffic that passed."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from aggregates._secrets import hash_secret
from connectors.whatsapp import ENV_ACCESS_TOKEN, ENV_APP_SECRET
from connectors.whatsapp_simulator import WhatsAppSimulator
from projections.api import signed_get_headers, signed_post_headers
from switchboard.workers import WorkerProcess
from tests.integration.pipeline_support import TENANT, write_pipeline
from tests.integration.send_api_support import message

SENDER = "105954558954427"  # the phone_number_id write_pipeline declares for WhatsApp
ACCESS_TOKEN, APP_SECRET = "roles-access-token", "roles-app-secret"
CLIENT, CLIENT_SECRET_ENV, CLIENT_SECRET = "erp-acme", "SB_TEST_ROLES_ACME", "roles-signing-secret"
API_KEY = "sbk_roles-api-key-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(frozen=True)
class Role:
    """`switchboard run --role ROLE` with its port, as WorkerProcess starts it."""

    worker_name: str
    role: str
    port: int
    common: tuple[str, ...]

    def command_line(self) -> list[str]:
        return ["run", "--role", self.role, f"--{self.role}-port", str(self.port), *self.common]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def simulator() -> AsyncIterator[WhatsAppSimulator]:
    """The WhatsApp simulator, in this process; its webhook URLs are set once the receivers run."""
    async with WhatsAppSimulator(access_token=ACCESS_TOKEN, app_secret=APP_SECRET,
                                 phone_numbers={SENDER: "15550001111"}, pair_window=None, enforce_window=False,
                                 mps_limit=None) as running:
        yield running


@pytest.fixture
def parts(kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, simulator: WhatsAppSimulator,
          monkeypatch: pytest.MonkeyPatch) -> list[WorkerProcess[Role]]:
    """Two webhook receivers, the pipeline worker, the normaliser and the API, each a process of its own."""
    for name, value in {ENV_ACCESS_TOKEN: ACCESS_TOKEN, ENV_APP_SECRET: APP_SECRET,
                        CLIENT_SECRET_ENV: CLIENT_SECRET}.items():
        monkeypatch.setenv(name, value)
    config = write_pipeline(tmp_path, driver="whatsapp", settings=f'base_url = "{simulator.url}"')
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({CLIENT: {"tenant": TENANT, "secret_env": CLIENT_SECRET_ENV,
                                            "api_key_hash": hash_secret(API_KEY)}}))
    common = ("--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix, "--config", str(config),
              "--clients-file", str(clients))
    roles = [("receiver-1", "receiver"), ("receiver-2", "receiver"), ("pipeline", "pipeline"),
             ("normaliser", "normaliser"), ("api", "api")]
    return [WorkerProcess(Role(name, role, _free_port(), (*common, "--state-dir", str(tmp_path / name))),
                          tmp_path / f"{name}.log") for name, role in roles]


@pytest.fixture
async def running(parts: list[WorkerProcess[Role]]) -> AsyncIterator[dict[str, WorkerProcess[Role]]]:
    for part in parts:
        part.start()
    try:
        by_name = {part.config.worker_name: part for part in parts}
        await _until(lambda: _all_ready(by_name), by_name, "every part ready", timeout=120)
        yield by_name
    finally:
        for part in parts:
            if part.is_running():
                part.stop()


async def test_parts_as_separate_processes_complete_a_message_and_report_red_metrics(
        kafka_bootstrap: str, unique_prefix: str, simulator: WhatsAppSimulator,
        running: dict[str, WorkerProcess[Role]]) -> None:
    receivers = [running["receiver-1"].config, running["receiver-2"].config]
    simulator.webhook_url = ",".join(f"{r.url}/webhooks/whatsapp" for r in receivers)  # they take turns
    message_id = await _send(running["api"].config, message("roles-1"))

    row = await _until(lambda: _read_message(running["api"].config, message_id), running, "message read via API")
    assert row["status"] == "read"
    assert {"delivered", "read"} <= set(row["times"]), row
    assert simulator.counters.webhooks_posted >= 3  # sent, delivered, read

    scraped = {name: await _metrics(part.config) for name, part in running.items()}
    for receiver in ("receiver-1", "receiver-2"):  # the simulator's posts alternated between the two
        _assert_red(scraped[receiver], "receiver", traffic=True)
        assert _value(scraped[receiver], "switchboard_webhook_ack_seconds_count", channel="whatsapp") >= 1
        assert _value(scraped[receiver], "switchboard_http_requests_total", route="/webhooks/{channel}",
                      method="POST", status="200") >= 1
    for stage in ("writer", "dispatch"):
        _assert_red(scraped["pipeline"], stage, traffic=True)
    for stage in ("triggers", "templates"):  # no business event and no template command passed
        _assert_red(scraped["pipeline"], stage, traffic=False)
    assert _value(scraped["pipeline"], "switchboard_dispatch_outcomes_total", channel="whatsapp",
                  outcome="accepted") == 1
    _assert_red(scraped["normaliser"], "normaliser", traffic=True)
    assert _has(scraped["normaliser"], "switchboard_consumer_lag")
    assert _has(scraped["pipeline"], "switchboard_consumer_lag")
    assert _value(scraped["api"], "switchboard_api_requests_total", route="/v1/messages/{id}", status="200") >= 1
    assert _value(scraped["api"], "switchboard_api_requests_total", route="/v1/messages", status="202") == 1
    assert _value(scraped["api"], "switchboard_projection_events_applied_total", projection="message-status") >= 4


def _assert_red(samples: Samples, stage: str, *, traffic: bool) -> None:
    """The stage's three series are exported; with traffic, events and durations were counted and nothing failed."""
    events = _value(samples, "switchboard_stage_events_total", stage=stage)
    errors = _value(samples, "switchboard_stage_errors_total", stage=stage)
    durations = _value(samples, "switchboard_stage_duration_seconds_count", stage=stage)
    assert _has(samples, "switchboard_stage_events_total", stage=stage), stage
    assert _has(samples, "switchboard_stage_errors_total", stage=stage), stage
    assert _has(samples, "switchboard_stage_duration_seconds_count", stage=stage), stage
    if traffic:
        assert events >= 1, stage
        assert durations == events, stage
        assert errors == 0, stage


def _key(name: str, labels: dict[str, str]) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def _has(samples: Samples, name: str, **labels: str) -> bool:
    return any(key[0] == name and set(labels.items()) <= key[1] for key in samples)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get(_key(name, labels), 0.0)


async def _metrics(role: Role) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(f"{role.url}/metrics") as answer:
        assert answer.status == 200
        text = await answer.text()
    return {_key(sample.name, sample.labels): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def _all_ready(parts: dict[str, WorkerProcess[Role]]) -> Any:
    async with aiohttp.ClientSession() as session:
        for part in parts.values():
            try:
                async with session.get(f"{part.config.url}/readyz") as answer:
                    if answer.status != 200:
                        return None
            except aiohttp.ClientConnectionError:
                return None  # not listening yet
    return True


async def _send(api: Role, body: dict[str, Any]) -> str:
    """POST /v1/messages, signed with the client's key: the message id of the 202."""
    data = json.dumps(body).encode()
    headers = {**signed_post_headers(CLIENT, CLIENT_SECRET, API_KEY, "/v1/messages", data),
               "Idempotency-Key": "roles-1"}
    async with aiohttp.ClientSession() as session, session.post(f"{api.url}/v1/messages", data=data,
                                                                headers=headers) as answer:
        accepted = await answer.json()
        assert answer.status == 202, accepted
    return str(accepted["message_id"])


async def _read_message(api: Role, message_id: str) -> Any:
    path = f"/v1/messages/{message_id}"
    headers = {**signed_get_headers(CLIENT, CLIENT_SECRET, path), "X-Switchboard-Key": API_KEY}
    async with aiohttp.ClientSession() as session, session.get(URL(api.url + path, encoded=True),
                                                               headers=headers) as answer:
        if answer.status != 200:
            return None
        row = await answer.json()
    return row if row.get("status") == "read" else None


async def _until(probe: Callable[[], Any], parts: dict[str, WorkerProcess[Role]], what: str,
                 timeout: float = 90.0) -> Any:
    """Polls an HTTP probe until it returns something; fails at once with the log of a part that exited."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        for name, part in parts.items():
            assert part.is_running(), f"{name} exited:\n{part.log_tail()}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.2)  # polling HTTP endpoints: there is nothing to subscribe to
