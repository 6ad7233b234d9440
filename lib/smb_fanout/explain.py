"""Explain an alert: re-derive its decision from the table versions it was made from.

Every alert records its model version and run id and, in `input_versions`,
the Delta versions of the windows, model and host tables its score run read.
`explain_alert` reads those versions (time travel), applies the detector with
the parameters logged in the model's MLflow run, and returns the evidence
next to what the alert stored.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import Config, DetectorConfig
from smb_fanout.registry import ModelVersion, configure
from smb_fanout.score.detect import ABNORMAL, detect
from smb_fanout.score.job import WINDOWS_KEY, model_tables, scored_hosts
from smb_fanout.tables import Tables

# Fields of the stored peak detection that re-deriving it must reproduce.
COMPARED = ("new_destination_count", "threshold", "variation", "severity", "baseline_source")


class AlertNotFoundError(LookupError):
    """Raised when no alert, or more than one, has the given id prefix."""


class NotExplainableError(RuntimeError):
    """Raised when an alert lacks what re-deriving it needs."""


@dataclass(frozen=True)
class Explanation:
    """Evidence for one alert and whether re-deriving it reproduced the stored decision."""

    alert: dict[str, Any]
    detection: dict[str, Any] | None
    stored: dict[str, Any] | None
    destinations: list[dict[str, Any]]
    detector: dict[str, Any]
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    severity_explanation: list[str] = field(default_factory=list)
    variation_explanation: str = ""

    @property
    def reproduced(self) -> bool:
        return self.detection is not None and not self.differences


def find_alert(spark: SparkSession, config: Config, alert_id: str) -> dict[str, Any]:
    """Return the one alert whose id starts with `alert_id`.

    Raises:
        AlertNotFoundError: no alert or several alerts match.
    """
    rows = Tables(config).smb_alerts.read(spark).where(F.col("alert_id").startswith(alert_id)).limit(2).collect()
    if len(rows) != 1:
        problem = "not found" if not rows else "ambiguous: give more characters"
        raise AlertNotFoundError(f"alert id {alert_id!r} {problem}")
    return rows[0].asDict(recursive=True)


def fitted_detector(config: Config, run_id: str) -> DetectorConfig:
    """Rebuild the detector parameters that the fit run `run_id` logged; configured values fill any gap."""
    import mlflow

    configure(config)
    params = mlflow.get_run(run_id).data.params
    values = config.detector.model_dump()
    for key, text in params.items():
        name = key.removeprefix("detector.")
        if key.startswith("detector.") and name in values:
            try:
                values[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                values[name] = text
    return DetectorConfig.model_validate(values)


def explain_alert(spark: SparkSession, config: Config, alert_id: str) -> Explanation:
    """Re-derive the alert's peak detection and collect the evidence.

    Raises:
        AlertNotFoundError: the id matches no alert or several.
        NotExplainableError: the alert has no recorded input versions (it was
            written before they were recorded); rescore its window first.
    """
    alert = find_alert(spark, config, alert_id)
    versions = alert.get("input_versions")
    if not versions:
        raise NotExplainableError(
            f"alert {alert['alert_id']} has no input_versions: it was written before they were recorded. "
            f"Rescore its period with `smb-fanout score --from ... --to ...` and explain it again"
        )
    detector = fitted_detector(config, alert["model_run_id"])
    run_config = config.model_copy(update={"detector": detector})
    model = ModelVersion(alert["model_name"], alert["model_version"], alert["model_run_id"])
    tables = Tables(config)
    windows = (
        tables.smb_host_windows.read_version(spark, versions[WINDOWS_KEY])
        .where(F.col("host_id") == alert["host_id"])
        .where(F.col("window_end").between(alert["first_detection_window_end"], alert["last_detection_window_end"]))
    )
    fleet_first_seen = (
        tables.host_addresses.read_version(spark, versions["host_addresses"]).agg(F.min("first_seen")).first()
    )
    if fleet_first_seen is None or fleet_first_seen[0] is None:
        raise NotExplainableError(f"host_addresses at version {versions['host_addresses']} is empty")
    inputs = model_tables(spark, config, model, versions)
    hosts = scored_hosts(spark, config, windows, versions)
    found = detect(windows, inputs, hosts, fleet_first_seen[0], run_config, model)
    peak = found.orderBy(F.col("new_destination_count").desc(), "window_end").limit(1).collect()
    detection = peak[0].asDict(recursive=True) if peak else None
    destinations = _destination_evidence(spark, alert, inputs.popularity)
    stored = None
    differences: dict[str, tuple[Any, Any]] = {}
    if detection is not None:
        key = (F.col("host_id") == alert["host_id"]) & (F.col("window_end") == detection["window_end"])
        rows = tables.smb_detections.read(spark).where(key).collect()
        stored = rows[0].asDict(recursive=True) if rows else None
        differences = {
            name: ((stored or {}).get(name), detection.get(name))
            for name in COMPARED
            if (stored or {}).get(name) != detection.get(name)
        }
    return Explanation(
        alert=alert,
        detection=detection,
        stored=stored,
        destinations=destinations,
        detector=detector.model_dump(),
        differences=differences,
        severity_explanation=_severity_explanation(alert, detector),
        variation_explanation=_variation_explanation(alert, detection),
    )


def _destination_evidence(spark: SparkSession, alert: dict[str, Any], popularity: Any) -> list[dict[str, Any]]:
    """List each new destination of the alert with the number of fleet hosts that reached it in training."""
    ids = [d["destination_id"] for d in alert.get("new_destinations") or []]
    reached = {
        row["destination_id"]: int(row["hosts"])
        for row in popularity.where(F.col("destination_id").isin(ids)).select("destination_id", "hosts").collect()
    }
    return [{**d, "fleet_hosts_in_training": reached.get(d["destination_id"], 0)} for d in alert["new_destinations"]]


def _severity_explanation(alert: dict[str, Any], detector: DetectorConfig) -> list[str]:
    if alert["severity_reasons"]:
        return [f"Medium because {reason}" for reason in alert["severity_reasons"]]
    return [
        "Low because none of the Medium rules holds: no user-mode actor process used for SMB by at most "
        f"{detector.rare_process_host_fraction:.0%} of hosts, a count below {detector.medium_multiplier:g} times the "
        f"threshold, and at most {detector.medium_failure_ratio:.0%} of attempts failed"
    ]


def _variation_explanation(alert: dict[str, Any], detection: dict[str, Any] | None) -> str:
    peak = detection or alert
    if alert["variation"] == ABNORMAL:
        return (
            f"abnormal: {peak['new_destination_count']} new destinations in one window, at least the floor and "
            f"above the threshold of {peak['threshold']:g}, but not beyond the fleet's highly rare tail of "
            f"{peak['fleet_tail_threshold']:g}, and the host has shown SMB fan-out before"
        )
    reason = (detection or {}).get("variation_reason") or "a later window of the alert"
    return f"highly rare: {reason}"
