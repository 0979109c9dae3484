"""A lane's jobs beyond what its sender's row holds: pages of queued jobs in rows of their own, oldest first."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

__all__ = ["LANE_JOBS", "PAGE_JOBS", "MemoryPages", "Spill", "SpillPages", "drain", "pop_page", "push"]

# Jobs a lane keeps in its sender's row. The row is pickled and written to the changelog after every batch, so a
# backlog kept whole in it (a campaign to a sender slower than the campaign) cost CPU per batch in proportion to
# the backlog and, past Kafka's 1 MB record limit, stopped the worker at every restart.
LANE_JOBS: Final = 400
# Jobs per page (about 40 KB pickled): a batch rewrites at most a lane's tail page and drops its head page.
PAGE_JOBS: Final = 200

Job = dict[str, Any]


class SpillPages(Protocol):
    """Where a sender's pages live: the runtime's table rows, or memory in tests."""

    def load(self, lane: int, page: int) -> list[Job]:
        """The page's jobs as stored ([] if none); the caller may change the list and store it again."""

    def store(self, lane: int, page: int, jobs: list[Job]) -> None:
        """Writes a page (with the batch's other rows)."""

    def drop(self, lane: int, page: int) -> None:
        """Deletes a page whose jobs went back into the lane."""


@dataclass(frozen=True)
class Spill:
    """One lane's pages, numbered `head` to `tail` while `count` > 0; `fill` jobs of the tail page are the lane's.

    A page may hold more than the row says (a batch that wrote it and then died before writing the row is applied
    again from the same records): only the first `fill` jobs of the tail page count, and a new page is started
    without reading what a page of its number may hold.
    """

    head: int = 0
    tail: int = 0
    count: int = 0
    fill: int = 0


def push(spill: Spill, lane: int, job: Job, pages: SpillPages) -> Spill:
    """Appends a job to the lane's pages; returns the lane's new spill."""
    if spill.count == 0 or spill.fill >= PAGE_JOBS:
        page = spill.tail + 1
        pages.store(lane, page, [job])
        head = page if spill.count == 0 else spill.head
        return Spill(head=head, tail=page, count=spill.count + 1, fill=1)
    jobs = pages.load(lane, spill.tail)
    del jobs[spill.fill:]
    jobs.append(job)
    pages.store(lane, spill.tail, jobs)
    return replace(spill, count=spill.count + 1, fill=spill.fill + 1)


def pop_page(spill: Spill, lane: int, pages: SpillPages) -> tuple[Spill, list[Job]]:
    """Takes the lane's oldest page: (the lane's new spill, the page's jobs in order)."""
    last = spill.head == spill.tail
    jobs = pages.load(lane, spill.head)
    del jobs[spill.fill if last else PAGE_JOBS:]
    pages.drop(lane, spill.head)
    if last:
        return Spill(head=spill.tail, tail=spill.tail), jobs
    # Never below the tail page's jobs: a count that drifted still reaches the tail, where it starts again from 0.
    return replace(spill, head=spill.head + 1, count=max(spill.count - len(jobs), spill.fill)), jobs


def drain(spill: Spill, lane: int, pages: SpillPages) -> tuple[Spill, list[Job]]:
    """Takes every page of the lane (an open circuit sheds them): (the empty spill, their jobs in order)."""
    jobs: list[Job] = []
    while spill.count:
        spill, page = pop_page(spill, lane, pages)
        jobs.extend(page)
    return spill, jobs


class MemoryPages:
    """Pages in a dict: the pure dispatcher's tests, and one sender's pages between calls."""

    def __init__(self) -> None:
        self.pages: dict[tuple[int, int], list[Job]] = {}

    def load(self, lane: int, page: int) -> list[Job]:
        return self.pages.get((lane, page), [])

    def store(self, lane: int, page: int, jobs: list[Job]) -> None:
        self.pages[(lane, page)] = jobs

    def drop(self, lane: int, page: int) -> None:
        self.pages.pop((lane, page), None)
