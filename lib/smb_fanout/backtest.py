"""Backtest: replay stored host windows through a model version without writing alerts.

The windows are scored with the version's thresholds and grouped into
alerts per host and deduplication period, as the score job would group
them. The figures (alerts per day, per 1,000 host-days, concentration on
the noisiest hosts, recall on labelled attacks) are logged to the version's
MLflow run next to its fit metrics, with a plot of alerts per day.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout import registry
from smb_fanout.config import Config
from smb_fanout.score.alerts import assign_episodes
from smb_fanout.score.detect import detect
from smb_fanout.score.job import WINDOWS_KEY, model_tables, pinned_versions, scored_hosts
from smb_fanout.stats.job import read_state
from smb_fanout.tables import Tables, current_version

logger = logging.getLogger(__name__)

# Share of all alerts that the noisiest hosts raise, reported for this many hosts.
TOP_HOSTS = 5


class NothingToBacktestError(RuntimeError):
    """Raised when there are no stored windows in the requested range."""


@dataclass(frozen=True)
class BacktestResult:
    """Figures of one backtest of a model version."""

    model: registry.ModelVersion
    window_from: datetime
    window_to: datetime
    hosts: int
    host_days: float
    detections: int
    alerts: int
    alerts_per_day: dict[str, int]
    alerts_per_1000_host_days: float
    top_hosts_share: float
    attacks: int | None
    attacks_detected: int | None

    @property
    def recall(self) -> float | None:
        return None if not self.attacks else (self.attacks_detected or 0) / self.attacks


def _attack_labels(spark: SparkSession, path: Path, window_hours: int) -> DataFrame:
    """Attack labels from `labels.json` (one host per attack) or `scenarios.json` (kind `attack`)."""
    rows = []
    for label in json.loads(path.read_text(encoding="utf-8")):
        if label.get("kind", "attack") != "attack":
            continue
        hosts = label.get("host_ids") or [label["host_id"]]
        start = datetime.fromisoformat(label["start"].replace("Z", "+00:00")).replace(tzinfo=None)
        end = datetime.fromisoformat(label["end"].replace("Z", "+00:00")).replace(tzinfo=None)
        rows += [
            (label.get("attack_id") or label["scenario_id"], h, start, end + timedelta(hours=window_hours))
            for h in hosts
        ]
    return spark.createDataFrame(rows, "label_id string, host_id string, start timestamp, stop timestamp")


def run_backtest(
    spark: SparkSession,
    config: Config,
    version: str,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
    labels_path: Path | None = None,
) -> BacktestResult:
    """Score the stored windows in (`window_from`, `window_to`] with model `version` and measure the alerts.

    The default range is the last `activation_days` before the stats
    progress. Windows inside the version's own training period are scored
    in-sample, so the figures are optimistic there.

    Raises:
        ModelNotFoundError: the version is not registered.
        NothingToBacktestError: no windows in the range.
    """
    model = registry.model_version(config, version)
    state = read_state(spark, config)
    if state is None:
        raise NothingToBacktestError("no host windows yet: run `smb-fanout stats` before `backtest`")
    upper = window_to or state.processed_through
    lower = window_from or upper - timedelta(days=config.detector.activation_days)
    tables = Tables(config)
    versions = {WINDOWS_KEY: current_version(spark, tables.smb_host_windows), **pinned_versions(spark, config)}
    windows = (
        tables.smb_host_windows.read_version(spark, versions[WINDOWS_KEY])
        .where((F.col("window_end") > F.lit(lower)) & (F.col("window_end") <= F.lit(upper)))
        .persist()
    )
    try:
        hosts = windows.select("host_id").distinct().count()
        if hosts == 0:
            raise NothingToBacktestError(f"no host windows ending in ({lower}, {upper}]: run `smb-fanout stats`")
        found = detect(
            windows,
            model_tables(spark, config, model, versions),
            scored_hosts(spark, config, windows, versions),
            state.fleet_first_seen,
            config,
            model,
        ).where(F.col("exclusion").isNull())
        anchors = spark.createDataFrame([], "host_id string, anchor_start timestamp")
        episodes = assign_episodes(found, anchors, config.detector.dedup_hours).persist()
        result = _measure(spark, config, model, episodes, hosts, lower, upper, labels_path)
        episodes.unpersist()
    finally:
        windows.unpersist()
    return result


def _measure(
    spark: SparkSession,
    config: Config,
    model: registry.ModelVersion,
    episodes: DataFrame,
    hosts: int,
    lower: datetime,
    upper: datetime,
    labels_path: Path | None,
) -> BacktestResult:
    alerts = episodes.groupBy("host_id", "episode_start").agg(
        F.min("window_start").alias("window_start"), F.max("window_end").alias("window_end")
    )
    detections = episodes.count()
    total = alerts.count()
    # One row per day of the range: bounded by the range, not by the fleet.
    per_day = {
        str(row["day"]): int(row["alerts"])
        for row in alerts.groupBy(F.to_date("episode_start").alias("day"))
        .agg(F.count(F.lit(1)).alias("alerts"))
        .collect()
    }
    top = alerts.groupBy("host_id").count().orderBy(F.col("count").desc()).limit(TOP_HOSTS).agg(F.sum("count")).first()
    top_share = (int(top[0]) / total) if total and top is not None and top[0] is not None else 0.0
    host_days = hosts * (upper - lower).total_seconds() / 86400
    attacks = detected = None
    if labels_path is not None:
        labels = _attack_labels(spark, labels_path, config.detector.window_hours)
        attacks = labels.select("label_id").distinct().count()
        overlap = (F.col("window_start") <= F.col("stop")) & (F.col("window_end") >= F.col("start"))
        detected = labels.join(alerts, "host_id").where(overlap).select("label_id").distinct().count()
    return BacktestResult(
        model=model,
        window_from=lower,
        window_to=upper,
        hosts=hosts,
        host_days=host_days,
        detections=detections,
        alerts=total,
        alerts_per_day=dict(sorted(per_day.items())),
        alerts_per_1000_host_days=1000.0 * total / host_days if host_days else 0.0,
        top_hosts_share=top_share,
        attacks=attacks,
        attacks_detected=detected,
    )


def log_backtest(config: Config, result: BacktestResult) -> None:
    """Log the figures and a plot of alerts per day to the model version's MLflow run."""
    import mlflow

    registry.configure(config)
    metrics: dict[str, float] = {
        "backtest.alerts": float(result.alerts),
        "backtest.alerts_per_1000_host_days": result.alerts_per_1000_host_days,
        "backtest.top_hosts_share": result.top_hosts_share,
        "backtest.detections": float(result.detections),
    }
    if result.recall is not None:
        metrics["backtest.recall"] = result.recall
    with mlflow.start_run(run_id=result.model.run_id):
        mlflow.log_metrics(metrics)
        mlflow.log_params(
            {"backtest.window_from": result.window_from.isoformat(), "backtest.window_to": result.window_to.isoformat()}
        )
        with tempfile.TemporaryDirectory() as folder:
            figure = plot_alerts_per_day(result, Path(folder))
            mlflow.log_artifact(str(figure), artifact_path="backtest")


