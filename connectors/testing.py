"""A contract suite every channel driver must pass, and the small test tools it needs (pytest required)."""

from __future__ import annotations

import abc
import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import pytest
from aiohttp import web

from connectors._callback_reference import query_of, with_callback_reference
from connectors._driver import ChannelDriver
from connectors._errors import MalformedWebhook, SignatureInvalid, SignatureMissing, WebhookRejected
from connectors._items import InboundItem, NormalizedItem, ReceiptItem, ReceiptStatus, TemplateUpdateItem
from connectors._messages import OutboundMessage
from connectors._results import LocalErrorCode, Outcome, ProviderError, SendResult
from switchboard.serving import Served, serve

__all__ = ["FAILURE_OUTCOMES", "ChannelDriverContract", "ContractBackend", "WebhookCase", "WebhookReceiver",
           "wait_until"]

FAILURE_OUTCOMES = tuple(outcome for outcome in Outcome if outcome is not Outcome.ACCEPTED)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, *, what: str = "condition") -> None:
    """Polls predicate until true; TimeoutError naming `what` after `timeout` seconds. Never a bare sleep."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.005)


@dataclass(frozen=True)
class WebhookCase:
    """A raw webhook body and the item classes (and receipt statuses) parsing must yield, in order."""

    name: str
    raw_body: bytes
    expected: tuple[type, ...]
    statuses: tuple[ReceiptStatus, ...] = ()


class ContractBackend(abc.ABC):
    """What a driver's tests supply so the contract can drive it: a driver, a provider to fail on demand, samples."""

    driver: ChannelDriver

    @abc.abstractmethod
    def sample_message(self, message_id: str) -> OutboundMessage:
        """A message the provider accepts."""

    @abc.abstractmethod
    def invalid_message(self, message_id: str) -> OutboundMessage:
        """A message the driver must refuse before sending (a channel limit broken)."""

    @abc.abstractmethod
    async def fail_next_send(self, outcome: Outcome) -> None:
        """Makes the provider refuse the next send in a way the driver must classify as `outcome`."""

    @abc.abstractmethod
    def classification_cases(self) -> Sequence[tuple[ProviderError, Outcome]]:
        """Provider errors and their expected outcomes; together they must cover every failure outcome."""

    @abc.abstractmethod
    def signed_headers(self, raw_body: bytes) -> dict[str, str]:
        """Headers the provider would send with this body, signature included."""

    @abc.abstractmethod
    def webhook_cases(self) -> Sequence[WebhookCase]:
        """Sample bodies covering every receipt status and item kind the driver's capabilities declare."""

    @abc.abstractmethod
    async def receipt_webhook(self, result: SendResult) -> tuple[Mapping[str, str], bytes]:
        """The signed status webhook (headers, raw body) the provider sends for a message this driver sent.

        Never called for a channel whose capabilities declare no receipts (Telegram, LINE).
        """

    def injectable_failures(self) -> frozenset[Outcome]:
        """The outcomes fail_next_send can provoke (all of them unless a provider cannot)."""
        return frozenset(FAILURE_OUTCOMES)


