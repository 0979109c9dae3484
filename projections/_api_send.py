"""POST /v1/messages and /v1/messages:batch: authenticate, bound, verify, claim the key, write, maybe wait."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from connectors._ingest_clients import IngestClient
from connectors._ingest_http import read_bounded
from connectors._ingest_idempotency import idempotency_key
from connectors._ingest_signing import verify_signature
from connectors._ingest_sink import SinkUnavailable
from projections._api_gate import Gate
from projections._api_reads import ApiError
from projections._api_send_body import MAX_BATCH, SendRequest, parse_json, parse_message
from projections._api_send_log import SendLog

__all__ = ["MAX_BODY_BYTES", "MAX_WAIT_SECONDS", "REPLAYED_HEADER", "SEND", "SendService", "post_batch",
           "post_message"]

MAX_BODY_BYTES: Final = 256 * 1024
MAX_WAIT_SECONDS: Final = 30.0
REPLAYED_HEADER: Final = "Idempotent-Replayed"
_log = logging.getLogger("projections.api")


@dataclass
class SendService:
    """The send endpoints' state: the gate, the log (None: this API does not send), bounds and timeouts."""

    gate: Gate
    log: SendLog | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    max_wait: float = MAX_WAIT_SECONDS
    write_timeout: float = 10.0
    status: Callable[[str], Mapping[str, Any] | None] = lambda message_id: None  # the read model's row
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def verified(self, request: web.Request) -> tuple[IngestClient, Any]:
        """The client and its parsed body, or a refusal; nothing has been written to Kafka either way."""
        client, signed = self.gate.client(request, key_required=True)
        raw = await read_bounded(request, self.max_body_bytes, _too_large)
        verify_signature(signed, client.secret.get().reveal(), request.method, request.raw_path, raw)
        return client, parse_json(raw)

    def wait_seconds(self, request: web.Request) -> float:
        raw = request.query.get("wait")
        if raw is None:
            return 0.0
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= self.max_wait:
            raise ApiError(400, "invalid_query", f"`wait` must be seconds from 0 to {self.max_wait:g}")
        return seconds

    async def submit(self, requests: Sequence[SendRequest], wait: float) -> list[dict[str, Any]]:
        """Claims the keys, writes the accepted requests, waits up to `wait` s for outcomes; one result each."""
        if self.log is None:
            raise ApiError(503, "send_disabled", "this API serves reads only (started without a Kafka producer)")
        log = self.log
        try:
            async with asyncio.timeout(self.write_timeout):
                firsts = await self._claims(log, requests)
                fresh = [r for r, first in zip(requests, firsts, strict=True) if first is not False]
                futures = {r.message_id: log.expect(r.message_id) for r in fresh} if wait else {}
                await log.command([(r.contact_id, r.command) for r in fresh])
        except (SinkUnavailable, TimeoutError):
            raise ApiError(503, "kafka_unavailable", "Kafka did not acknowledge the request; retry with the same "
                           "Idempotency-Key", headers={"Retry-After": "1"}) from None
        try:
            outcomes = await self._outcomes(futures, wait)
        finally:
            for message_id, future in futures.items():
                log.forget(message_id, future)
        return [_result(r, first, outcomes.get(r.message_id)) for r, first in zip(requests, firsts, strict=True)]

    async def _claims(self, log: SendLog, requests: Sequence[SendRequest]) -> list[bool | None]:
        """Per request: True for a first claim, None for a repeat of the same body, False for another body."""
        keyed = [r for r in requests if r.keyed]
        claims = iter(await log.claim([(r.message_id, r.digest) for r in keyed]) if keyed else [])
        firsts: list[bool | None] = []
        for request in requests:
            if not request.keyed:
                firsts.append(True)
                continue
            claim, mine = next(claims)
            firsts.append((True if mine else None) if claim.digest == request.digest else False)
        return firsts

    async def _outcomes(self, futures: Mapping[str, asyncio.Future[dict[str, Any]]],
                        wait: float) -> dict[str, dict[str, Any]]:
        outcomes = {mid: dict(row) for mid in futures if (row := self._final_row(mid)) is not None}
        pending = [f for mid, f in futures.items() if mid not in outcomes]
        if pending:
            await asyncio.wait(pending, timeout=wait)
        outcomes.update({mid: f.result() for mid, f in futures.items() if mid not in outcomes and f.done()})
        return outcomes

    def _final_row(self, message_id: str) -> Mapping[str, Any] | None:
        """A repeated request's message may be done already: the read model says so without waiting."""
        row = self.status(message_id)
        final = {"accepted", "sent", "delivered", "read", "dead_lettered", "suppressed", "expired"}
        if row is None or row.get("status") not in final:
            return None
        return {"status": row["status"], "reason": row.get("reason")}


