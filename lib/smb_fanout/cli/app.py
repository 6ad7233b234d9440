"""The Typer application, its global options and helpers shared by the commands."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from smb_fanout import render
from smb_fanout.config import Config, ConfigError, load_config

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

app = typer.Typer(
    help="Detect hosts that suddenly open SMB sessions to many new hosts.",
    epilog="Exit codes: 0 success; 1 the job failed (the message says why and what to do); "
    "2 invalid usage or configuration.",
    no_args_is_help=True,
)
alerts_app = typer.Typer(help="Read the alert table.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


EXIT_FAILED = 1
EXIT_USAGE = 2
TIME_FORMAT = (
    "Format: ISO-8601 in UTC, e.g. 2026-11-30T12:00Z; a time without an offset is UTC, one with an offset is converted."
)


@dataclass
class Options:
    environment: str
    overrides: list[str]
    conf_dir: Path | None
    as_json: bool

    def config(self) -> Config:
        try:
            return load_config(self.environment, self.overrides, self.conf_dir)
        except ConfigError as err:
            render.error_console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(EXIT_USAGE) from err


@app.callback()
def main_options(
    ctx: typer.Context,
    env: Annotated[str, typer.Option(help="Environment whose conf/<env>.yml applies: local, dev or prod.")] = "local",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override one configuration key, e.g. --set detector.min_new_destinations=8. Repeatable.",
        ),
    ] = None,
    conf_dir: Annotated[Path | None, typer.Option(help="Folder with base.yml and the environment files.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON object instead of tables.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each step at INFO level.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    conf = conf_dir or (Path(os.environ["SMB_FANOUT_CONF_DIR"]) if "SMB_FANOUT_CONF_DIR" in os.environ else None)
    ctx.obj = Options(env, list(set_ or []), conf, as_json)


def check_format(input_format: str | None) -> None:
    """Reject an unknown input format before Spark starts."""
    from smb_fanout.ingest.adapters import FORMATS

    if input_format is not None and input_format not in FORMATS:
        raise typer.BadParameter(f"unknown input format {input_format!r}: use one of {', '.join(FORMATS)}")


def spark_session(config: Config) -> Any:
    from smb_fanout.spark import get_spark

    with render.console.status("starting Spark"):
        return get_spark(config)


def finish(options: Options, payload: dict[str, Any], summary: str) -> None:
    if options.as_json:
        render.print_json(payload)
    else:
        render.console.print(summary)


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise typer.BadParameter(f"invalid time {value!r}: use ISO-8601, e.g. 2026-11-30T12:00Z") from err
    return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed.astimezone(UTC).replace(tzinfo=None)


def job_errors() -> tuple[type[Exception], ...]:
    """Errors a job raises for a condition the user can fix; they are shown without a traceback."""
    from smb_fanout.fit.job import NothingToFitError
    from smb_fanout.ingest.job import UnknownFormatError
    from smb_fanout.ingest.reader import InputFileError
    from smb_fanout.migrations import SchemaAheadError
    from smb_fanout.pipeline import NoUsableEventsError
    from smb_fanout.registry import ModelNotFoundError
    from smb_fanout.score.job import NothingToScoreError
    from smb_fanout.spark import DeltaJarsMissingError
    from smb_fanout.tables import WriteConflictError

    return (
        NothingToFitError,
        UnknownFormatError,
        InputFileError,
        NoUsableEventsError,
        ModelNotFoundError,
        NothingToScoreError,
        DeltaJarsMissingError,
        SchemaAheadError,
        WriteConflictError,
    )


def run_app(argv: list[str] | None = None) -> None:
    """Run the application and turn known job errors into one line on stderr and exit code 1."""
    try:
        code = app(argv, standalone_mode=False)
    except job_errors() as err:
        render.error_console.print(f"[red]error:[/red] {err}")
        raise SystemExit(EXIT_FAILED) from None
    except Exception as err:
        # Typer ships its own copy of click, so its usage errors are recognised
        # by their interface rather than by class.
        if hasattr(err, "show") and hasattr(err, "exit_code"):
            err.show()
            raise SystemExit(err.exit_code) from None
        if type(err).__name__ == "Abort":
            raise SystemExit(EXIT_FAILED) from None
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)


_GLOBAL_WITH_VALUE = ("--env", "--set", "--conf-dir")
_GLOBAL_FLAGS = ("--json", "--verbose", "-v")


def split_global_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split a task's argument list into the global options and everything else, keeping their order."""
    global_args: list[str] = []
    job_args: list[str] = []
    position = 0
    while position < len(argv):
        arg = argv[position]
        name = arg.split("=", 1)[0]
        if name in _GLOBAL_WITH_VALUE:
            takes_next = "=" not in arg and position + 1 < len(argv)
            global_args.extend(argv[position : position + (2 if takes_next else 1)])
            position += 2 if takes_next else 1
            continue
        if arg in _GLOBAL_FLAGS:
            global_args.append(arg)
        else:
            job_args.append(arg)
        position += 1
    return global_args, job_args


def run_job(job: str, argv: list[str]) -> None:
    """Run `smb-fanout <global options> JOB <job options>` from a task's argument list.

    Global options may come anywhere in `argv`; they are moved before the job name.
    """
    global_args, job_args = split_global_options(argv)
    run_app([*global_args, job, *job_args])


def current_champion(config: Config) -> Any:
    """Return the model version the alias points to now, or None before the first fit."""
    from smb_fanout.registry import ModelNotFoundError, champion

    try:
        return champion(config)
    except ModelNotFoundError:
        return None


def enforce_alert_budget(config: Config, result: Any, budget: float, previous: Any) -> None:
    """Move the alias back to `previous` after a fit that expects more alerts per day than `budget`, and fail."""
    from smb_fanout.registry import set_alias

    alias_outcome = "no version had the alias before, so it stays on the new version"
    if previous is not None:
        set_alias(config, previous.version)
        alias_outcome = f"the alias @{config.mlflow.alias} moved back to version {previous.version}"
    render.error_console.print(
        f"[red]error:[/red] model {result.model.name} version {result.model.version} expects "
        f"{result.expected_alerts_per_day:.2f} alerts per day on its training period, above the alert budget of "
        f"{budget:g}; {alias_outcome}. "
        "Raise --alert-budget or tune detector.* (for example detector.min_new_destinations)"
    )
    raise typer.Exit(EXIT_FAILED)
