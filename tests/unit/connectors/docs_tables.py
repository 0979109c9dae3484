"""Reads a channel's outcome table from docs/CONNECTORS.md, so tests keep the page and the code equal."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from connectors import Outcome, ProviderError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "CONNECTORS.md"
_ROW = re.compile(r"^\| `([^`]+)` \| [^|]+ \| `(\w+)` \|", re.MULTILINE)


def documented(heading: str) -> list[tuple[str, Outcome]]:
    """(code as written, outcome) for every row of the table under `### {heading}`."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"### {heading}\n")
    end = text.find("\n## ", start)
    return [(code, Outcome(outcome)) for code, outcome in _ROW.findall(text[start:end if end >= 0 else None])]


def errors_for(code: str) -> Iterator[ProviderError]:
    """The errors a documented code stands for: `10/2018278` (code/subcode), `200-299`, `5xx`."""
    if code == "5xx":
        yield from (ProviderError(str(status), http_status=status) for status in (500, 502, 503))
        return
    main, _, subcode = code.partition("/")
    low, _, high = main.partition("-")
    for value in range(int(low), int(high or low) + 1):
        yield ProviderError(str(value), details=subcode or None)


def check(heading: str, classify: Callable[[ProviderError], Outcome], codes: Iterable[str]) -> None:
    """Every documented row classifies as documented, and every code of the table (`code/subcode` too) has a row."""
    rows = documented(heading)
    assert rows, heading
    wrong = [(code, outcome, got) for code, outcome in rows for error in errors_for(code)
             if (got := classify(error)) is not outcome]
    assert not wrong, wrong
    written = {code for code, _ in rows}
    in_ranges = {error.code for code in written if "-" in code for error in errors_for(code)}
    missing = [code for code in codes if code not in written and code not in in_ranges]
    assert not missing, missing