def _result(request: SendRequest, first: bool | None, outcome: Mapping[str, Any] | None) -> dict[str, Any]:
    if first is False:
        error = ApiError(409, "idempotency_key_reused", "this idempotency key was used with another body; use a "
                         "new key for a new message")
        return {"status": 409, "error": {"code": error.code, "message": error.message, "details": []}}
    body: dict[str, Any] = {"message_id": request.message_id, "contact_id": request.contact_id,
                            "idempotency_key": request.idempotency_key, "replayed": first is None,
                            "status": "requested"}
    if outcome is not None:
        body.update(status=outcome["status"], reason=outcome.get("reason"))
    return {"status": 202 if outcome is None else 200, "message": body}


SEND: Final = web.AppKey("send", SendService)


async def post_message(request: web.Request) -> web.Response:
    """POST /v1/messages: 202 once the request is in Kafka, or 200 with its outcome when `wait` allows."""
    service = request.app[SEND]
    client, spec = await service.verified(request)
    wait = service.wait_seconds(request)
    parsed = parse_message(spec, client.tenant, client.client_id, idempotency_key(request.headers))
    (result,) = await service.submit([parsed], wait)
    if result["status"] == 409:
        raise ApiError(409, "idempotency_key_reused", result["error"]["message"])
    headers = {REPLAYED_HEADER: "true"} if result["message"]["replayed"] else None
    _log.info("api: client %s sent message %s (%s)", client.client_id, parsed.message_id, result["status"])
    return web.json_response(result["message"], status=result["status"], headers=headers)


async def post_batch(request: web.Request) -> web.Response:
    """POST /v1/messages:batch: up to MAX_BATCH messages, each with its own result (200 for the batch)."""
    service = request.app[SEND]
    client, body = await service.verified(request)
    wait = service.wait_seconds(request)
    items = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH or set(body) != {"messages"}:
        raise ApiError(422, "validation_failed", f"the body is {{\"messages\": [1 to {MAX_BATCH} messages]}}")
    if len(items) > 1:  # the request itself took one token at the gate; each further message takes one more
        service.gate.limiter.client(client.client_id, len(items) - 1)
    results: list[dict[str, Any] | SendRequest] = [_parsed(item, client) for item in items]
    accepted = [r for r in results if isinstance(r, SendRequest)]
    submitted = iter(await service.submit(accepted, wait) if accepted else [])
    answers = [next(submitted) if isinstance(r, SendRequest) else r for r in results]
    return web.json_response({"results": [{"index": i, **a} for i, a in enumerate(answers)]})


def _parsed(item: Any, client: IngestClient) -> dict[str, Any] | SendRequest:
    key = item.get("idempotency_key") if isinstance(item, dict) else None
    try:
        return parse_message(item, client.tenant, client.client_id, key if isinstance(key, str) else None)
    except ApiError as error:
        return {"status": error.status, "error": {"code": error.code, "message": error.message,
                                                  "details": error.details}}


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the body is over {limit} bytes; send fewer messages per request")
