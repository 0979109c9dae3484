"""The demo's moving parts: the WhatsApp and Twilio simulators in this process; the other parts as children."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from connectors import twilio_sms, whatsapp, whatsapp_simulator
from connectors.twilio_simulator import TwilioCounters, TwilioSimulatorConfig
from connectors.whatsapp_simulator import SimulatorConfig, SimulatorCounters, WhatsAppSimulator
from switchboard.config import PipelineConfig
from switchboard.errors import SwitchboardError
from switchboard.groups import describe_group
from switchboard.workers import WorkerProcess

__all__ = ["API_BANNER", "API_CLIENT", "CONSOLE_BANNER", "ApiCommand", "DemoSecrets",
           "NormaliserCommand", "PartFailed", "Processes", "ReceiverCommand", "log_paths",
           "simulator_config", "simulator_summary", "start_faults", "twilio_config", "twilio_summary",
           "wait_for_group", "wait_for_line"]

RECEIVER_BANNER = re.compile(r"webhook receiver on (http://[^/\s]+)/webhooks/")
NORMALISER_BANNER = re.compile(r"webhook normaliser: reading")
API_BANNER = re.compile(r"read API on (http://[^/\s]+)/v1/")
CONSOLE_BANNER = re.compile(r"console for tenant \S+ \(one use, open within [^)]*\): (http://\S+)")
# The simulator's faults: a few transient 5xx answers, receipts posted twice or swapped; numbers not on WhatsApp
# come from the scenario. Its pair window sits just under the pipeline's pair limit (1 per 6 s), so the limit the
# pipeline keeps is the one that shows.
ERROR_RATE, DUPLICATE_RATE, REORDER_RATE = 0.03, 0.1, 0.1
FIRST_SEND_ERROR = (131016, 503)  # "service temporarily unavailable" for the first send, so a retry always shows
SEED = 7
MPS_LIMIT = 1000  # an upgraded number's throughput; the 130429 bursts are injected (see demo.FAULTS)
WEBHOOK_CONCURRENCY = 16  # Meta posts webhooks in parallel; one at a time would cap receipts at ~100/s here


class PartFailed(SwitchboardError):
    """A part of the demo stopped or did not come up; the message ends with the tail of its log."""


@dataclass(frozen=True)
class ReceiverCommand:
    """`switchboard receiver` for the demo's channels, on `port` (0: an ephemeral one; it prints the one it got)."""

    bootstrap: str
    prefix: str
    partitions: int
    port: int = 0
    channels: tuple[str, ...] = ("whatsapp",)
    worker_name: str = "webhook receiver"

    def command_line(self) -> list[str]:
        return ["receiver", "--bootstrap", self.bootstrap, "--port", str(self.port), "--topic-prefix", self.prefix,
                "--partitions", str(self.partitions), *(f"--channel={channel}" for channel in self.channels)]


@dataclass(frozen=True)
class NormaliserCommand:
    """`switchboard normaliser` for the demo's topics and declaration."""

    bootstrap: str
    prefix: str
    config: str
    worker_name: str = "normaliser"

    def command_line(self) -> list[str]:
        return ["normaliser", "--bootstrap", self.bootstrap, "--topic-prefix", self.prefix,
                "--group", f"{self.prefix}normaliser", "--config", self.config]


@dataclass(frozen=True)
class ApiCommand:
    """`switchboard api` over the demo's topics on an ephemeral port: its own projections, the console for a tenant."""

    bootstrap: str
    prefix: str
    root: str
    clients_file: str
    tenant: str
    worker_name: str = "read API"

    def command_line(self) -> list[str]:
        return ["api", "--bootstrap", self.bootstrap, "--topic-prefix", self.prefix, "--root", self.root,
                "--port", "0", "--clients-file", self.clients_file, "--console-tenant", self.tenant,
                "--ready-within", "0"]