class ChannelDriverContract:
    """Subclass as `Test...`, set `driver_class` and override the `contract_backend` fixture.

    Cases are generated from the driver's declared capabilities, so a channel without an outcome or without
    receipts has no such case at all (nothing is skipped at run time); ReceiptContract adds the receipt tests.
    """

    driver_class: ClassVar[type[ChannelDriver]]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "outcome" in metafunc.fixturenames:
            outcomes = [o for o in FAILURE_OUTCOMES if o in self.driver_class.capabilities.outcomes]
            metafunc.parametrize("outcome", outcomes, ids=str)

    def test_receipt_tests_match_the_declared_capabilities(self, contract_backend: ContractBackend) -> None:
        assert type(contract_backend.driver).channel == self.driver_class.channel
        assert isinstance(self, ReceiptContract) == bool(self.driver_class.capabilities.receipts)

    @pytest.fixture
    def contract_backend(self) -> ContractBackend:
        """Overridden by each driver's test class."""
        raise NotImplementedError("override the contract_backend fixture")

    def test_driver_names_its_channel(self, contract_backend: ContractBackend) -> None:
        channel = type(contract_backend.driver).channel
        assert channel
        assert channel == channel.lower()
        assert channel.isidentifier()

    async def test_send_succeeds(self, contract_backend: ContractBackend) -> None:
        result = await contract_backend.driver.send(contract_backend.sample_message("contract-ok-1"))
        assert result.outcome is Outcome.ACCEPTED, result
        assert result.accepted
        assert result.provider_message_id
        assert result.message_id == "contract-ok-1"
        assert result.error is None

    async def test_send_failure_is_classified(self, contract_backend: ContractBackend, outcome: Outcome) -> None:
        # `outcome` runs over the driver's own failure outcomes only (pytest_generate_tests), and the backend
        # must be able to provoke each of them: a driver outcome no test can reach is an untested outcome.
        assert outcome in contract_backend.injectable_failures(), f"the backend cannot provoke {outcome}"
        await contract_backend.fail_next_send(outcome)
        result = await contract_backend.driver.send(contract_backend.sample_message(f"contract-{outcome}"))
        assert result.outcome is outcome, result
        assert result.error is not None
        assert result.provider_message_id is None
        assert contract_backend.driver.classify(result.error) is outcome

    async def test_invalid_message_fails_permanently_without_raising(self, contract_backend: ContractBackend) -> None:
        result = await contract_backend.driver.send(contract_backend.invalid_message("contract-invalid"))
        assert result.outcome is Outcome.PERMANENT_FAILURE
        assert result.error is not None
        assert result.error.code == LocalErrorCode.INVALID_MESSAGE

    def test_classification_cases(self, contract_backend: ContractBackend) -> None:
        wrong = [(error.code, expected, got) for error, expected in contract_backend.classification_cases()
                 if (got := contract_backend.driver.classify(error)) is not expected]
        assert not wrong, f"(code, expected, got): {wrong}"

    def test_classification_cases_cover_every_outcome(self, contract_backend: ContractBackend) -> None:
        covered = {expected for _, expected in contract_backend.classification_cases()}
        declared = type(contract_backend.driver).capabilities.outcomes
        assert covered >= set(FAILURE_OUTCOMES) & declared
        assert covered <= declared, "a case expects an outcome the capabilities do not declare"

    def test_classify_is_total_and_local_errors_agree(self, contract_backend: ContractBackend) -> None:
        classify = contract_backend.driver.classify
        assert isinstance(classify(ProviderError("no-such-code")), Outcome)
        assert classify(ProviderError(LocalErrorCode.TIMEOUT)) is Outcome.RETRY_LATER
        assert classify(ProviderError(LocalErrorCode.NETWORK)) is Outcome.RETRY_LATER
        assert classify(ProviderError(LocalErrorCode.INVALID_MESSAGE)) is Outcome.PERMANENT_FAILURE
        assert classify(ProviderError(LocalErrorCode.CREDENTIALS)) is Outcome.STOP_ACCOUNT
        assert classify(ProviderError(LocalErrorCode.HTTP, http_status=502)) is Outcome.RETRY_LATER

    def test_webhook_without_signature_is_refused_401(self, contract_backend: ContractBackend) -> None:
        body = contract_backend.webhook_cases()[0].raw_body
        with pytest.raises(SignatureMissing) as refused:
            contract_backend.driver.verify_webhook({"Content-Type": "application/json"}, body)
        assert refused.value.http_status == 401

    def test_webhook_with_wrong_signature_is_refused_403(self, contract_backend: ContractBackend) -> None:
        body = contract_backend.webhook_cases()[0].raw_body
        headers = contract_backend.signed_headers(body)
        if type(contract_backend.driver).capabilities.signed_body:
            with pytest.raises(SignatureInvalid) as refused:
                contract_backend.driver.verify_webhook(headers, body + b" ")
            assert refused.value.http_status == 403
        forged = {name: "sha256=" + "0" * 64 if value != "application/json" else value
                  for name, value in headers.items()}
        with pytest.raises(SignatureInvalid) as refused:
            contract_backend.driver.verify_webhook(forged, body)
        assert refused.value.http_status == 403

    def test_webhook_with_valid_signature_passes(self, contract_backend: ContractBackend) -> None:
        for case in contract_backend.webhook_cases():
            headers = contract_backend.signed_headers(case.raw_body)
            contract_backend.driver.verify_webhook(headers, case.raw_body)
            contract_backend.driver.verify_webhook({k.lower(): v for k, v in headers.items()}, case.raw_body)

    def test_every_webhook_case_parses(self, contract_backend: ContractBackend) -> None:
        for case in contract_backend.webhook_cases():
            items = contract_backend.driver.parse_webhook(case.raw_body)
            assert tuple(type(item) for item in items) == case.expected, case.name
            statuses = tuple(item.status for item in items if isinstance(item, ReceiptItem))
            assert statuses == case.statuses, case.name
            assert all(item.channel == type(contract_backend.driver).channel for item in items), case.name

    def test_webhook_cases_cover_the_capabilities(self, contract_backend: ContractBackend) -> None:
        capabilities = type(contract_backend.driver).capabilities
        parsed = [item for case in contract_backend.webhook_cases()
                  for item in contract_backend.driver.parse_webhook(case.raw_body)]
        assert {item.status for item in parsed if isinstance(item, ReceiptItem)} >= capabilities.receipts
        if capabilities.inbound:
            assert any(isinstance(item, InboundItem) for item in parsed)
        if capabilities.template_updates:
            assert any(isinstance(item, TemplateUpdateItem) for item in parsed)

    def test_malformed_body_is_refused_400(self, contract_backend: ContractBackend) -> None:
        for body in (b"not json", b"[]", b'{"object": "something else"}'):
            with pytest.raises(MalformedWebhook) as refused:
                contract_backend.driver.parse_webhook(body)
            assert refused.value.http_status == 400


