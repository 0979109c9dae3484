"""Conditions in CEL (Common Expression Language): compiled once, evaluated safely, never `eval`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cel


class ConditionError(ValueError):
    """A condition does not compile, or does not give a boolean for some input."""


@dataclass(frozen=True)
class Condition:
    """A compiled CEL expression over named variables (e.g. `event`, `recipient`, `message`)."""

    source: str
    _program: Any = field(repr=False, compare=False, default=None)

    @classmethod
    def compile(cls, source: str) -> Condition:
        try:
            program = cel.compile(source)
        except ValueError as error:
            raise ConditionError(f"condition {source!r} does not compile: {error}") from error
        return cls(source=source, _program=program)

    def matches(self, variables: Mapping[str, Any]) -> bool:
        """Evaluates the condition; a missing field or a non-boolean result is a ConditionError, not a crash."""
        try:
            result = self._program.execute(dict(variables))
        except (KeyError, ValueError, TypeError, RuntimeError) as error:
            raise ConditionError(f"condition {self.source!r} failed: {type(error).__name__}: {error}") from error
        if not isinstance(result, bool):
            raise ConditionError(f"condition {self.source!r} gave {result!r}, not true or false")
        return result