def plot_alerts_per_day(result: BacktestResult, folder: Path) -> Path:
    """Write a bar chart of alerts per day for the backtest range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = _days(result.window_from, result.window_to)
    counts = [result.alerts_per_day.get(day, 0) for day in days]
    figure, axis = plt.subplots(figsize=(8, 4))
    axis.bar(range(len(days)), counts, color="#4C72B0")
    axis.set_xticks(range(len(days)), days, rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("alerts")
    axis.set_title(f"Backtest of {result.model.name} version {result.model.version}: alerts per day")
    path = folder / "alerts_per_day.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _days(lower: datetime, upper: datetime) -> list[str]:
    first, last = lower.date(), upper.date()
    return [str(first + timedelta(days=n)) for n in range((last - first).days + 1)]


def to_payload(result: BacktestResult) -> dict[str, Any]:
    return {
        "model": result.model.name,
        "version": result.model.version,
        "run_id": result.model.run_id,
        "window_from": result.window_from.isoformat(),
        "window_to": result.window_to.isoformat(),
        "hosts": result.hosts,
        "host_days": result.host_days,
        "detections": result.detections,
        "alerts": result.alerts,
        "alerts_per_day": result.alerts_per_day,
        "alerts_per_1000_host_days": result.alerts_per_1000_host_days,
        "top_hosts_share": result.top_hosts_share,
        "attacks": result.attacks,
        "attacks_detected": result.attacks_detected,
        "recall": result.recall,
    }