@dataclass(frozen=True)
class DemoSecrets:
    """The simulator's access token and app secret: SWITCHBOARD_SIMULATOR_* when set, else fresh for this run.
    The children get them as the WhatsApp driver's variables; nothing is written to a file."""

    access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    api_secret: str = field(repr=False, default_factory=lambda: secrets.token_urlsafe(24))
    # The Twilio simulator's account: an account SID is "AC" and 32 hex digits, its auth token 32 hex digits.
    twilio_sid: str = field(default_factory=lambda: f"AC{secrets.token_hex(16)}")
    twilio_token: str = field(repr=False, default_factory=lambda: secrets.token_hex(16))
    sms_webhook_url: str = ""  # where Twilio posts status callbacks: the receiver's /webhooks/sms

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> DemoSecrets:
        return cls(environ.get(whatsapp_simulator.ENV_ACCESS_TOKEN) or secrets.token_urlsafe(24),
                   environ.get(whatsapp_simulator.ENV_APP_SECRET) or secrets.token_urlsafe(24))

    def child_environment(self) -> dict[str, str]:
        twilio = {twilio_sms.ENV_ACCOUNT_SID: self.twilio_sid, twilio_sms.ENV_AUTH_TOKEN: self.twilio_token,
                  twilio_sms.ENV_WEBHOOK_URL: self.sms_webhook_url} if self.sms_webhook_url else {}
        return {whatsapp.ENV_ACCESS_TOKEN: self.access_token, whatsapp.ENV_APP_SECRET: self.app_secret,
                whatsapp.ENV_VERIFY_TOKEN: secrets.token_urlsafe(12), API_SECRET_ENV: self.api_secret, **twilio}

    @staticmethod
    def api_clients(tenant: str) -> str:
        """The API's clients file: the demo reads the funnel as client `demo`, its secret in the environment."""
        return json.dumps({API_CLIENT: {"tenant": tenant, "secret_env": API_SECRET_ENV}})


API_CLIENT, API_SECRET_ENV = "demo", "SWITCHBOARD_DEMO_API_SECRET"


def simulator_config(config: PipelineConfig, secrets_: DemoSecrets, undeliverable: frozenset[str]) -> SimulatorConfig:
    """The simulator serving every WhatsApp sender of the declaration, with the demo's seeded faults."""
    numbers = {sender.address: f"1555{sender.address[-7:]}" for channel in config.channels
               if channel.kind.value == "whatsapp" for sender in channel.senders}
    pair = config.rate_limits.pair
    return SimulatorConfig(access_token=secrets_.access_token, app_secret=secrets_.app_secret, phone_numbers=numbers,
                           seed=SEED, latency=(0.02, 0.2), receipt_interval=0.4, undeliverable=undeliverable,
                           pair_window=0.8 * pair.per_seconds / pair.messages if pair else None,
                           error_rate=ERROR_RATE, duplicate_rate=DUPLICATE_RATE, reorder_rate=REORDER_RATE,
                           mps_limit=MPS_LIMIT, webhook_attempts=8, webhook_timeout=30.0,
                           webhook_concurrency=WEBHOOK_CONCURRENCY)


def twilio_config(secrets_: DemoSecrets) -> TwilioSimulatorConfig:
    """The Twilio simulator for the SMS fallback: each message sent, then delivered, a receipt interval apart."""
    return TwilioSimulatorConfig(secrets_.twilio_sid, secrets_.twilio_token, interval=0.4)


def twilio_summary(counters: TwilioCounters) -> str:
    refused = sum(counters.refused.values())
    return (f"{_count(counters.requests, 'SMS request')}, {counters.accepted} accepted, {refused} refused, "
            f"{_count(counters.callbacks_posted, 'status callback')} posted to the receiver"
            f"{f' ({counters.callback_failures} given up)' if counters.callback_failures else ''}")


