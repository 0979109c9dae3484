"""pipeline.toml validation: bad values are errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.config import ConfigError, PipelineConfig, load
from switchboard.localkafka import project_root


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    return path


def test_the_shipped_pipeline_file_is_valid() -> None:
    config = load(project_root() / "pipeline.toml")
    assert isinstance(config, PipelineConfig)
    assert config.streams.partitions >= 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[streams]\npartitions = 0\n", "streams.partitions must be at least 1"),
        ("[streams]\npartitions = 'six'\n", "streams.partitions must be an integer"),
        ("[streams]\nreplication = 0\n", "streams.replication must be -1"),
        ("[streams]\npartitons = 6\n", "unknown key streams.partitons"),
        ("[stream]\npartitions = 6\n", "unknown key stream"),
        ("[demo]\nmessages = -3\n", "demo.messages must be at least 1"),
        ("[demo\n", "not valid TOML"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as failure:
        load(path)
    assert str(path) in str(failure.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.toml")
