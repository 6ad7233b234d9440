"""Small alert, window and threshold tables written to real Delta tables for the view and report tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession

from smb_fanout import schemas
from smb_fanout.config import Config
from smb_fanout.tables import Tables, append

RUN_ID = "run-1"
BASE = datetime(2026, 11, 20, 0, 0)


def destination(index: int, first_time: datetime, failures: int = 0) -> dict[str, Any]:
    return {
        "destination_id": f"host-{index:03d}",
        "destination_ip": f"10.0.0.{index}",
        "resolved": True,
        "first_time": first_time,
        "attempts": 3,
        "failures": failures,
    }


def alert_row(
    alert_id: str,
    host_id: str,
    window_end: datetime,
    count: int,
    severity: str = "Low",
    variation: str = "Abnormal SMB activity to multiple hosts",
    threshold: float = 4.0,
) -> dict[str, Any]:
    start = window_end - timedelta(hours=5)
    destinations = [destination(i, start + timedelta(minutes=10 * i)) for i in range(1, count + 1)]
    return {
        "alert_id": alert_id,
        "alert_name": "Abnormal SMB activity to multiple hosts",
        "variation": variation,
        "severity": severity,
        "host_id": host_id,
        "host_name": f"{host_id}.corp.local",
        "window_start": start,
        "window_end": window_end,
        "first_detection_window_end": window_end,
        "last_detection_window_end": window_end,
        "new_destinations": destinations,
        "new_destination_count": count,
        "threshold": threshold,
        "baseline_mean_new_destinations": 0.5,
        "baseline_max_new_destinations": 2,
        "baseline_windows_observed": 700,
        "baseline_source": "host",
        "fleet_tail_threshold": 12.0,
        "failure_ratio": 0.0,
        "actor_processes": [{"name": "System", "path": None, "count": count}],
        "causality_processes": [],
        "command_lines": [],
        "severity_reasons": [],
        "mitre_tactic_id": "TA0008",
        "mitre_tactic_name": "Lateral Movement",
        "mitre_technique_id": "T1021",
        "mitre_technique_name": "Remote Services",
        "mitre_subtechnique_id": "T1021.002",
        "mitre_subtechnique_name": "SMB/Windows Admin Shares",
        "description": "SMB fan-out",
        "investigative_actions": [],
        "reason": f"{host_id}.corp.local opened SMB connections to {count} hosts it had not contacted.",
        "model_name": "smb_fanout_thresholds",
        "model_version": "3",
        "model_run_id": RUN_ID,
        "status": "open",
        "detection_count": 1,
        "suppressed_count": 0,
        "upgraded_at": None,
        "content_hash": alert_id,
        "detected_at": window_end,
        "updated_at": window_end,
    }


# Three hosts, four alerts over three days: ws-01 alerts twice, ws-03 is Medium and highly rare.
ALERTS = (
    alert_row("a1", "ws-01", BASE + timedelta(days=1, hours=10), 6),
    alert_row("a2", "ws-01", BASE + timedelta(days=2, hours=11), 7),
    alert_row("a3", "ws-02", BASE + timedelta(days=2, hours=15), 5),
    alert_row(
        "a4",
        "ws-03",
        BASE + timedelta(days=3, hours=9),
        20,
        severity="Medium",
        variation="Highly rare SMB activity to multiple hosts",
        threshold=5.0,
    ),
)


def threshold_row(host_id: str, threshold: float) -> dict[str, Any]:
    return {
        "model_run_id": RUN_ID,
        "host_id": host_id,
        "baseline_source": "host" if host_id != "*" else "fleet",
        "windows_observed": 700,
        "active_windows": 100,
        "mean_new_destinations": 0.5,
        "max_new_destinations": 3,
        "host_quantile": 2.0,
        "fleet_floor": 4.0,
        "threshold": threshold,
        "fleet_tail_threshold": 12.0,
        "showed_fanout": True,
        "training_start": BASE - timedelta(days=30),
        "training_end": BASE,
        "fitted_at": BASE,
    }


THRESHOLDS = (
    threshold_row("*", 4.0),
    threshold_row("ws-01", 4.0),
    threshold_row("ws-02", 4.0),
    threshold_row("ws-03", 5.0),
    threshold_row("srv-01", 75.0),
)


def window_row(host_id: str, window_end: datetime, new: int) -> dict[str, Any]:
    return {
        "host_id": host_id,
        "host_name": f"{host_id}.corp.local",
        "window_start": window_end - timedelta(hours=5),
        "window_end": window_end,
        "distinct_destinations": new + 1,
        "new_destination_count": new,
        "new_destinations": [],
        "attempts": new + 1,
        "failures": 0,
        "failure_ratio": 0.0,
        "new_attempts": new,
        "new_failures": 0,
        "actor_processes": [],
        "causality_processes": [],
        "command_lines": [],
    }


# ws-03's history: one quiet window a day before its alert, and one of another host that the report must skip.
WINDOWS = (
    window_row("ws-03", BASE + timedelta(days=1), 1),
    window_row("ws-03", BASE + timedelta(days=2), 0),
    window_row("ws-03", BASE + timedelta(days=3, hours=9), 20),
    window_row("ws-01", BASE + timedelta(days=2), 9),
)


def write_tables(spark: SparkSession, config: Config) -> None:
    """Write ALERTS, THRESHOLDS and WINDOWS to the configuration's Delta tables."""
    tables = Tables(config)
    for ref, rows, ddl in (
        (tables.smb_alerts, ALERTS, schemas.SMB_ALERTS),
        (tables.smb_thresholds, THRESHOLDS, schemas.SMB_THRESHOLDS),
        (tables.smb_host_windows, WINDOWS, schemas.SMB_HOST_WINDOWS),
    ):
        append(spark.createDataFrame(list(rows), schemas.struct_type(ddl)), ref)
