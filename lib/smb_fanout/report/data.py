"""Bounded summaries of the alert, window and threshold tables for the HTML report.

Every query aggregates or limits in Spark before it collects, so the driver
receives at most a few hundred rows whatever the fleet size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import Config
from smb_fanout.tables import Tables
from smb_fanout.views import ALERT_LIST, ALERTS_DAILY, TOP_HOSTS, ViewSpec, create_views, view_name

TOP_HOSTS_SHOWN = 15
NEWEST_ALERTS_SHOWN = 20
# Thresholds above this are drawn in one last bin, so the histogram has at most this many + 1 bars.
THRESHOLD_BINS = 60


class AlertNotFoundError(LookupError):
    """Raised when the alert requested for the timeline is not in the alert table."""


@dataclass
class ReportData:
    generated_at: datetime
    days: int
    summary: dict[str, Any]
    daily: list[dict[str, Any]]
    top_hosts: list[dict[str, Any]]
    newest_alerts: list[dict[str, Any]]
    alert: dict[str, Any] | None
    host_windows: list[dict[str, Any]]
    thresholds: list[dict[str, Any]]
    fleet_lines: dict[str, float] = field(default_factory=dict)


def _rows(df: DataFrame) -> list[dict[str, Any]]:
    return [row.asDict(recursive=True) for row in df.collect()]


def _view(spark: SparkSession, config: Config, view: ViewSpec) -> DataFrame:
    return spark.table(view_name(config, view))


def _pick_alert(alerts: DataFrame, alert_id: str | None) -> dict[str, Any] | None:
    if alert_id is not None:
        matches = _rows(alerts.where(F.col("alert_id").startswith(alert_id)).limit(2))
        if len(matches) != 1:
            problem = "not found" if not matches else "ambiguous: give more characters"
            raise AlertNotFoundError(f"alert id {alert_id!r} {problem}")
        return matches[0]
    # Without an id, the timeline shows the strongest of the newest alerts.
    ordered = alerts.orderBy(
        F.col("window_end").desc(),
        F.col("new_destination_count").desc(),
        F.col("alert_id"),
    )
    chosen = _rows(ordered.limit(1))
    return chosen[0] if chosen else None


def _host_windows(spark: SparkSession, config: Config, alert: dict[str, Any]) -> list[dict[str, Any]]:
    """Windows of the alert's host over its training period and the alert, one row per hour at most."""
    start = alert["window_start"] - timedelta(days=config.detector.training_days)
    windows = Tables(config).smb_host_windows.read(spark)
    selected = windows.where(
        (F.col("host_id") == alert["host_id"])
        & (F.col("window_end") >= F.lit(start))
        & (F.col("window_end") <= F.lit(alert["window_end"]))
    )
    return _rows(selected.select("window_end", "new_destination_count", "distinct_destinations").orderBy("window_end"))


def _thresholds(
    spark: SparkSession, config: Config, run_id: str | None
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Histogram of per-host thresholds of one fitted model, and its fleet floor and tail."""
    table = Tables(config).smb_thresholds.read(spark)
    if run_id is None:
        latest = _rows(table.orderBy(F.col("fitted_at").desc(), "model_run_id").select("model_run_id").limit(1))
        if not latest:
            return [], {}
        run_id = latest[0]["model_run_id"]
    fitted = table.where(F.col("model_run_id") == run_id)
    hosts = fitted.where(F.col("host_id") != "*")
    binned = hosts.groupBy(F.least(F.floor("threshold"), F.lit(THRESHOLD_BINS)).cast("int").alias("threshold_bin")).agg(
        F.count("*").alias("hosts")
    )
    fleet = _rows(fitted.where(F.col("host_id") == "*").select("fleet_floor", "fleet_tail_threshold").limit(1))
    lines = {}
    if fleet:
        lines = {"fleet floor": fleet[0]["fleet_floor"], "highly rare tail": fleet[0]["fleet_tail_threshold"]}
    return _rows(binned.orderBy("threshold_bin")), lines


def load_report_data(
    spark: SparkSession,
    config: Config,
    days: int = 30,
    alert_id: str | None = None,
    now: datetime | None = None,
) -> ReportData:
    """Query the views and tables for the report.

    Args:
        days: days of alerts shown in the charts over time, ending at the newest alert.
        alert_id: alert (or unique prefix) whose new destinations the timeline shows;
            default the newest alert with the most new destinations.
        now: time printed as the report's creation time (UTC).

    Raises:
        AlertNotFoundError: `alert_id` matches no alert or more than one.
    """
    create_views(spark, config)
    alerts = Tables(config).smb_alerts.read(spark)
    summary = _rows(
        alerts.agg(
            F.count("*").alias("alerts"),
            F.countDistinct("host_id").alias("hosts"),
            F.count_if(F.col("severity") == "Medium").alias("medium"),
            F.count_if(F.col("variation").startswith("Highly rare")).alias("highly_rare"),
            F.min("window_start").alias("first_window_start"),
            F.max("window_end").alias("last_window_end"),
            F.max_by("model_version", "updated_at").alias("model_version"),
        )
    )[0]

    daily: list[dict[str, Any]] = []
    if summary["last_window_end"] is not None:
        since = (summary["last_window_end"] - timedelta(days=days)).date()
        daily = _rows(_view(spark, config, ALERTS_DAILY).where(F.col("day") > F.lit(since)).orderBy("day"))

    top = _view(spark, config, TOP_HOSTS).orderBy(
        F.col("alerts").desc(), F.col("max_new_destinations").desc(), "host_id"
    )
    newest = _view(spark, config, ALERT_LIST).orderBy(F.col("window_end").desc(), "host", "alert_id")
    alert = _pick_alert(alerts, alert_id)
    host_windows = _host_windows(spark, config, alert) if alert else []
    thresholds, lines = _thresholds(spark, config, alert["model_run_id"] if alert else None)
    return ReportData(
        generated_at=now or datetime.now(UTC).replace(tzinfo=None),
        days=days,
        summary=summary,
        daily=daily,
        top_hosts=_rows(top.limit(TOP_HOSTS_SHOWN)),
        newest_alerts=_rows(newest.limit(NEWEST_ALERTS_SHOWN)),
        alert=alert,
        host_windows=host_windows,
        thresholds=thresholds,
        fleet_lines=lines,
    )
