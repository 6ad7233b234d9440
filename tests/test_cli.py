"""Command line: exit codes and messages for bad usage, without starting Spark."""

from __future__ import annotations

import pytest

from smb_fanout.cli import run_app
from smb_fanout.cli.app import EXIT_USAGE


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as stopped:
        run_app(argv)
    return int(stopped.value.code or 0)


def test_unknown_option_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["stats", "--bogus"]) == EXIT_USAGE
    assert "No such option: --bogus" in capsys.readouterr().err


def test_bad_config_value_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--set", "detector.min_new_destinations=abc", "stats"]) == EXIT_USAGE
    assert "detector.min_new_destinations='abc'" in capsys.readouterr().err


def test_unknown_format_rejected_early(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["ingest", "--format", "nope", "events.jsonl"]) == EXIT_USAGE
    assert "unknown input format 'nope'" in capsys.readouterr().err


def test_bad_time_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["score", "--to", "yesterday"]) == EXIT_USAGE
    assert "invalid time 'yesterday'" in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    run_app(["--help"])
    assert "demo" in capsys.readouterr().out


def test_offset_time_converted_to_utc() -> None:
    from datetime import datetime

    from smb_fanout.cli.app import parse_time

    assert parse_time("2026-11-30T12:00+02:00") == datetime(2026, 11, 30, 10, 0)
    assert parse_time("2026-11-30T12:00Z") == datetime(2026, 11, 30, 12, 0)
    assert parse_time("2026-11-30T12:00") == datetime(2026, 11, 30, 12, 0)
