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
        table.add_row("actor process", _process_text(process))
    for process in alert.get("causality_processes") or []:
        table.add_row("causality process", _process_text(process))
    for line in alert.get("command_lines") or []:
        table.add_row("command line", line)
    return table


def _process_text(process: Any) -> str:
    text = f"{process['name']} ({process['path']}) x{process['count']}"
    # Alerts written before schema version 4 have no hash in their processes.
    try:
        sha256 = process["sha256"]
    except (KeyError, ValueError):
        sha256 = None
    return f"{text} sha256 {sha256}" if sha256 else text


def evaluation_table(result: Any) -> Table:
    """Build a table of an `EvaluationResult`: one row per scenario class."""
    table = Table(title=f"Scenario library: {result.hosts} hosts, {result.host_days:,.0f} host-days scored")
    columns = (
        "class",
        "kind",
        "expected",
        "instances",
        "alerted",
        "recall",
        "precision",
        "min to detect",
        "Low",
        "Medium",
    )
    for name in (*columns, "ok"):
        table.add_column(name, justify="left" if name in {"class", "kind", "expected"} else "right")
    for item in result.classes:
        table.add_row(
            item.scenario,
            item.kind,
            item.expected,
            str(item.instances),
            str(item.alerted),
            "" if item.recall is None else f"{item.recall:.2f}",
            "" if item.precision is None else f"{item.precision:.2f}",
            "" if item.median_minutes_to_detect is None else f"{item.median_minutes_to_detect:.0f}",
            str(item.low_alerts),
            str(item.medium_alerts),
            "yes" if item.meets_expectation else "[red]no[/red]",
        )
    return table


def explanation(result: Any) -> list[Any]:
    """Render an `Explanation` as tables and lines for the console."""
    alert, detection = result.alert, result.detection or {}
    versions = ", ".join(f"{k} v{v}" for k, v in sorted((alert.get("input_versions") or {}).items()))
    decision = Table(title=f"Alert {alert['alert_id'][:12]} on {alert.get('host_name') or alert['host_id']}")
    decision.add_column("evidence")
    decision.add_column("value")
    rows = [
        ("alert", f"{alert['variation']}, severity {alert['severity']}"),
        ("period", f"{alert['window_start']} to {alert['window_end']} UTC"),
        ("model", f"{alert['model_name']} version {alert['model_version']} (run {alert['model_run_id']})"),
        ("tables read", versions),
        ("baseline", f"{alert.get('baseline_source')} (peer group {alert.get('peer_group')})"),
        ("insufficient history", str(alert.get("insufficient_history"))),
        ("baseline size", f"{alert.get('baseline_windows_observed')} windows of the host in training"),
        ("usual new destinations per window", _cell(alert.get("baseline_mean_new_destinations"))),
        ("predicted new destinations per window", _cell(detection.get("predictive_mean"))),
        ("peak window", f"{detection.get('window_end')}: {detection.get('new_destination_count')} new destinations"),
        ("threshold", f"{alert['threshold']:g} (fleet highly rare tail {alert['fleet_tail_threshold']:g})"),
        ("tail probability", _cell(alert.get("tail_probability"))),
        ("not counted", _not_counted(alert)),
        ("tier", result.variation_explanation),
        ("severity", "; ".join(result.severity_explanation)),
    ]
    for name, value in rows:
        decision.add_row(name, value)

    destinations = Table(title="New destinations")
    for name in ("destination", "address", "resolved", "first contact", "attempts", "failures", "fleet hosts"):
        destinations.add_column(name)
    for d in result.destinations:
        destinations.add_row(
            d["destination_id"],
            d["destination_ip"],
            "yes" if d["resolved"] else "no",
            str(d["first_time"]),
            str(d["attempts"]),
            str(d["failures"]),
            str(d["fleet_hosts_in_training"]),
        )

    if result.reproduced:
        verdict = "re-derived from those table versions: the stored decision is reproduced"
    elif result.detection is None:
        verdict = "[red]re-derived from those table versions: no detection, the stored decision is not reproduced[/red]"
    else:
        changes = "; ".join(f"{k}: stored {a!r}, re-derived {b!r}" for k, (a, b) in result.differences.items())
        verdict = f"[red]re-derived from those table versions, with differences: {changes}[/red]"
    return [decision, destinations, verdict]


def _not_counted(alert: dict[str, Any]) -> str:
    parts = {
        "common in the fleet": alert.get("common_destination_count"),
        "fleet change": alert.get("fleet_change_destination_count"),
        "allowlisted range": alert.get("excluded_destination_count"),
    }
    return ", ".join(f"{count} {name}" for name, count in parts.items() if count) or "none"
