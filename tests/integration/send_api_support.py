"""The send API on a real broker for tests: clients with keys, a limits file, apps on ephemeral ports, offsets."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from aggregates._secrets import hash_secret
from connectors.ingest import IngestClients, KafkaEventSink
from projections import MemoryStore
from projections._api_follow import ReadModels
from projections._runner import end_offsets
from projections.api import LimitsWatcher, SendLog, api_app, claims_topic_spec, signed_post_headers
from streams.pipeline.app import COMMAND_TOPIC_CONFIG
from switchboard.serving import serving as serve_app
from switchboard.topics import AUDIT_LOG_CONFIG, TopicSpec, ensure_topics

PARTITIONS = 6  # as the pipeline's declaration in pipeline_support
SECRETS = {"erp-acme": "acme-signing-secret-0123456789", "erp-globex": "globex-signing-secret-0123456789",
           "erp-small": "small-signing-secret-0123456789"}
TENANTS = {"erp-acme": "acme", "erp-globex": "globex", "erp-small": "acme"}
KEYS = {client: f"sbk_{client}-api-key-0123456789" for client in SECRETS}
LIMITS = """
default_tier = "standard"
[tiers.standard]
per_second = 1000
burst = 1000
[tiers.tiny]
per_second = 0.01
burst = 2
[clients]
erp-small = "tiny"
[per_ip]
per_second = 0
"""
MESSAGE: dict[str, Any] = {"to": {"external_ref": "customer-1", "addresses": {"whatsapp": "+4917012340001",
                                                                            "sms": "+4917012340001"}},
                           "category": "utility", "template": "order_shipped", "parameters": {"order_id": "1"}}


def clients() -> IngestClients:
    hashes = {client: hash_secret(key) for client, key in KEYS.items()}
    return IngestClients.of({c: (TENANTS[c], s) for c, s in SECRETS.items()}, hashes)


def clients_file(directory: Path) -> tuple[Path, dict[str, str]]:
    """The same clients as a file for `switchboard api` (secrets in variables), and those variables."""
    env = {f"SB_TEST_SEND_{c.upper().replace('-', '_')}": s for c, s in SECRETS.items()}
    entries = {c: {"tenant": TENANTS[c], "secret_env": f"SB_TEST_SEND_{c.upper().replace('-', '_')}",
                   "api_key_hash": hash_secret(KEYS[c])} for c in SECRETS}
    path = directory / "clients.json"
    path.write_text(json.dumps(entries))
    return path, env


def message(ref: str = "customer-1", order: str = "1", **changes: Any) -> dict[str, Any]:
    phone = f"+49170{zlib.crc32(ref.encode()) % 10**7:07d}"
    return {**MESSAGE, "to": {"external_ref": ref, "addresses": {"whatsapp": phone, "sms": phone}},
            "parameters": {"order_id": order}, **changes}


async def prepare_topics(bootstrap: str, prefix: str) -> None:
    """sb.commands and sb.events.message as the pipeline lays them out, and the claims topic."""
    await ensure_topics(bootstrap, [TopicSpec(prefix + "sb.commands", PARTITIONS, -1, COMMAND_TOPIC_CONFIG),
                                    TopicSpec(prefix + "sb.events.message", PARTITIONS, -1, AUDIT_LOG_CONFIG),
                                    claims_topic_spec(prefix, PARTITIONS)])


async def written(bootstrap: str, prefix: str) -> dict[str, int]:
    """Records ever written to the commands and the claims topics (their end offsets summed)."""
    return {topic: sum((await end_offsets(bootstrap, prefix + topic)).values())
            for topic in ("sb.commands", "sb.api.requests")}


@dataclass
class SendApi:
    base: str
    session: aiohttp.ClientSession
    models: ReadModels

    async def post(self, path: str, body: Any, client: str = "erp-acme", *, idempotency_key: str | None = None,
                   at: float | None = None, secret: str | None = None, api_key: str | None = "",
                   raw: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        sent = signed_post_headers(client, secret or SECRETS[client], KEYS[client] if api_key == "" else
                                   (api_key or ""), path, data, time.time() if at is None else at)
        if api_key is None:
            del sent["X-Switchboard-Key"]
        if idempotency_key is not None:
            sent["Idempotency-Key"] = idempotency_key
        sent.update(headers or {})
        async with self.session.post(self.base + path, data=data, headers=sent) as answer:
            return answer.status, await answer.json(), answer.headers


@asynccontextmanager
async def serving(bootstrap: str, prefix: str, directory: Path, *, max_body_bytes: int = 16 * 1024,
                  models: ReadModels | None = None) -> AsyncIterator[SendApi]:
    """The API app with its Kafka sink and send log on an ephemeral port (no follower: reads use `models`)."""
    limits = directory / "limits.toml"
    limits.write_text(LIMITS)
    models = models or ReadModels(MemoryStore(), MemoryStore())
    await prepare_topics(bootstrap, prefix)
    async with KafkaEventSink(bootstrap) as sink:
        app = api_app(models, clients(), send_log=SendLog(bootstrap, sink, prefix), limits=LimitsWatcher(limits),
                      max_body_bytes=max_body_bytes)
        async with serve_app(app, shutdown_timeout=1.0) as url, aiohttp.ClientSession() as session:
            yield SendApi(url, session, models)
