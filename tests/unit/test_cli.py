"""The command line: user errors are one clear line and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.cli import main


def test_demo_rejects_a_non_positive_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--messages", "0"]) == 2
    assert "switchboard: error: --messages must be at least 1" in capsys.readouterr().err


def test_kafka_start_reports_unreachable_external_cluster(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["kafka", "start"]) == 2
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 is unreachable" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_simulator_subcommand_reaches_the_simulators_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulator", "--help"])
    assert exit_info.value.code == 0
    assert "--webhook-url" in capsys.readouterr().out


def test_other_subcommands_still_refuse_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--bogus"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_receiver_needs_a_bootstrap(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert main(["receiver"]) == 2
    assert "give --bootstrap or set KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err


def test_receiver_names_an_unknown_channel_before_touching_kafka(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["receiver", "--bootstrap", "127.0.0.1:1", "--channel", "nosuch"]) == 2
    assert "no driver for channel 'nosuch'" in capsys.readouterr().err


def test_config_check_accepts_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check"]) == 0
    assert "pipeline.toml: valid:" in capsys.readouterr().out


def test_config_check_names_file_and_key_of_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "pipeline.toml"
    broken.write_text("[streams]\npartitions = 0\n")
    assert main(["config", "check", str(broken)]) == 2
    assert f"{broken}: streams.partitions must be at least 1" in capsys.readouterr().err
