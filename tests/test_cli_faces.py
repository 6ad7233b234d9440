"""Command line output: help text, progress, the alert tables and the fit's alert budget."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from rich.console import Console

from smb_fanout import render
from smb_fanout.cli import run_app
from smb_fanout.cli.app import current_champion, enforce_alert_budget, split_global_options
from smb_fanout.config import load_config
from smb_fanout.registry import ModelVersion, configure, register_fit
from tests.alert_rows import ALERTS


def help_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    run_app([*argv, "--help"])
    # Rich draws the help in boxes; join the wrapped lines so sentences can be searched.
    lines = [line.strip(" │╭╮╰╯─") for line in capsys.readouterr().out.splitlines()]
    return re.sub(r"\s+", " ", " ".join(lines))


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text([], capsys)
    assert "Exit codes: 0 success" in text
    assert "2 invalid usage or configuration" in text


@pytest.mark.parametrize(
    ("command", "option"),
    [("stats", "--until"), ("fit", "--training-end"), ("score", "--from"), ("score", "--to"), ("run", "--score-from")],
)
def test_time_options_state_format(command: str, option: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text([command], capsys)
    assert option in text
    assert "ISO-8601 in UTC, e.g. 2026-11-30T12:00Z" in text


def test_fit_help_states_budget_unit(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(["fit"], capsys)
    assert "--alert-budget" in text
    assert "expected alerts per day" in text


def test_report_help_describes_options(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(["report"], capsys)
    assert "HTML file to write" in text
    assert "Days of alerts" in text
    assert "unique prefix" in text


def test_global_options_split_from_task_arguments() -> None:
    argv = ["ingest", "--env", "prod", "--format", "auto", "--set=storage.schema=s", "/data", "--json"]
    assert split_global_options(argv) == (
        ["--env", "prod", "--set=storage.schema=s", "--json"],
        ["ingest", "--format", "auto", "/data"],
    )


def test_progress_reaches_last_step(capsys: pytest.CaptureFixture[str]) -> None:
    started = []
    with render.step_progress(("ingest", "stats", "fit", "score")) as on_step:
        for step in ("ingest", "stats", "fit", "score"):
            on_step(step)
            started.append(step)
    captured = capsys.readouterr()
    assert started == ["ingest", "stats", "fit", "score"]
    assert captured.out == "", "progress must not write to standard output"
    assert "4/4" in captured.err


def rendered(table: object) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_alerts_table_row() -> None:
    text = rendered(render.alerts_table(list(ALERTS), title="4 alerts"))
    row = next(line for line in text.splitlines() if "ws-03.corp.local" in line)
    assert "2026-11-23 04:00 to 2026-11-23 09:00" in row
    assert "highly rare" in row
    assert "Medium" in row
    assert "10.0.0.1, 10.0.0.2" in row
    assert "10.0.0.8, +12 more" in text, "the list stops after eight destinations"


def test_alert_detail_fields() -> None:
    text = rendered(render.alert_detail(ALERTS[3]))
    assert "Alert a4" in text
    assert "opened SMB connections to 20 hosts" in text
    assert "window_end" in text
    assert "2026-11-23 09:00:00 UTC" in text
    assert "upgraded_at" in text
    assert "host-020 (10.0.0.20)" in text
    assert "T1021.002" in text


@dataclass
class FitStub:
    model: ModelVersion
    expected_alerts_per_day: float


def test_alert_budget_restores_alias(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fit over budget fails and the alias moves back to the version it pointed to before."""
    import mlflow

    config = load_config("local", [f"storage.local_root={tmp_path}"])
    assert current_champion(config) is None
    experiment = configure(config)
    versions = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=experiment) as run:
            versions.append(register_fit(config, run.info.run_id, 5))
    assert current_champion(config) == versions[1]

    with pytest.raises(typer.Exit) as stopped:
        enforce_alert_budget(config, FitStub(versions[1], 31.5), 20.0, versions[0])

    assert stopped.value.exit_code == 1
    assert current_champion(config) == versions[0]
    message = " ".join(capsys.readouterr().err.split())
    assert "31.50 alerts per day" in message
    assert "moved back to version 1" in message


def test_candidate_fit_waits_for_promote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A candidate version leaves the champion alone until `promote` moves the alias to it."""
    import mlflow

    root = f"storage.local_root={tmp_path}"
    config = load_config("local", [root])
    experiment = configure(config)
    with mlflow.start_run(experiment_id=experiment) as run:
        champion = register_fit(config, run.info.run_id, 5)
    with mlflow.start_run(experiment_id=experiment) as run:
        candidate = register_fit(config, run.info.run_id, 5, move_alias=False)
    assert current_champion(config) == champion

    run_app(["--set", root, "promote", candidate.version])
    assert current_champion(config) == candidate
    assert "moved from version 1 to version 2" in " ".join(capsys.readouterr().out.split())

    with pytest.raises(SystemExit) as failed:
        run_app(["--set", root, "promote", "9"])
    assert failed.value.code == 1
    assert current_champion(config) == candidate
    assert "has no version '9'" in " ".join(capsys.readouterr().err.split())
