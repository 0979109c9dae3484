"""The dispatcher's decisions for one sender account: lanes, token buckets, the pair limit and a circuit breaker."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors import Outcome, SendResult
from streams.pipeline._commands import priority_rank
from streams.pipeline._spill import LANE_JOBS, PAGE_JOBS, Spill, SpillPages, drain, pop_page, push
from streams.policies import DailyCount, SendWindow, TokenBucket
from streams.policies.send_window import window_limit

__all__ = ["BreakerSettings", "CircuitBreaker", "Dispatcher", "Limits", "SenderState"]

# Outcomes that say the provider (or the way to it) is unwell, as opposed to one message being wrong.
_PROVIDER_ERRORS = frozenset({Outcome.RETRY_LATER, Outcome.STOP_ACCOUNT})
_THROTTLE_PAUSE = 1.0  # seconds a sender pauses on a throttle that names no wait (Meta: retry after about 1 s)


@dataclass(frozen=True)
class BreakerSettings:
    """When a sender's circuit opens: at least `min_calls` of the last `window` results, `error_rate` of them bad."""

    window: int = 20
    min_calls: int = 10
    error_rate: float = 0.5
    open_seconds: float = 30.0


@dataclass
class CircuitBreaker:
    """Closed, open (until `open_until`) or half-open (one probe in flight); its state is part of the table row."""

    results: deque[bool] = field(default_factory=deque)  # True: a provider error
    open_until: float | None = None
    probing: bool = False

    def state(self, now: float) -> str:
        """closed, open or half_open."""
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until or self.probing else "half_open"

    def allows(self, now: float) -> bool:
        """Whether a send may go now; in half-open state exactly one probe may."""
        state = self.state(now)
        if state == "half_open":
            self.probing = True
            return True
        return state == "closed"

    def record(self, error: bool, now: float, settings: BreakerSettings) -> None:
        """Counts one result; a probe's result closes or re-opens the circuit."""
        if self.probing:
            self.probing = False
            self.results.clear()
            self.open_until = now + settings.open_seconds if error else None
            return
        self.results.append(error)
        while len(self.results) > settings.window:
            self.results.popleft()
        bad = sum(self.results)
        if len(self.results) >= settings.min_calls and bad / len(self.results) >= settings.error_rate:
            self.open_until = now + settings.open_seconds
            self.results.clear()


@dataclass(frozen=True)
class Limits:
    """A sender's limits from the pipeline: its own rate, and the minimum gap between sends to one recipient."""

    per_second: float
    burst: float
    pair_interval: float | None = None
    daily: int | None = None  # the sender's share of its tenant's and provider's daily quotas


@dataclass
class SenderState:
    """Everything one sender account keeps in the dispatcher's table row."""

    lanes: tuple[list[dict[str, Any]], ...] = field(default_factory=lambda: ([], [], []))
    bucket: TokenBucket | None = None
    # The bucket's burst and a second's refill can fall in one second; the window keeps every second at the rate.
    # A class-level default, so rows pickled before it existed read as having sent nothing lately.
    window: SendWindow | None = None
    today: DailyCount | None = None  # sends on the current UTC day (likewise a class-level default)
    pair_last: dict[str, float] = field(default_factory=dict)  # recipient address -> last send, within the gap
    inflight: dict[str, dict[str, Any]] = field(default_factory=dict)  # "message:attempt" -> job, before the call
    # Jobs settled since the runtime last moved them to its `dispatched` table (one row per job, so this row
    # stays small however many messages the sender has sent).
    settled: dict[str, str] = field(default_factory=dict)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    applied_offset: int = -1
    applied_cluster: str = ""
    # Per lane, its jobs beyond the LANE_JOBS this row keeps, in pages of their own (`_spill.py`). A class-level
    # default, so rows pickled before it existed read as having none.
    spill: tuple[Spill, Spill, Spill] = (Spill(), Spill(), Spill())

    @property
    def queued(self) -> int:
        """Jobs waiting in all lanes, their pages included."""
        return sum(len(lane) for lane in self.lanes) + self.spilled

    @property
    def spilled(self) -> int:
        """Jobs waiting in the lanes' pages."""
        return sum(spill.count for spill in self.spill)


