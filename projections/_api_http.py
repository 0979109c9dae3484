"""The read API's handlers: tenant-scoped reads, console sessions, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from connectors._ingest_errors import Refused, error_body
from projections import _api_openapi as openapi
from projections import _api_reads as reads
from projections import _api_send as send
from projections._api_auth import SESSION_COOKIE, Authenticator
from projections._api_follow import Follower, ReadModels, Throughput
from switchboard.observability import ready_gauge

__all__ = ["CONSOLE_DIR", "SERVICE", "ApiService", "answers", "observed", "routes", "secure_headers"]

CONSOLE_DIR: Final = Path(__file__).resolve().parent / "console"
# The console loads nothing but its own files, and no other site may frame it.
_CSP: Final = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_log = logging.getLogger("projections.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiMetrics:
    """Requests by route and status, their duration, and the follower's progress, in one registry."""

    def __init__(self, follower: Follower | None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("switchboard_api_requests_total", "Read API requests", ["route", "status"],
                                registry=self.registry)
        self.duration = Histogram("switchboard_api_request_duration_seconds", "Time to answer a request",
                                  ["route"], registry=self.registry)
        self.ready = ready_gauge(self.registry)
        if follower is not None:
            self.registry.register(_FollowerCollector(follower))


class _FollowerCollector:
    """switchboard_projection_events_applied_total per projection, and how far behind the topic they are."""

    def __init__(self, follower: Follower) -> None:
        self._follower = follower

    def collect(self) -> Iterator[Metric]:
        applied = CounterMetricFamily("switchboard_projection_events_applied", "Events applied by the API's "
                                      "follower", labels=["projection"])
        for name, count in self._follower.applied.items():
            applied.add_metric([name], count)
        yield applied
        yield GaugeMetricFamily("switchboard_projection_behind_events", "Events behind the topic's end at the "
                                "last measurement (-1 before the first)",
                                value=-1 if self._follower.behind is None else self._follower.behind)


@dataclass
class ApiService:
    """What the handlers need: the stores, who is asking, the follower and its pace."""

    models: ReadModels
    auth: Authenticator
    throughput: Throughput = field(default_factory=Throughput)
    follower: Follower | None = None
    ready_within: int = 1000  # events behind the topic's end still counted as caught up
    stale_after: float = 30.0  # seconds without a completed round before the API is no longer ready
    today: Callable[[], date] = reads.today
    task: asyncio.Task[None] | None = None
    metrics: ApiMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = ApiMetrics(self.follower)


SERVICE: Final = web.AppKey("api", ApiService)


def _service(request: web.Request) -> tuple[ApiService, str]:
    service = request.app[SERVICE]
    return service, service.auth.tenant(request)


async def get_message(request: web.Request) -> web.Response:
    service, tenant = _service(request)
    return web.json_response(reads.message(service.models.status, tenant, request.match_info["id"]))


async def get_recipient_messages(request: web.Request) -> web.Response:
    service, tenant = _service(request)
    contact = request.match_info["contact_id"]
    limit = _int(request, "limit", 50, reads.MAX_LIMIT)
    rows = reads.recipient_messages(service.models.status, tenant, contact, limit)
    return web.json_response({"contact_id": contact, "messages": rows})


async def get_funnel(request: web.Request) -> web.Response:
    service, tenant = _service(request)
    days = reads.DayRange(request.query, service.today())
    return web.json_response(reads.funnel(service.models.stats, tenant, days, request.query.get("template")))


async def get_latency(request: web.Request) -> web.Response:
    service, tenant = _service(request)
    day = reads.parse_day(request.query.get("day"), "day") or service.today()
    return web.json_response(reads.latency(service.models.stats, tenant, day))


async def get_usage(request: web.Request) -> web.Response:
    service, tenant = _service(request)
    return web.json_response(reads.usage(service.models.stats, tenant, reads.DayRange(request.query,
                                                                                       service.today())))


async def get_throughput(request: web.Request) -> web.Response:
    service, tenant = _service(request)
    seconds = service.throughput.recent(tenant, _int(request, "seconds", 60, 300))
    recent = seconds[-10:]
    return web.json_response({"seconds": [{"at": at, "events": events} for at, events in seconds],
                              "per_second": round(sum(events for _, events in recent) / len(recent), 2)})


async def post_console_session(request: web.Request) -> web.Response:
    """The console trades its one-time token (from the URL's fragment) for an HttpOnly session cookie."""
    service = request.app[SERVICE]
    try:
        token = (await request.json()).get("token")
    except (ValueError, AttributeError):
        token = None
    session = service.auth.sessions.exchange(token) if isinstance(token, str) else None
    if session is None:
        raise reads.ApiError(401, "invalid_token", "this console link was used already or has expired; "
                                                   "restart `switchboard api` for a new one")
    response = web.json_response({"tenant": service.auth.sessions.tenant(session)})
    response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", path="/",
                        secure=request.secure, max_age=int(service.auth.sessions.session_ttl))
    return response


