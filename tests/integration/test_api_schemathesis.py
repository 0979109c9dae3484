"""Schemathesis against `switchboard api` on the real broker: every request signed, no 5xx, answers as documented."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connectors.ingest import signed_headers
from projections._api_openapi import document
from tests.integration.send_api_support import KEYS, SECRETS, clients_file, prepare_topics

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
LIMITS = "[tiers.fuzz]\nper_second = 0\n[per_ip]\nper_second = 0\n"  # the fuzzer must reach the handlers
CLIENT = "erp-acme"


@pytest.fixture(scope="module")
def api_base(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`switchboard api` as a process, with its clients and keys, on an ephemeral port."""
    directory = tmp_path_factory.mktemp("schemathesis")
    prefix = f"it-schemathesis-{uuid.uuid4().hex[:8]}-"
    asyncio.run(prepare_topics(kafka_bootstrap, prefix))
    clients, env = clients_file(directory)
    (directory / "limits.toml").write_text(LIMITS)
    log = (directory / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "api", "--bootstrap", kafka_bootstrap, "--topic-prefix", prefix,
         "--root", str(directory / "projections"), "--port", "0", "--clients-file", str(clients),
         "--limits-file", str(directory / "limits.toml")],
        stdout=subprocess.PIPE, stderr=log, env={**os.environ, **env})
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()  # printed once the port is open
        found = re.search(r"(http://[\d.]+:\d+)/v1/", line)
        assert found is not None, (directory / "api.log").read_text()[-3000:]
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    assert process.returncode == 0, (directory / "api.log").read_text()[-3000:]


@pytest.fixture(scope="module")
def api_schema(api_base: str) -> Any:
    """The document as the live API serves it."""
    return schemathesis.openapi.from_url(f"{api_base}/openapi.json")


# One test per operation of the document (schemathesis' own pytest loader needs a pytest internal that 9.x removed).
OPERATIONS = [(method, path) for path, item in document()["paths"].items() for method in item]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in OPERATIONS])
def test_the_live_api_answers_as_its_document_says(api_schema: Any, api_base: str, method: str, path: str) -> None:
    operation = api_schema[path][method.upper()]

    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: Any) -> None:
        if case.query and "wait" in case.query:
            case.query["wait"] = min(float(case.query["wait"]), 0.2)  # no pipeline runs here: a wait only times out
        with requests.Session() as session:
            response = session.send(_signed(session, case.as_transport_kwargs(base_url=api_base)), timeout=60)
        case.validate_response(response, checks=CHECKS)

    answers_as_documented()


def _signed(session: requests.Session, kwargs: dict[str, Any]) -> requests.PreparedRequest:
    """The generated request, signed as a client signs it (path with query, exact body) and with its API key."""
    prepared = session.prepare_request(requests.Request(
        method=kwargs["method"], url=kwargs["url"], headers=kwargs.get("headers"), params=kwargs.get("params"),
        json=kwargs.get("json"), data=kwargs.get("data"), cookies=kwargs.get("cookies")))
    body = prepared.body or b""
    raw = body.encode() if isinstance(body, str) else body
    assert isinstance(raw, bytes)
    prepared.headers.update(signed_headers(CLIENT, SECRETS[CLIENT], int(time.time()), prepared.method or "GET",
                                           prepared.path_url, raw))
    prepared.headers["X-Switchboard-Key"] = KEYS[CLIENT]
    return prepared