class Dispatcher:
    """Pure decisions: which jobs go now, and what each send result tells the writer."""

    def __init__(self, breaker: Callable[[], BreakerSettings] = BreakerSettings) -> None:
        self._breaker = breaker  # read per result: the pipeline declaration is reloaded while running
        # Marks the jobs this process put in flight; one marked by another process lost its outcome with it.
        self.incarnation = uuid.uuid4().hex
        self.throttles = 0  # times ready() stopped for want of a token: the operators' rate-limiter metric

    def new_incarnation(self) -> None:
        """After a rebalance: marks made before it count as another process's.

        faust lets every batch finish before partitions are revoked, so a mark of the old incarnation left in a row
        belongs to a batch expelled from the group, which never wrote its settlement. Were the marks still this
        process's when the partition comes back to it, `orphans` would never answer them: the job would stay in
        flight in the row for good.
        """
        self.incarnation = uuid.uuid4().hex

    def orphans(self, state: SenderState) -> list[dict[str, Any]]:
        """`unknown` outcomes for jobs a dead worker had in flight: the writer reconciles them from receipts.

        Their records may never be redelivered (the row that marked them also moved the applied offset past
        them), so they are found here, in the restored row, by the incarnation that marked them.
        """
        lost = [job for job in state.inflight.values() if job.get("incarnation") != self.incarnation]
        for job in lost:
            del state.inflight[_key(job)]
            self._remember(state, _key(job), "unknown")
        return [outcome_command(job, "unknown") for job in lost]

    def admit(self, state: SenderState, job: dict[str, Any], settled_before: Callable[[str], bool],
              pages: SpillPages | None = None) -> dict[str, Any] | None:
        """Queues a job in its lane; a job settled before gets nothing, one lost mid-call an `unknown` outcome.

        With `pages`, a lane holding LANE_JOBS (or with pages already) queues the job on its last page; a copy of a
        job already paged is found when its page goes back into the lane (`_refill`). Without, lanes grow unbounded.
        """
        key = _key(job)
        if key in state.settled or settled_before(key):
            return None
        if key in state.inflight:  # the worker died during the provider call: reconcile, never re-send blindly
            del state.inflight[key]
            self._remember(state, key, "unknown")
            return outcome_command(job, "unknown")
        if _queued(state, job):
            return None
        lane = priority_rank(job["priority"])
        if pages is not None and (state.spill[lane].count or len(state.lanes[lane]) >= LANE_JOBS):
            state.spill = _with(state.spill, lane, push(state.spill[lane], lane, job, pages))
        else:
            state.lanes[lane].append(job)
        return None

    def probe(self, state: SenderState, job: dict[str, Any],
              settled_before: Callable[[str], str | None]) -> dict[str, Any] | None:
        """The answer to the writer's probe of an attempt it has heard nothing of: its outcome again if it settled
        (the first answer was lost), `unknown` if this row never had it or a dead worker had it in flight, nothing
        while it waits in a lane or is being sent (the writer asks again later)."""
        key = _key(job)
        if _queued(state, job):
            return None
        mark = state.inflight.get(key)
        if mark is not None and mark.get("incarnation") == self.incarnation:
            return None
        outcome = state.settled.get(key) or settled_before(key)
        if outcome is not None and mark is None:
            return outcome_command(job, outcome)
        if state.spilled:
            return None  # it may wait on a page, unread here: the writer asks again later, by then nearer the front
        # Lost with a dead worker's call, or never here (the row was restored from before the job reached it):
        # remembered as unknown, so a late copy of the job is never sent, and reconciled from receipts.
        state.inflight.pop(key, None)
        self._remember(state, key, "unknown")
        return outcome_command(job, "unknown")

    def ready(self, state: SenderState, limits: Limits, now: float, pages: SpillPages | None = None,
              settled_before: Callable[[str], bool] = lambda _: False,
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(jobs to send now, marked in flight; outcomes for jobs refused by an open circuit)."""
        refused = self._shed(state, now, pages, settled_before)
        if pages is not None:
            self._refill(state, pages, settled_before)
        sending: list[dict[str, Any]] = []
        for lane in state.lanes:
            for job in list(lane):
                if not self._may_send(state, job, limits, now):
                    continue
                if not _take_send(state, limits, now):
                    self.throttles += 1
                    return sending, refused
                lane.remove(job)
                self._start(state, job, limits, now)
                sending.append(job)
        return sending, refused

    def settle(self, state: SenderState, job: dict[str, Any], result: SendResult, now: float) -> dict[str, Any]:
        """Records a send's result and returns the outcome command for the writer."""
        key = _key(job)
        state.inflight.pop(key, None)
        self._remember(state, key, result.outcome.value)
        # A throttle is the provider pacing us, not failing: it pauses the sender instead of counting towards the
        # circuit, which would otherwise open on a burst over the tier and send every message by the fallback.
        state.breaker.record(result.outcome in _PROVIDER_ERRORS and not result.throttled, now, self._breaker())
        if state.window is not None and "sent_at" in job:
            state.window = state.window.recounted(float(job["sent_at"]), now)
        if result.throttled and state.bucket is not None:
            state.bucket = state.bucket.paused(now, result.retry_after or _THROTTLE_PAUSE)
        return outcome_command(job, result.outcome.value, result)

    def _may_send(self, state: SenderState, job: dict[str, Any], limits: Limits, now: float) -> bool:
        last = state.pair_last.get(job["address"])
        if limits.pair_interval is not None and last is not None and now - last < limits.pair_interval:
            return False  # this recipient waits; others behind it in the lane may go
        return state.breaker.allows(now)

    def _start(self, state: SenderState, job: dict[str, Any], limits: Limits, now: float) -> None:
        job["sent_at"] = now  # travels with the outcome: when the provider was called, for audits and tests
        job["incarnation"] = self.incarnation
        state.inflight[_key(job)] = job
        if limits.pair_interval is None:
            return
        state.pair_last[job["address"]] = now
        cutoff = now - limits.pair_interval  # a recipient whose gap has passed needs no entry
        if len(state.pair_last) > 64 and min(state.pair_last.values()) <= cutoff:
            state.pair_last = {a: t for a, t in state.pair_last.items() if t > cutoff}

    def _shed(self, state: SenderState, now: float, pages: SpillPages | None,
              settled_before: Callable[[str], bool]) -> list[dict[str, Any]]:
        """While the circuit is open, high and normal jobs fall back at once; low-priority ones wait it out."""
        if state.breaker.state(now) != "open":
            return []
        shed = [job for lane in state.lanes[:2] for job in lane]
        for lane in (0, 1):
            state.lanes[lane].clear()
            if pages is not None and state.spill[lane].count:
                spill, paged = drain(state.spill[lane], lane, pages)
                state.spill = _with(state.spill, lane, spill)
                shed.extend(self._fresh(state, paged, settled_before))
        shed = list({_key(job): job for job in shed}.values())  # a paged copy of a lane's job is refused once
        for job in shed:
            self._remember(state, _key(job), "circuit_open")
        return [outcome_command(job, "circuit_open") for job in shed]

    def _refill(self, state: SenderState, pages: SpillPages, settled_before: Callable[[str], bool]) -> None:
        """Moves whole pages back into lanes with room for them, oldest first; copies of a job are dropped here."""
        for lane, jobs in enumerate(state.lanes):
            while state.spill[lane].count and len(jobs) <= LANE_JOBS - PAGE_JOBS:
                spill, paged = pop_page(state.spill[lane], lane, pages)
                state.spill = _with(state.spill, lane, spill)
                jobs.extend(self._fresh(state, paged, settled_before))

    @staticmethod
    def _fresh(state: SenderState, paged: list[dict[str, Any]],
               settled_before: Callable[[str], bool]) -> list[dict[str, Any]]:
        """The paged jobs not queued, in flight or settled already (a job the writer emitted twice was paged twice)."""
        seen = {_key(job) for lane in state.lanes for job in lane} | set(state.inflight) | set(state.settled)
        fresh = []
        for job in paged:
            key = _key(job)
            if key not in seen and not settled_before(key):
                seen.add(key)
                fresh.append(job)
        return fresh

    @staticmethod
    def _remember(state: SenderState, key: str, outcome: str) -> None:
        state.settled[key] = outcome


def outcome_command(job: dict[str, Any], outcome: str, result: SendResult | None = None) -> dict[str, Any]:
    """The `outcome` command for the contact writer (sb.commands, key contact id)."""
    command: dict[str, Any] = {
        "kind": "outcome", "v": 1, "command_id": f"{job['message_id']}:{job['attempt']}:{outcome}",
        "contact_id": job["contact_id"], "message_id": job["message_id"], "attempt": job["attempt"],
        "outcome": outcome, "sent_at": job.get("sent_at"), "trace_id": job.get("trace_id"),
    }
    if result is not None:
        command["provider_message_id"] = result.provider_message_id
        command["retry_after"] = result.retry_after
        command["maybe_sent"] = result.maybe_sent
        command["consent_revoked"] = result.consent_revoked
        if result.error is not None:
            command["error"] = {"code": result.error.code, "message": result.error.message}
    return command


def _queued(state: SenderState, job: dict[str, Any]) -> bool:
    """Whether this attempt waits in one of the sender's lanes. Fields are compared rather than a key built per
    queued job: admissions and probes scan a queue that can hold thousands."""
    message_id, attempt = job["message_id"], job["attempt"]
    return any(queued["message_id"] == message_id and queued["attempt"] == attempt
               for lane in state.lanes for queued in lane)


def _with(spills: tuple[Spill, Spill, Spill], lane: int, spill: Spill) -> tuple[Spill, Spill, Spill]:
    return (spill, spills[1], spills[2]) if lane == 0 else \
        (spills[0], spill, spills[2]) if lane == 1 else (spills[0], spills[1], spill)


def _take_send(state: SenderState, limits: Limits, now: float) -> bool:
    """Takes a token, a place in the second and one of the day's sends: all three, or none of them."""
    bucket = state.bucket or TokenBucket.full(limits.per_second, limits.burst, now)
    taken, next_bucket = bucket.take(now)
    placed, next_window = _window(state, limits, now).take(now)
    counted, next_today = (state.today or DailyCount.starting(now)).take(now, limits.daily)
    if taken and placed and counted:
        state.bucket, state.window, state.today = next_bucket, next_window, next_today
    return taken and placed and counted


def _window(state: SenderState, limits: Limits, now: float) -> SendWindow:
    """The sender's window at `now`, under its current rate (the declaration may have changed it)."""
    if state.window is None:
        return SendWindow.empty(limits.per_second, now)
    window = state.window.moved_to(now)
    return window if window.limit == window_limit(limits.per_second) else window.with_limit(limits.per_second)


def _key(job: dict[str, Any]) -> str:
    return f"{job['message_id']}:{job['attempt']}"