def start_faults(simulator: WhatsAppSimulator) -> str:
    """Arms the first-send error; returns the faults in words."""
    code, status = FIRST_SEND_ERROR
    simulator.inject_error(code, http_status=status)
    config = simulator.config
    return (f"seed {config.seed}; faults: the first send answered {status} ({code}), then {config.error_rate:.0%} of "
            f"sends answered 5xx, {config.duplicate_rate:.0%} of messages with a receipt posted twice, "
            f"{config.reorder_rate:.0%} with two receipts swapped, {_count(len(config.undeliverable), 'number')} "
            f"not on WhatsApp")


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def simulator_summary(counters: SimulatorCounters) -> str:
    rejected = sum(counters.rejected.values())
    codes = ", ".join(f"{count}x {code}" for code, count in sorted(counters.rejected.items()))
    failed = ", ".join(f"{count}x {code}" for code, count in sorted(counters.failed.items()))
    return (f"{_count(counters.requests, 'send request')}, {counters.sent} accepted, {rejected} refused"
            f"{f' ({codes})' if codes else ''}, {_count(sum(counters.failed.values()), 'failed receipt')}"
            f"{f' ({failed})' if failed else ''}, {_count(counters.webhooks_posted, 'webhook')} posted to the receiver")


class Processes:
    """The demo's children; `check` fails as soon as one has exited, `stop_all` ends them all (SIGTERM, then
    SIGKILL after 30 s), in parallel."""

    def __init__(self) -> None:
        self.started: list[WorkerProcess[Any]] = []

    def start(self, process: WorkerProcess[Any]) -> WorkerProcess[Any]:
        process.start()
        self.started.append(process)
        return process

    def check(self, during: str = "the run") -> None:
        for process in self.started:
            if not process.is_running():
                raise _failed(process, f"exited with code {process.returncode} during {during}")

    def stop_all(self) -> dict[str, int]:
        """Exit codes by name of the children that were still running."""
        running = [p for p in self.started if p.is_running()]
        if not running:
            return {}
        with ThreadPoolExecutor(len(running)) as pool:
            codes = list(pool.map(lambda p: p.stop(), running))
        return {p.config.worker_name: code for p, code in zip(running, codes, strict=True)}


def _failed(process: WorkerProcess[Any], what: str) -> PartFailed:
    return PartFailed(f"the {process.config.worker_name} {what}; the end of its log {process.log_file}:\n"
                      f"{process.log_tail(40)}")


async def wait_for_line(process: WorkerProcess[Any], pattern: re.Pattern[str], processes: Processes,
                        timeout: float) -> re.Match[str]:
    """The first match of `pattern` in the process's log, once it is written; PartFailed if a part exits first."""
    deadline = time.monotonic() + timeout
    while True:
        found = pattern.search(process.log_file.read_text(errors="replace")) if process.log_file.exists() else None
        if found:
            return found
        processes.check("start-up")
        if time.monotonic() > deadline:
            raise _failed(process, f"did not come up within {timeout:.0f} s")
        await asyncio.sleep(0.1)  # a log file has no change notification that works everywhere


async def wait_for_group(bootstrap: str, group: str, members: int, process: WorkerProcess[Any],
                         processes: Processes, timeout: float) -> None:
    """Until the consumer group is Stable with `members` members; PartFailed if a part exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = await describe_group(bootstrap, group)
            if state.state == "Stable" and state.members == members:
                return
        except KafkaError:  # no coordinator yet on a fresh cluster: asked again below
            pass
        processes.check("start-up")
        if time.monotonic() > deadline:
            raise _failed(process, f"did not join consumer group {group} within {timeout:.0f} s")
        await asyncio.sleep(0.2)  # the coordinator has no push notification for group changes


def log_paths(processes: Sequence[WorkerProcess[Any]], relative_to: Path) -> list[str]:
    """The children's log files, relative to `relative_to` when they are inside it."""
    return [str(p.log_file.relative_to(relative_to)) if p.log_file.is_relative_to(relative_to) else str(p.log_file)
            for p in processes]
