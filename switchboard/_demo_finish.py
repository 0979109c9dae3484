"""The end of the demo: the tables, the API's funnel checked against the demo's own, the HTML report, the console."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from projections.api import signed_get_headers
from switchboard._demo_html import ReportPage, render_report
from switchboard._demo_report import funnel_lines, funnel_table_lines, table_lines
from switchboard._demo_stack import API_CLIENT, simulator_summary, twilio_summary
from switchboard._demo_track import STALL_SECONDS

if TYPE_CHECKING:
    from switchboard._demo_play import Play

__all__ = ["Finish", "api_funnel"]

TABLE_ROWS = 15  # transactional messages shown in the terminal (all of them are in the HTML report)
API_AGREES_WITHIN = 60.0  # seconds for the API's projections to catch up with the last events


class Finish:
    """Prints and writes what the run produced; 0 when it completed, 1 when --duration ended it."""

    def __init__(self, play: Play, played: float, done: bool) -> None:
        self.play, self.played, self.done = play, played, done
        self.run = play.run

    async def report(self) -> int:
        tracker, now = self.play.tracker, time.time()
        counts = tracker.counts(now)
        table = table_lines(self.play.planned, tracker.views, tracker.receipts)
        shown = table[:TABLE_ROWS + 1]
        print(f"\nTransactional messages ({len(self.play.planned)}"
              f"{f', the first {TABLE_ROWS}' if len(table) > len(shown) else ''}):", flush=True)
        print("\n".join(f"  {line}" for line in shown))
        funnel = tracker.funnel()
        print("\nFunnel per template and channel (each stage counted once per message):")
        print("\n".join(f"  {line}" for line in funnel_table_lines(funnel)))
        print("\nFunnel:")
        print("\n".join(funnel_lines(counts)))
        check = await self._api_check(funnel)
        print(f"\n{check}")
        path = self._write(funnel, table, check)
        print(f"Simulator: {simulator_summary(self.play.simulator.counters)}")
        if self.play.twilio is not None:
            print(f"Twilio simulator: {twilio_summary(self.play.twilio.counters)}")
        print(f"HTML report: {_shown(path)}")
        print(f"Logs and the demo's declaration: {_shown(self.run.directory)}/")
        print(f"Web console: {self.run.console_url} (one-time link; signed in already, reload it)", flush=True)
        if not self.done:
            self._unfinished(now)
            return 1
        print(f"Every message reached a final state {time.monotonic() - self.played:.1f} s after the scenario "
              f"started; {self.run.elapsed():.1f} s in all.", flush=True)
        if self.run.stay:
            print("The platform and the console stay up; Ctrl-C stops everything.", flush=True)
            await asyncio.Event().wait()
        return 0

    def _unfinished(self, now: float) -> None:
        tracker = self.play.tracker
        left = [v for v in tracker.views.values() if not v.is_final(tracker.receipts, now)]
        why = (f"No message event for {STALL_SECONDS:.0f} s" if self.play.stalled else
               f"Stopped by --duration {self.run.duration:.0f} s")
        phases = Counter(v.phase for v in left)
        print(f"{why} with {len(left):,} messages not final ({', '.join(f'{n} {p}' for p, n in phases.items())}; "
              "shown as in flight). The first of them (`switchboard audit message ID` shows their events):",
              flush=True)
        for view in left[:10]:
            failure = f", last failure {view.failures[-1]}" if view.failures else ""
            print(f"  {view.message_id}  {view.phase} on {view.channel or '-'} after {view.attempts} attempt(s)"
                  f"{failure}", flush=True)

    async def _api_check(self, funnel: Mapping[str, Mapping[str, Mapping[str, int]]]) -> str:
        """Waits until the API's funnel equals the demo's own count (both folded from the message events)."""
        deadline = time.monotonic() + API_AGREES_WITHIN
        answer: dict[str, dict[str, dict[str, int]]] | None = None
        while time.monotonic() < deadline:
            try:
                answer = await api_funnel(self.run.api_url, self.play.secrets.api_secret)
            except (aiohttp.ClientError, TimeoutError):
                answer = None
            if answer == funnel:
                return "The read API's funnel (its delivery-stats projection) agrees with the demo's own count."
            await asyncio.sleep(1.0)  # the API catches up in rounds of one second; nothing to wait on from here
        return ("The read API's funnel does NOT agree with the demo's own count within "
                f"{API_AGREES_WITHIN:.0f} s: API {answer}")

    def _write(self, funnel: Mapping[str, Mapping[str, Mapping[str, int]]], table: list[str], check: str) -> Path:
        run, play = self.run, self.play
        notes = [f"Campaign segments: {', '.join(f'{n:,} {s}' for s, n in run.campaign.shares().items())}; "
                 f"{len(run.campaign.repliers)} replies planned, {len(play.answered)} answered in free text.",
                 f"Simulator: {simulator_summary(play.simulator.counters)}.",
                 *([f"Twilio simulator: {twilio_summary(play.twilio.counters)}."] if play.twilio else []),
                 *(f"Fault {note}." for note in play.fault_notes), check,
                 *(["Stopped by --duration: messages not final are counted as they were."] if not self.done else [])]
        page = ReportPage(run.id, "Switchboard demo: the funnel", funnel, play.tracker.latencies(), notes,
                          f"Read API at {run.api_url}/v1/ (the console at {run.api_url}/console/, signed in with "
                          "the one-time link the demo printed).", table)
        path = run.directory / "report.html"
        path.write_text(render_report(page))
        return path


async def api_funnel(base: str, secret: str) -> dict[str, dict[str, dict[str, int]]]:
    """GET /v1/stats/funnel (the last seven days), as template -> channel -> stage -> messages."""
    path = "/v1/stats/funnel"
    headers = signed_get_headers(API_CLIENT, secret, path)
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.get(base + path, headers=headers) as answer):
        answer.raise_for_status()
        body: dict[str, Any] = await answer.json()
    table: dict[str, dict[str, dict[str, int]]] = {}
    for row in body["rows"]:
        for channel, entry in row["by_channel"].items():
            counts = table.setdefault(row["template"], {}).setdefault(channel, {})
            for stage, count in entry["counts"].items():
                counts[stage] = counts.get(stage, 0) + count
    return table


def _shown(path: Path) -> str:
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
