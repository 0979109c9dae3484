"""A local WhatsApp Cloud API: Meta's send endpoint, its validation, limits and errors, and signed webhooks back."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import heapq
import itertools
import json
import logging
import os
import random
import signal
import string
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from aiohttp import web

from connectors._hub import SIGNATURE_HEADER, hub_signature
from connectors._privacy import mask_phone
from connectors._simulator_http import PostFailed, WebhookPoster
from connectors._simulator_validation import Reject, validate_send_body
from connectors._whatsapp_bodies import (
    error_body,
    http_status_for,
    inbound_webhook_body,
    status_object,
    status_webhook_body,
    template_status_webhook_body,
    webhook_error,
)
from connectors.whatsapp import GRAPH_API_VERSION
from switchboard.serving import Served, serve

__all__ = [
    "DEFAULT_APP_SECRET",
    "DEFAULT_PHONE_NUMBER_ID",
    "SentMessage",
    "SimulatorConfig",
    "SimulatorCounters",
    "WhatsAppSimulator",
    "error_body",
    "http_status_for",
    "inbound_webhook_body",
    "main",
    "status_object",
    "status_webhook_body",
    "template_status_webhook_body",
]

DEFAULT_PHONE_NUMBER_ID = "100000000000001"
DEFAULT_DISPLAY_NUMBER = "15550001111"
DEFAULT_APP_SECRET = "simulator-app-secret"  # a development default, documented as such
ENV_ACCESS_TOKEN = "SWITCHBOARD_SIMULATOR_ACCESS_TOKEN"
ENV_APP_SECRET = "SWITCHBOARD_SIMULATOR_APP_SECRET"
_TRANSIENT = ((500, 131000), (503, 131016), (503, 2))  # what a "5xx" fault answers with, chosen by the seeded rng
_WEBHOOK_HEADERS = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulator does is chosen here; faults draw from random.Random(seed)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port, read it back from WhatsAppSimulator.url
    api_version: str = GRAPH_API_VERSION
    access_token: str | None = field(default=None, repr=False)  # None: any non-empty bearer token passes
    app_secret: str = field(default=DEFAULT_APP_SECRET, repr=False)
    # Where signed webhooks go; several URLs separated by commas take turns (as behind a load balancer);
    # None: receipts are counted but not posted.
    webhook_url: str | None = None
    phone_numbers: Mapping[str, str] = field(default_factory=lambda: {DEFAULT_PHONE_NUMBER_ID: DEFAULT_DISPLAY_NUMBER})
    business_account_id: str = "200000000000001"
    seed: int = 0
    latency: tuple[float, float] = (0.0, 0.0)  # seconds, uniform between the two, before each answer
    mps_limit: int | None = 80  # messages per second per phone number id, then 130429
    pair_window: float | None = 6.0  # at most one message per recipient per this many seconds, then 131056
    enforce_window: bool = True  # free-form needs an inbound message within window_seconds, else 131047
    window_seconds: float = 24 * 3600.0
    undeliverable: frozenset[str] = frozenset()  # recipients that fail with 131026
    sync_failures: bool = False  # 131026/131047 in the send answer instead of a later `failed` webhook
    templates: frozenset[tuple[str, str]] | None = None  # approved (name, language); None: any, else 132001
    error_rate: float = 0.0  # share of requests answered 500/503 (131000, 131016 or 2) without sending
    timeout_rate: float = 0.0  # share of accepted messages whose answer is held for timeout_hold seconds
    timeout_hold: float = 30.0
    receipt_interval: float = 0.01  # seconds between a message's successive receipts
    duplicate_rate: float = 0.0  # share of messages with one receipt posted twice
    reorder_rate: float = 0.0  # share of messages with two adjacent receipts swapped
    read_without_delivered_rate: float = 0.0  # share of messages that go sent -> read (chat open)
    webhook_attempts: int = 3  # posts per webhook before it is dropped (Meta retries for days; we do not)
    webhook_retry_delay: float = 0.05  # doubled after each failed attempt
    webhook_timeout: float = 5.0
    webhook_concurrency: int = 1  # webhooks posted at once (Meta posts many in parallel; 1: strictly one at a time)


@dataclass
class SimulatorCounters:
    """What happened so far; tests wait on these instead of sleeping."""

    requests: int = 0
    sent: int = 0  # accepted by the send endpoint
    rejected: Counter[int] = field(default_factory=Counter)  # send answers with an error, by code
    failed: Counter[int] = field(default_factory=Counter)  # `failed` receipts, by code
    timeouts: int = 0  # answers held back to provoke a client timeout
    webhooks_posted: int = 0  # delivered with a 2xx answer
    webhook_failures: int = 0  # attempts that failed (and were retried or dropped)
    webhooks_dropped: int = 0


@dataclass(frozen=True)
class SentMessage:
    """A message the simulator accepted, with the request body exactly as decoded."""

    wamid: str
    phone_number_id: str
    recipient: str
    kind: str
    body: Mapping[str, Any]
    traceparent: str | None = None  # the W3C trace context the sender's request carried, if any


@dataclass(frozen=True)
class _Delivery:
    body: bytes
    attempt: int = 0


# Reviews after which Meta refuses to send a template: paused and disabled for low quality.
_REFUSED_REVIEWS: Mapping[str, int] = MappingProxyType({"PAUSED": 132015, "DISABLED": 132016})


def _template_key(body: Mapping[str, Any]) -> tuple[str, str]:
    """A template send's (name, language code), as Meta keys a translation."""
    template = body["template"]
    return str(template.get("name")), str(template["language"].get("code"))


