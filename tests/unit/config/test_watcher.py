"""PipelineWatcher: a valid change is swapped in and announced; an invalid one keeps the old config."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from switchboard.config import ConfigError, PipelineConfig, PipelineWatcher
from tests.unit.config.base import BASE, broken


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(BASE)
    return path


def test_a_valid_change_is_swapped_in_and_announced(path: Path) -> None:
    watcher = PipelineWatcher(path)
    seen: list[PipelineConfig] = []
    watcher.subscribe(seen.append)
    path.write_text(broken("partitions = 6", "partitions = 12"))
    assert watcher.check_now()
    assert watcher.current.streams.partitions == 12
    assert seen == [watcher.current]
    assert watcher.last_error is None


def test_an_invalid_change_keeps_the_old_config_and_reports(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    watcher = PipelineWatcher(path)
    before = watcher.current
    seen: list[PipelineConfig] = []
    watcher.subscribe(seen.append)
    path.write_text(broken("weight = 10,", "weight = 20,"))
    assert not watcher.check_now()
    assert watcher.current is before
    assert seen == []
    assert watcher.last_error is not None
    assert f"{path}: routes[0].arms weights must sum to 100" in str(watcher.last_error)
    assert "keeping the previous one" in caplog.text
    path.write_text(broken("partitions = 6", "partitions = 3"))
    assert watcher.check_now()
    assert watcher.current.streams.partitions == 3
    assert watcher.last_error is None


def test_the_same_bytes_are_not_a_change(path: Path) -> None:
    watcher = PipelineWatcher(path)
    seen: list[PipelineConfig] = []
    watcher.subscribe(seen.append)
    path.write_text(BASE)
    assert not watcher.check_now()
    assert seen == []


def test_a_vanished_file_keeps_the_config_until_it_returns(path: Path) -> None:
    watcher = PipelineWatcher(path)
    path.unlink()
    assert not watcher.check_now()
    assert "cannot read" in str(watcher.last_error)
    assert watcher.current.streams.partitions == 6
    path.write_text(BASE)
    assert watcher.check_now()
    assert watcher.last_error is None


def test_a_failing_subscriber_does_not_starve_the_others(path: Path) -> None:
    watcher = PipelineWatcher(path)

    def broken_subscriber(_: PipelineConfig) -> None:
        raise RuntimeError("boom")

    seen: list[PipelineConfig] = []
    watcher.subscribe(broken_subscriber)
    unsubscribe = watcher.subscribe(seen.append)
    path.write_text(broken("partitions = 6", "partitions = 2"))
    assert watcher.check_now()
    assert len(seen) == 1
    unsubscribe()
    path.write_text(broken("partitions = 6", "partitions = 4"))
    assert watcher.check_now()
    assert len(seen) == 1


def test_an_invalid_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text("[streams]\npartitions = 0\n")
    with pytest.raises(ConfigError, match=r"streams\.partitions"):
        PipelineWatcher(path)


async def test_the_polling_task_picks_up_a_change(path: Path) -> None:
    watcher = PipelineWatcher(path, interval=0.01)
    changed = asyncio.Event()
    watcher.subscribe(lambda _: changed.set())
    watcher.start()
    try:
        await asyncio.to_thread(path.write_text, broken("partitions = 6", "partitions = 9"))
        # Waits on the subscriber's signal, bounded; the poll interval is 10 ms, so 10 s is generous.
        await asyncio.wait_for(changed.wait(), timeout=10)
    finally:
        await watcher.stop()
    assert watcher.current.streams.partitions == 9
