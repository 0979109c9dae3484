"""Typed reads of raw TOML values: each failure is a ConfigError naming the file and the dotted key."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.policies import Condition, ConditionError
from switchboard._config_model import ConfigError

E = TypeVar("E", bound=Enum)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?")


def child(key: str, name: str) -> str:
    """`routes[2]` + `fallback` -> `routes[2].fallback`; the top level has no prefix."""
    return f"{key}.{name}" if key else name


def item(key: str, index: int) -> str:
    return f"{key}[{index}]"


@dataclass(frozen=True)
class Reader:
    """Reads values out of one file, so every error can say which file it is about."""

    file: Path

    def error(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.file}: {key} {what}")

    def table(self, key: str, value: Any, known: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key or "the file", f"must be a table, not {value!r}")
        allowed = set(known)
        unknown = sorted(set(value) - allowed)
        if unknown:
            known_list = ", ".join(sorted(allowed))
            raise ConfigError(f"{self.file}: unknown key {child(key, unknown[0])} (known: {known_list})")
        for name in required:
            if name not in value:
                raise self.error(child(key, name), "is required")
        return value

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        """A table whose keys are names chosen by the user (retry policies, per-tenant quotas)."""
        values = self.table(key, value, value if isinstance(value, dict) else ())
        for name in values:
            self.name(child(key, name), name)
        return values

    def array(self, key: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self.error(key, f"must be an array, not {value!r}")
        return value

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, not {value!r}")
        return value

    def name(self, key: str, value: Any) -> str:
        text = self.string(key, value)
        if not _NAME.fullmatch(text):
            raise self.error(key, f"must be a name of letters, digits, '_', '-' or '.', not {text!r}")
        return text

    def names(self, key: str, value: Any) -> tuple[str, ...]:
        return tuple(self.name(item(key, index), entry) for index, entry in enumerate(self.array(key, value)))

    def integer(self, key: str, value: Any, minimum: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, f"must be an integer, not {value!r}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, not {value}")
        return value

    def positive(self, key: str, value: Any) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(key, f"must be a number, not {value!r}")
        if value <= 0:
            raise self.error(key, f"must be greater than 0, not {value}")
        return float(value)

    def choice(self, key: str, value: Any, kind: type[E], exclude: Iterable[E] = ()) -> E:
        allowed = [member for member in kind if member not in set(exclude)]
        for member in allowed:
            if value == member.value:
                return member
        raise self.error(key, f"must be one of {', '.join(str(m.value) for m in allowed)}, not {value!r}")

    def condition(self, key: str, value: Any) -> Condition:
        """CEL, compiled now: a condition that cannot compile never reaches a worker."""
        try:
            return Condition.compile(self.string(key, value))
        except ConditionError as error:
            raise self.error(key, f"is not a valid CEL condition: {error}") from error

    def clock(self, key: str, value: Any) -> time:
        match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.error(key, f"must be a time of day as HH:MM or HH:MM:SS (00:00-23:59:59), not {value!r}")
        return time(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))

    def zone(self, key: str, value: Any) -> str:
        text = self.string(key, value)
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise self.error(key, f"is not a known IANA time zone: {text!r}") from error
        return text