class _Reply(Exception):
    """Ends a request early with a Meta error answer."""

    def __init__(self, code: int, details: str, *, status: int | None = None, transient: bool | None = None) -> None:
        super().__init__(details)
        self.code, self.details, self.transient = code, details, transient
        self.status = status if status is not None else http_status_for(code)


class _Outbox:
    """Webhooks due at given loop times, started in due order by one background task; at most `concurrency` posts
    in flight (1: one at a time, so each is posted before the next starts)."""

    def __init__(self, deliver: Callable[[_Delivery], Awaitable[None]], concurrency: int = 1) -> None:
        self._deliver = deliver
        self._slots = asyncio.Semaphore(concurrency)
        self._posting: set[asyncio.Task[None]] = set()
        self._heap: list[tuple[float, int, _Delivery]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Webhooks waiting to be posted or being posted."""
        return len(self._heap) + len(self._posting)

    def start(self) -> None:
        """Starts the posting task in the running loop."""
        self._task = asyncio.create_task(self._run(), name="whatsapp-simulator-outbox")

    def put(self, due: float, delivery: _Delivery) -> None:
        """Queues one webhook for its due time."""
        heapq.heappush(self._heap, (due, next(self._order), delivery))
        self._idle.clear()
        self._wake.set()

    async def drain(self, timeout: float) -> bool:
        """Waits until everything queued so far is posted (or dropped); False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Cancels the posting task; whatever is still queued is discarded."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._posting):
            task.cancel()
        if self._posting:
            await asyncio.wait(self._posting)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._heap:
                # Idle only once the posts in flight are done too (they settle it); a webhook queued meanwhile
                # starts at once rather than after every post in flight has been answered.
                self._settle()
                self._wake.clear()
                await self._wake.wait()
                continue
            due = self._heap[0][0]
            if due > loop.time():
                # One timer handle, not a wait_for task per wait: put() wakes us early for an earlier webhook.
                self._wake.clear()
                timer = loop.call_at(due, self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    timer.cancel()
                continue
            _, _, delivery = heapq.heappop(self._heap)
            await self._slots.acquire()
            task = asyncio.create_task(self._post(delivery))
            self._posting.add(task)
            task.add_done_callback(self._posting.discard)

    async def _post(self, delivery: _Delivery) -> None:
        try:
            await self._deliver(delivery)
        except Exception:  # one bad delivery must not end the posting of all the others
            _log.exception("webhook delivery failed")
        finally:
            self._slots.release()
            self._posting.discard(asyncio.current_task())
            self._settle()

    def _settle(self) -> None:
        if not self._heap and not self._posting:
            self._idle.set()


class WhatsAppSimulator:
    """POST /{version}/{phone_number_id}/messages like Meta, then sent/delivered/read webhooks, signed."""

    def __init__(self, config: SimulatorConfig | None = None, /, **options: Any) -> None:
        self.config = replace(config or SimulatorConfig(), **options)
        self.counters = SimulatorCounters()
        self.sent_messages: list[SentMessage] = []
        self._rng = random.Random(self.config.seed)
        self._recent: dict[str, deque[float]] = {}
        self._last_to_pair: dict[tuple[str, str], float] = {}
        self._last_inbound: dict[tuple[str, str], float] = {}
        self._injected: deque[tuple[int, int | None]] = deque()
        self._reviews: dict[tuple[str, str], str] = {}  # (name, language) -> the newest review it announced
        self._closing = asyncio.Event()
        self._served: Served | None = None
        self._poster: WebhookPoster | None = None
        self._outbox: _Outbox | None = None
        self._posts = 0  # webhook posts so far: picks the next of several webhook URLs
        self._url: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give the driver, e.g. http://127.0.0.1:40123 (the driver adds /{version}/...)."""
        if self._url is None:
            raise RuntimeError("the simulator is not started")
        return self._url

    async def start(self) -> None:
        """Binds the server (port 0: ephemeral) and starts the webhook task."""
        app = web.Application()
        app.router.add_post("/{version}/{phone_number_id}/messages", self._handle_send)
        self._served = await serve(app, self.config.host, self.config.port, access_log=None, shutdown_timeout=1.0)
        self._url = self._served.url
        # Keep-alive connections, as many as posts in flight.
        self._poster = WebhookPoster(self.config.webhook_concurrency, self.config.webhook_timeout)
        self._outbox = _Outbox(self._post_webhook, self.config.webhook_concurrency)
        self._outbox.start()

    async def stop(self, *, drain: bool = True, timeout: float = 5.0) -> None:
        """Stops serving; with drain, posts the queued webhooks first (up to timeout), then cancels the rest."""
        self._closing.set()  # releases answers held back for the timeout fault
        if self._served is not None:
            await self._served.close()
            self._served = None
        if self._outbox is not None:
            if drain:
                await self._outbox.drain(timeout)
            await self._outbox.close()
            self._outbox = None
        if self._poster is not None:
            await self._poster.aclose()
            self._poster = None

    async def __aenter__(self) -> WhatsAppSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- controls for tests ----------------------------------------------------------------------------------------

    def inject_error(self, code: int, *, times: int = 1, http_status: int | None = None) -> None:
        """The next `times` valid send requests fail with this Meta code (and its usual HTTP status)."""
        self._injected.extend([(code, http_status)] * times)

    def open_window(self, recipient: str, phone_number_id: str = DEFAULT_PHONE_NUMBER_ID) -> None:
        """Marks the customer-service window open, as if the recipient had just written to us."""
        self._last_inbound[(phone_number_id, _digits(recipient))] = time.time()

    async def simulate_inbound(self, sender: str, text: str = "hello",
                               phone_number_id: str = DEFAULT_PHONE_NUMBER_ID) -> str:
        """A user writes to us: opens the window, counts towards throughput, posts the inbound webhook."""
        wamid = self._wamid(sender)
        self.open_window(sender, phone_number_id)
        self._count_throughput(phone_number_id)
        body = inbound_webhook_body(self.config.business_account_id, phone_number_id, self._display(phone_number_id),
                                    sender=_digits(sender), wamid=wamid, timestamp=int(time.time()), text=text)
        self._schedule([body], 0.0)
        return wamid

    def simulate_template_status(self, template_id: int, name: str, language: str, event: str,
                                 reason: str | None = None) -> None:
        """Meta reviewed a template: posts a message_template_status_update webhook, and from now on refuses sends
        of it as Meta does when the review pauses (132015) or disables (132016) it."""
        self._reviews[(name, language)] = event
        body = template_status_webhook_body(self.config.business_account_id, template_id=template_id, name=name,
                                            language=language, event=event, time=int(time.time()), reason=reason)
        self._schedule([body], 0.0)

    @property
    def webhook_url(self) -> str | None:
        """Where webhooks go; settable while running, e.g. once a receiver that needs the simulator's URL is up."""
        return self.config.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self.config = replace(self.config, webhook_url=url)

    @property
    def pending_webhooks(self) -> int:
        """Webhooks queued and not yet posted."""
        return self._outbox.pending if self._outbox else 0

    # -- the send endpoint -----------------------------------------------------------------------------------------

    async def _handle_send(self, request: web.Request) -> web.StreamResponse:
        self.counters.requests += 1
        raw = await request.read()
        await self._latency()
        try:
            accepted, receipts = self._decide(request.match_info["version"], request.match_info["phone_number_id"],
                                              request.headers.get("Authorization"), raw,
                                              request.headers.get("traceparent"))
        except _Reply as reply:
            self.counters.rejected[reply.code] += 1
            return web.json_response(error_body(reply.code, reply.details, self._trace_id(),
                                                is_transient=reply.transient), status=reply.status)
        if accepted is None:  # mark-as-read
            return web.json_response({"success": True})
        answer = _success_body(accepted)
        if self._chance(self.config.timeout_rate):
            # Meta has the message (receipts follow) but the answer never arrives in time: the ambiguous case.
            self.counters.timeouts += 1
            self._schedule(receipts, self.config.receipt_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.config.timeout_hold)
            return web.json_response(answer)
        response = web.json_response(answer)
        await response.prepare(request)
        await response.write_eof()
        self._schedule(receipts, self.config.receipt_interval)  # only now: receipts never overtake the answer
        return response

    def _decide(self, version: str, phone_number_id: str, authorization: str | None,
                raw: bytes, traceparent: str | None = None) -> tuple[SentMessage | None, list[dict[str, Any]]]:
        """The accepted message (None for mark-as-read) and its webhooks; _Reply for every refusal."""
        self._check_path(version, phone_number_id)
        self._check_auth(authorization)
        if self._injected:
            code, status = self._injected.popleft()
            raise _Reply(code, "injected by the test", status=status)
        if self._chance(self.config.error_rate):
            status, code = self._rng.choice(_TRANSIENT)
            raise _Reply(code, "Service temporarily unavailable (simulated)", status=status, transient=True)
        body = _decode(raw)
        try:
            kind = validate_send_body(body)
        except Reject as reject:
            raise _Reply(reject.code, reject.details) from None
        if kind == "read":
            return None, []
        recipient = _digits(str(body.get("to") or body.get("recipient")))
        self._check_limits(phone_number_id, recipient)
        self._check_template(kind, body)
        self._check_review(kind, body)
        failure = self._failure(phone_number_id, recipient, kind)
        if failure is not None and self.config.sync_failures:
            raise _Reply(*failure)
        message = self._accept(phone_number_id, recipient, kind, body, traceparent)
        return message, self._receipts(message, failure)

    def _check_path(self, version: str, phone_number_id: str) -> None:
        if not (version.startswith("v") and version[1:].replace(".", "", 1).isdigit()):
            raise _Reply(100, f"Unknown path components: /{version}/{phone_number_id}/messages")
        if self.config.phone_numbers and phone_number_id not in self.config.phone_numbers:
            raise _Reply(100, f"Unsupported post request. Object with ID '{phone_number_id}' does not exist")

    def _check_auth(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Reply(0, "An access token is required to request this resource.")
        if self.config.access_token is not None and token != self.config.access_token:
            raise _Reply(190, "Invalid OAuth access token - Cannot parse access token")

    def _check_limits(self, phone_number_id: str, recipient: str) -> None:
        now = asyncio.get_running_loop().time()
        recent = self._recent.setdefault(phone_number_id, deque())
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if self.config.mps_limit is not None and len(recent) >= self.config.mps_limit:
            raise _Reply(130429, f"Rate limit of {self.config.mps_limit} messages per second hit for this number")
        window = self.config.pair_window
        last = self._last_to_pair.get((phone_number_id, recipient))
        if window and last is not None and now - last < window:
            raise _Reply(131056, "Message failed to send because there were too many messages sent from this phone "
                                 "number to the same phone number in a short period of time")

    def _check_template(self, kind: str, body: Mapping[str, Any]) -> None:
        if kind != "template" or self.config.templates is None:
            return
        key = _template_key(body)
        if key not in self.config.templates:
            raise _Reply(132001, f"template name ({key[0]}) does not exist in {key[1]}")

    def _check_review(self, kind: str, body: Mapping[str, Any]) -> None:
        if kind != "template" or not self._reviews:
            return
        name, language = _template_key(body)
        review = self._reviews.get((name, language), "")
        refusal = _REFUSED_REVIEWS.get(review)
        if refusal is not None:
            raise _Reply(refusal, f"template {name} is {review.lower()}")

    def _failure(self, phone_number_id: str, recipient: str, kind: str) -> tuple[int, str] | None:
        if recipient in self.config.undeliverable:
            return 131026, "Message Undeliverable."
        if self.config.enforce_window and kind != "template" and not self._window_open(phone_number_id, recipient):
            return 131047, "Message failed to send because more than 24 hours have passed since the customer last " \
                           "replied to this number."
        return None

    def _window_open(self, phone_number_id: str, recipient: str) -> bool:
        opened = self._last_inbound.get((phone_number_id, recipient))
        return opened is not None and time.time() - opened < self.config.window_seconds

    def _accept(self, phone_number_id: str, recipient: str, kind: str, body: Mapping[str, Any],
                traceparent: str | None = None) -> SentMessage:
        self._count_throughput(phone_number_id)
        self._last_to_pair[(phone_number_id, recipient)] = asyncio.get_running_loop().time()
        message = SentMessage(self._wamid(recipient), phone_number_id, recipient, kind, body, traceparent)
        self.sent_messages.append(message)
        self.counters.sent += 1
        return message

    def _count_throughput(self, phone_number_id: str) -> None:
        # Meta counts inbound and outbound messages alike against a number's throughput.
        self._recent.setdefault(phone_number_id, deque()).append(asyncio.get_running_loop().time())

    # -- receipts and webhooks -------------------------------------------------------------------------------------

    def _receipts(self, message: SentMessage, failure: tuple[int, str] | None) -> list[dict[str, Any]]:
        callback = message.body.get("biz_opaque_callback_data")
        now = int(time.time())
        if failure is not None:
            self.counters.failed[failure[0]] += 1
            statuses = [status_object(message.wamid, "failed", now, message.recipient, callback_data=callback,
                                      errors=[webhook_error(*failure)])]
        else:
            pricing = _pricing(message.kind)
            statuses = [status_object(message.wamid, name, now, message.recipient, callback_data=callback,
                                      pricing=pricing if name != "read" else None) for name in self._status_plan()]
        display = self._display(message.phone_number_id)
        return [status_webhook_body(self.config.business_account_id, message.phone_number_id, display, [status])
                for status in statuses]

    def _status_plan(self) -> list[str]:
        plan = ["sent", "delivered", "read"]
        if self._chance(self.config.read_without_delivered_rate):
            plan.remove("delivered")  # Meta: read and delivered at once (chat open) sends no `delivered`
        if self._chance(self.config.reorder_rate):
            at = self._rng.randrange(len(plan) - 1)
            plan[at], plan[at + 1] = plan[at + 1], plan[at]
        if self._chance(self.config.duplicate_rate):
            at = self._rng.randrange(len(plan))
            plan.insert(at + 1, plan[at])
        return plan

    def _schedule(self, bodies: Sequence[Mapping[str, Any]], interval: float) -> None:
        if self.config.webhook_url is None or self._outbox is None:
            return
        start = asyncio.get_running_loop().time()
        for step, body in enumerate(bodies, start=1):
            # Compact, as Meta posts them.
            self._outbox.put(start + interval * step, _Delivery(json.dumps(body, separators=(",", ":")).encode()))

    async def _post_webhook(self, delivery: _Delivery) -> None:
        if self._poster is None or self._outbox is None or self.config.webhook_url is None:
            return  # stopping: nothing more goes out
        headers = {**_WEBHOOK_HEADERS, SIGNATURE_HEADER: hub_signature(delivery.body, self.config.app_secret)}
        urls = self.config.webhook_url.split(",")
        url, self._posts = urls[self._posts % len(urls)].strip(), self._posts + 1
        try:
            delivered = 200 <= await self._poster.post(url, delivery.body, headers) < 300
        except PostFailed:
            delivered = False
        if delivered:
            self.counters.webhooks_posted += 1
            return
        self.counters.webhook_failures += 1
        if delivery.attempt + 1 >= self.config.webhook_attempts:
            self.counters.webhooks_dropped += 1
            _log.warning("webhook dropped after %d attempts", delivery.attempt + 1)
            return
        # A retry goes to the back of the queue: like Meta's, redelivery can overtake nothing but be overtaken.
        delay = self.config.webhook_retry_delay * 2 ** delivery.attempt
        self._outbox.put(asyncio.get_running_loop().time() + delay, replace(delivery, attempt=delivery.attempt + 1))

    # -- helpers ---------------------------------------------------------------------------------------------------

    async def _latency(self) -> None:
        low, high = self.config.latency
        if high > 0:
            await asyncio.sleep(self._rng.uniform(low, high))

    def _chance(self, rate: float) -> bool:
        # No draw at all for a zero rate, so enabling one fault does not shift the others' sequences.
        return rate > 0 and self._rng.random() < rate

    def _wamid(self, recipient: str) -> str:
        raw = f"HBgL{_digits(recipient)}FQIAERgS{self._rng.getrandbits(80):020X}AA=="
        return "wamid." + base64.b64encode(raw.encode()).decode()

    def _trace_id(self) -> str:
        return "A" + "".join(self._rng.choices(string.ascii_letters + string.digits, k=20))

    def _display(self, phone_number_id: str) -> str:
        return self.config.phone_numbers.get(phone_number_id, DEFAULT_DISPLAY_NUMBER)


def _success_body(message: SentMessage) -> dict[str, Any]:
    return {"messaging_product": "whatsapp",
            "contacts": [{"input": str(message.body.get("to") or message.recipient), "wa_id": message.recipient}],
            "messages": [{"id": message.wamid, "message_status": "accepted"}]}


def _pricing(kind: str) -> dict[str, Any]:
    if kind == "template":
        return {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}
    return {"billable": False, "pricing_model": "PMP", "category": "service", "type": "free_customer_service"}


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Reply(100, "Invalid parameter: the body is not valid JSON") from None


def _digits(number: str) -> str:
    # Meta normalises the `to` number: wa_id is digits only.
    return "".join(ch for ch in number if ch.isdigit()) or number


# -- command line ----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`switchboard simulator`: serves until SIGINT/SIGTERM; secrets come from the environment only."""
    config = config_from_args(_parser().parse_args(argv), os.environ)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(config))
    except KeyboardInterrupt:
        return 130
    return 0


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> SimulatorConfig:
    """The SimulatorConfig for parsed command-line arguments and the environment."""
    numbers = dict(pair.split("=", 1) if "=" in pair else (pair, DEFAULT_DISPLAY_NUMBER) for pair in args.phone_number)
    return SimulatorConfig(
        host=args.host, port=args.port, api_version=args.api_version,
        access_token=environ.get(ENV_ACCESS_TOKEN) or None,
        app_secret=environ.get(ENV_APP_SECRET) or DEFAULT_APP_SECRET,
        webhook_url=args.webhook_url, phone_numbers=numbers or {DEFAULT_PHONE_NUMBER_ID: DEFAULT_DISPLAY_NUMBER},
        seed=args.seed, latency=(args.latency_min, args.latency_max), mps_limit=args.mps or None,
        pair_window=args.pair_window or None, enforce_window=not args.no_window,
        undeliverable=frozenset(_digits(n) for n in args.undeliverable), sync_failures=args.sync_failures,
        error_rate=args.error_rate, timeout_rate=args.timeout_rate, timeout_hold=args.timeout_hold,
        duplicate_rate=args.duplicate_rate, reorder_rate=args.reorder_rate,
        read_without_delivered_rate=args.read_without_delivered_rate, receipt_interval=args.receipt_interval,
        webhook_concurrency=args.webhook_concurrency,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard simulator", description=__doc__,
                                     epilog=f"Secrets: {ENV_ACCESS_TOKEN} (unset: any bearer token passes), "
                                            f"{ENV_APP_SECRET} (unset: {DEFAULT_APP_SECRET!r}).")
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8089, help="0 for an ephemeral port (default 8089)")
    add("--api-version", default=GRAPH_API_VERSION)
    add("--webhook-url", help="where to post signed webhooks; several, comma-separated, take turns (default: do "
                              "not post)")
    add("--phone-number", action="append", default=[], metavar="ID[=DISPLAY]", help="a phone number id to serve")
    add("--seed", type=int, default=0)
    add("--latency-min", type=float, default=0.0)
    add("--latency-max", type=float, default=0.0)
    add("--mps", type=int, default=80, help="messages per second per number before 130429 (0: no limit)")
    add("--pair-window", type=float, default=6.0, help="seconds between messages to one recipient (0: no limit)")
    add("--no-window", action="store_true", help="allow free-form messages without an open 24-hour window")
    add("--undeliverable", action="append", default=[], metavar="NUMBER", help="fails with 131026")
    add("--sync-failures", action="store_true", help="131026/131047 in the send answer, not in a webhook")
    add("--error-rate", type=float, default=0.0, help="share of requests answered 5xx")
    add("--timeout-rate", type=float, default=0.0, help="share of accepted messages whose answer is held")
    add("--timeout-hold", type=float, default=30.0)
    add("--duplicate-rate", type=float, default=0.0)
    add("--reorder-rate", type=float, default=0.0)
    add("--read-without-delivered-rate", type=float, default=0.0)
    add("--receipt-interval", type=float, default=0.01)
    add("--webhook-concurrency", type=int, default=1, help="webhooks posted at once (1: in due order)")
    return parser


async def _serve(config: SimulatorConfig) -> None:
    simulator = WhatsAppSimulator(config)
    await simulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    numbers = ", ".join(f"{pnid} ({mask_phone(display)})" for pnid, display in config.phone_numbers.items())
    print(f"WhatsApp Cloud API simulator at {simulator.url}/{config.api_version}/<phone_number_id>/messages; "
          f"numbers: {numbers}; webhooks to {config.webhook_url or 'nowhere'}", flush=True)
    await stop.wait()
    await simulator.stop()
    print(f"simulator stopped: {simulator.counters}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
