"""Human and JSON output of the command line."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

# Without a terminal (CI, pipes, `make`), rich would wrap tables at 80 columns.
_probe = Console()
console = _probe if _probe.is_terminal else Console(width=160)
error_console = Console(stderr=True)
MAX_DESTINATIONS_SHOWN = 8


def to_jsonable(value: Any) -> Any:  # noqa: PLR0911
    """Convert dataclasses, Spark rows, datetimes and containers to JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if hasattr(value, "asDict"):
        return {key: to_jsonable(item) for key, item in value.asDict(recursive=True).items()}
    if isinstance(value, datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return value


@contextmanager
def step_progress(steps: tuple[str, ...]) -> Iterator[Callable[[str], None]]:
    """Show a progress bar over `steps` on standard error and yield the callback that starts a step.

    Standard output stays free for tables and `--json`.
    """
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=error_console,
    )
    with progress:
        task = progress.add_task("starting", total=len(steps))

        def start(step: str) -> None:
            done = steps.index(step) if step in steps else 0
            progress.update(task, completed=done, description=f"{step} ({done + 1} of {len(steps)})")

        yield start
        progress.update(task, completed=len(steps), description="done")


def print_json(payload: Any) -> None:
    print(json.dumps(to_jsonable(payload), indent=2, sort_keys=True))


def _destinations(alert: dict[str, Any]) -> str:
    names = [d["destination_ip"] for d in alert.get("new_destinations") or []]
    shown = ", ".join(names[:MAX_DESTINATIONS_SHOWN])
    if len(names) > MAX_DESTINATIONS_SHOWN:
        shown += f", +{len(names) - MAX_DESTINATIONS_SHOWN} more"
    return shown


def alerts_table(alerts: list[dict[str, Any]], title: str = "Alerts") -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("host")
    table.add_column("first window start to last window end (UTC)")
    table.add_column("variation")
    table.add_column("severity")
    table.add_column("new", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("new destinations")
    table.add_column("alert id")
    for alert in alerts:
        window = f"{alert['window_start']:%Y-%m-%d %H:%M} to {alert['window_end']:%Y-%m-%d %H:%M}"
        variation = "highly rare" if alert["variation"].startswith("Highly") else "abnormal"
        table.add_row(
            alert["host_name"] or alert["host_id"],
            window,
            variation,
            alert["severity"],
            str(alert["new_destination_count"]),
            f"{alert['threshold']:g}",
            _destinations(alert),
            alert["alert_id"][:12],
        )
    return table


def _cell(value: Any) -> str:
    """Format one value of `alerts show`: times to the second in UTC, lists one item per line."""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(value, list):
        return "\n".join(str(item) for item in value) or "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def alert_detail(alert: dict[str, Any]) -> Table:
    table = Table(title=f"Alert {alert['alert_id']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key in (
        "reason",
        "alert_name",
        "variation",
        "severity",
        "severity_reasons",
        "host_name",
        "host_id",
        "window_start",
        "window_end",
        "first_detection_window_end",
        "last_detection_window_end",
        "new_destination_count",
        "threshold",
        "baseline_source",
        "baseline_mean_new_destinations",
        "baseline_max_new_destinations",
        "fleet_tail_threshold",
        "failure_ratio",
        "mitre_subtechnique_id",
        "model_name",
        "model_version",
        "model_run_id",
        "status",
        "detection_count",
        "suppressed_count",
        "upgraded_at",
        "detected_at",
        "updated_at",
    ):
        table.add_row(key, _cell(alert.get(key)))
    for destination in alert.get("new_destinations") or []:
        table.add_row(
            "new destination",
            f"{destination['destination_id']} ({destination['destination_ip']}) first {destination['first_time']}, "
            f"{destination['attempts']} attempts, {destination['failures']} failed",
        )
    for process in alert.get("actor_processes") or []:
        table.add_row("actor process", f"{process['name']} ({process['path']}) x{process['count']}")
    for process in alert.get("causality_processes") or []:
        table.add_row("causality process", f"{process['name']} ({process['path']}) x{process['count']}")
    for line in alert.get("command_lines") or []:
        table.add_row("command line", line)
    return table
