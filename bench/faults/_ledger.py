"""What a scenario put in and did: the messages it requested, the bad inputs it sent, the faults it injected."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Poison:
    """A bad record produced straight onto an input topic; `marker` is inside it, `where` is (partition, offset)."""

    topic: str
    marker: str
    what: str
    where: tuple[int, int] | None = None


@dataclass(frozen=True)
class Refusal:
    """A bad request answered with an HTTP error (or refused by a client library before it left)."""

    service: str  # receiver, ingest, sdk
    what: str
    status: int  # 0 for a client-side refusal
    code: str
    body_sha256: str | None = None  # receiver refusals: the key their record on sb.rejects carries


@dataclass
class Ledger:
    """Everything the checker must find accounted for, and the scenario's own figures for the tally."""

    requested: dict[str, str] = field(default_factory=dict)  # message id -> idempotency key
    poison: list[Poison] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    accepted_inputs: Counter[str] = field(default_factory=Counter)  # good inputs besides requests, by kind
    faults: dict[str, str] = field(default_factory=dict)  # what was done to the platform, in words
    figures: dict[str, int | float | str] = field(default_factory=dict)
    receipts_expected: bool = False  # WhatsApp receipts flow back (simulator, receiver, normaliser)
