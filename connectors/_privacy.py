"""Keeping phone numbers and credentials out of logs and reprs: masking, and secrets read from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from switchboard.errors import SwitchboardError

__all__ = ["PHONE", "MaskedRepr", "MissingSecret", "Secret", "SecretSource", "mask_phone"]

# Field metadata marking a value as a phone number (or wa_id): MaskedRepr shows it masked.
PHONE: Mapping[str, bool] = {"phone": True}
_KEEP = 2  # digits kept visible at each end: enough to tell numbers apart in a log, too few to dial


def mask_phone(number: str | None) -> str:
    """'+15551234567' -> '+15*******67'; short or empty values are masked entirely."""
    if not number:
        return "<none>"
    prefix = "+" if number.startswith("+") else ""
    digits = number[len(prefix):]
    if len(digits) <= 2 * _KEEP + 2:
        return prefix + "*" * len(digits)
    return prefix + digits[:_KEEP] + "*" * (len(digits) - 2 * _KEEP) + digits[-_KEEP:]


class MaskedRepr:
    """Dataclass mix-in whose repr masks the fields marked with PHONE metadata."""

    __slots__ = ()

    def __repr__(self) -> str:
        parts = []
        for item in fields(self):  # type: ignore[arg-type]  # only ever mixed into dataclasses
            if not item.repr:
                continue
            value: Any = getattr(self, item.name)
            shown = repr(mask_phone(value)) if item.metadata.get("phone") and value is not None else repr(value)
            parts.append(f"{item.name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


class MissingSecret(SwitchboardError):
    """A credential the driver needs is in neither its environment variable nor the file named by <VAR>_FILE."""


class Secret:
    """A credential that never shows itself in repr, str or logs; reveal() is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plain value, for the one place that sends it (an Authorization header, an HMAC key)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class SecretSource:
    """Where a credential comes from: env var VAR, else a file named by VAR_FILE (re-read when it changes)."""

    env_var: str
    fixed: Secret | None = field(default=None, repr=False)
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)
    _cache: dict[tuple[str, int], Secret] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, value: str, name: str = "<fixed>") -> SecretSource:
        """A source that always yields this value (tests, simulators)."""
        return cls(name, fixed=Secret(value))

    def get(self) -> Secret:
        """The current value; a rotated token file is picked up on the next call without a restart."""
        if self.fixed is not None:
            return self.fixed
        env = os.environ if self.environ is None else self.environ
        value = env.get(self.env_var)
        if value:
            return Secret(value.strip())
        path = env.get(f"{self.env_var}_FILE")
        if path:
            return self._read(Path(path))
        raise MissingSecret(f"set {self.env_var} or {self.env_var}_FILE (a file holding the value)")

    def _read(self, path: Path) -> Secret:
        try:
            stamp = (str(path), path.stat().st_mtime_ns)
        except OSError as error:
            raise MissingSecret(f"{self.env_var}_FILE names {path}, which cannot be read: {error.strerror}") from None
        if stamp not in self._cache:
            self._cache.clear()  # one entry: the file as it is now
            self._cache[stamp] = Secret(path.read_text(encoding="utf-8").strip())
        return self._cache[stamp]