async def get_console_session(request: web.Request) -> web.Response:
    """The tenant of the console's session cookie (the page asks on every load)."""
    session = request.cookies.get(SESSION_COOKIE)
    tenant = request.app[SERVICE].auth.sessions.tenant(session) if session else None
    if tenant is None:
        raise reads.ApiError(401, "invalid_session", "no console session; open the console URL `switchboard api` "
                                                     "prints")
    return web.json_response({"tenant": tenant})


async def get_console(request: web.Request) -> web.StreamResponse:
    if request.path == "/console":
        raise web.HTTPMovedPermanently("/console/")
    return web.FileResponse(CONSOLE_DIR / "index.html", headers={"Cache-Control": "no-store"})


async def get_console_file(request: web.Request) -> web.StreamResponse:
    """One of the console's own files; any other name is a 404 in the one error shape (never a path outside)."""
    name = request.match_info["filename"]
    files = {path.name: path for path in CONSOLE_DIR.iterdir() if path.is_file()}
    if name not in files:
        raise reads.ApiError(404, "not_found", f"no console file {name}")
    return web.FileResponse(files[name])


async def healthz(request: web.Request) -> web.Response:
    """Alive: the follower's task has not died (it retries Kafka errors itself)."""
    task = request.app[SERVICE].task
    if task is not None and task.done():
        return web.json_response({"status": "follower stopped"}, status=503)
    sender = request.app[send.SEND].task
    if sender is not None and sender.done():
        return web.json_response({"status": "send log stopped"}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the stores are open and caught up to within `ready_within` events at a recent round."""
    ready, body = _readiness(request.app[SERVICE])
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    service.metrics.ready.set(1 if _readiness(service)[0] else 0)
    return web.Response(body=generate_latest(service.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _readiness(service: ApiService) -> tuple[bool, dict[str, Any]]:
    follower = service.follower
    ready = service.models.is_open and (follower is None or follower.ready(service.ready_within,
                                                                           service.stale_after))
    body = {"ready": ready, "behind": None if follower is None else follower.behind,
            "within": service.ready_within, "last_error": None if follower is None else follower.last_error}
    return ready, body


def routes(app: web.Application) -> None:
    """Every route of the API and the console."""
    reads_ = {"/v1/messages/{id}": get_message, "/v1/recipients/{contact_id}/messages": get_recipient_messages,
              "/v1/stats/funnel": get_funnel, "/v1/stats/latency": get_latency, "/v1/stats/usage": get_usage,
              "/v1/stats/throughput": get_throughput, "/healthz": healthz, "/readyz": readyz, "/metrics": metrics,
              "/console": get_console, "/console/": get_console, "/console/session": get_console_session}
    for path, handler in {**reads_, "/openapi.json": get_openapi}.items():
        app.router.add_get(path, handler)
    app.router.add_post("/v1/messages", send.post_message)
    app.router.add_post("/v1/messages:batch", send.post_batch)
    app.router.add_post("/console/session", post_console_session)
    app.router.add_get("/console/{filename}", get_console_file)


async def get_openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3 document of every route of this app."""
    return web.json_response(openapi.document())


def _int(request: web.Request, name: str, default: int, most: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= most:
        raise reads.ApiError(400, "invalid_query", f"`{name}` must be a whole number from 1 to {most}")
    return int(raw)


@web.middleware
async def answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refusals as POST /v1/events answers them (same codes and body), and the API's own 400/401/404."""
    try:
        return await handler(request)
    except Refused as refused:
        _log.info("api: refused %s %s %s", refused.status, refused.code, request.path)
        return web.json_response(refused.body(), status=refused.status)
    except reads.ApiError as error:
        return web.json_response(error_body(error.code, error.message, error.details), status=error.status,
                                 headers=error.headers or None)


@web.middleware
async def observed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts and times every request by its route (not its path: ids would make endless label values)."""
    started = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    service = request.app[SERVICE]
    service.metrics.requests.labels(route, str(response.status)).inc()
    service.metrics.duration.labels(route).observe(time.perf_counter() - started)
    return response


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """No sniffing, no framing, no referrer, and a strict content policy on every answer."""
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/v1/"):
        response.headers.setdefault("Cache-Control", "no-store")


def follower_context(service: ApiService) -> Callable[[web.Application], Any]:
    """Runs the follower, and the send log's consumer, as tasks for the application's lifetime."""
    async def context(app: web.Application) -> Any:
        if service.follower is not None:
            service.task = asyncio.create_task(service.follower.run(), name="projections-follower")
        sender = app[send.SEND]
        if sender.log is not None:
            sender.task = asyncio.create_task(sender.log.run(), name="send-log")
        yield
        for task in (service.task, sender.task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    return context