class ReceiptContract(ChannelDriverContract):
    """The contract of a channel that sends delivery receipts: subclass this one instead for such a driver."""

    async def test_message_id_round_trips_to_the_receipt(self, contract_backend: ContractBackend) -> None:
        capabilities = type(contract_backend.driver).capabilities
        result = await contract_backend.driver.send(contract_backend.sample_message("contract-round-trip"))
        assert result.accepted, result
        headers, raw = await contract_backend.receipt_webhook(result)
        contract_backend.driver.verify_webhook(headers, raw)
        items = contract_backend.driver.parse_webhook(raw)
        if capabilities.callback_reference:  # as the normaliser reads it: from the query the receiver passed along
            items = with_callback_reference(items, query_of(headers) or "")
        receipts = [item for item in items if isinstance(item, ReceiptItem)]
        assert receipts
        ours = "contract-round-trip" if capabilities.receipt_message_id or capabilities.callback_reference else None
        assert {(r.message_id, r.provider_message_id) for r in receipts} == {(ours, result.provider_message_id)}


class WebhookReceiver:
    """An aiohttp server on 127.0.0.1 (ephemeral port) that verifies posted webhooks with a driver and parses them."""

    def __init__(self, driver: ChannelDriver, path: str = "/webhook") -> None:
        self.driver = driver
        self.path = path
        self.items: list[NormalizedItem] = []
        self.bodies: list[tuple[dict[str, str], bytes]] = []
        self.refused: Counter[int] = Counter()
        self._changed = asyncio.Condition()
        self._served: Served | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The full webhook URL to give the provider."""
        if self._url is None:
            raise RuntimeError("the receiver is not started")
        return self._url

    async def start(self) -> None:
        """Binds 127.0.0.1 on an ephemeral port."""
        app = web.Application()
        app.router.add_post(self.path, self._post)
        app.router.add_get(self.path, self._get)
        self._served = await serve(app, access_log=None, shutdown_timeout=1.0)
        self._url = f"{self._served.url}{self.path}"

    async def stop(self) -> None:
        """Stops serving."""
        if self._served is not None:
            await self._served.close()
            self._served = None

    async def wait_for(self, predicate: Callable[[list[NormalizedItem]], bool], timeout: float = 5.0) -> None:
        """Waits (on a Condition, no polling) until predicate(items) holds; TimeoutError after `timeout`."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.items)), timeout)

    async def _post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)
        try:
            self.driver.verify_webhook(headers, raw)  # on the exact bytes, before any parsing
            items = self.driver.parse_webhook(raw)
        except WebhookRejected as refused:
            self.refused[refused.http_status] += 1
            return web.Response(status=refused.http_status, text=type(refused).__name__)
        async with self._changed:
            self.bodies.append((headers, raw))
            self.items.extend(items)
            self._changed.notify_all()
        return web.Response(text="ok")

    async def _get(self, request: web.Request) -> web.Response:
        try:
            challenge = self.driver.answer_handshake(dict(request.query))
        except WebhookRejected as refused:
            return web.Response(status=refused.http_status)
        return web.Response(text=challenge) if challenge is not None else web.Response(status=404)
