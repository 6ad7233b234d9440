"""The score job: host windows to detections, detections to deduplicated alerts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout import registry
from smb_fanout.config import Config
from smb_fanout.score import alerts as A
from smb_fanout.score.detect import ABNORMAL, detect
from smb_fanout.stats.job import read_state
from smb_fanout.tables import Tables, merge

logger = logging.getLogger(__name__)

OPEN = "open"


class NothingToScoreError(RuntimeError):
    """Raised when the stats job has not produced any window yet."""


@dataclass(frozen=True)
class ScoreResult:
    window_from: datetime
    window_to: datetime
    detections: int
    alerts_opened: int
    alerts_updated: int
    model: registry.ModelVersion


def run_score(
    spark: SparkSession,
    config: Config,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
) -> ScoreResult:
    """Score windows ending in (`window_from`, `window_to`]; default: the last hour the stats job finished."""
    tables = Tables(config)
    detector = config.detector
    state = read_state(spark, config)
    if state is None:
        raise NothingToScoreError("no host windows yet: run `smb-fanout stats` before `score`")
    upper = window_to or state.processed_through
    lower = window_from or upper - timedelta(hours=detector.slide_hours)
    model = registry.champion(config)

    windows = tables.smb_host_windows.read(spark).where(
        (F.col("window_end") > F.lit(lower)) & (F.col("window_end") <= F.lit(upper))
    )
    thresholds = tables.smb_thresholds.read(spark).where(F.col("model_run_id") == model.run_id)
    rarity = tables.smb_process_rarity.read(spark).where(F.col("model_run_id") == model.run_id)
    first_seen = tables.host_addresses.read(spark).groupBy("host_id").agg(F.min("first_seen").alias("first_seen"))
    found = detect(windows, thresholds, rarity, first_seen, state.fleet_first_seen, detector, model).persist()
    try:
        detection_count = found.count()
        if detection_count:
            merge(found, tables.smb_detections)
            opened, updated = _write_alerts(spark, config, found)
        else:
            opened, updated = 0, 0
    finally:
        found.unpersist()
    logger.info(
        "score: windows ending in (%s, %s], %s detections, %s alerts opened, %s updated, model %s v%s",
        lower,
        upper,
        detection_count,
        opened,
        updated,
        model.name,
        model.version,
    )
    return ScoreResult(lower, upper, detection_count, opened, updated, model)


def _anchors(stored_alerts: DataFrame, new: DataFrame) -> DataFrame:
    """Per affected host, the start of its latest stored alert that began before its first new detection."""
    first_new = new.groupBy("host_id").agg(F.min("window_end").alias("_first_new"))
    return (
        stored_alerts.join(first_new, "host_id")
        .where(F.col("first_detection_window_end") <= F.col("_first_new"))
        .groupBy("host_id")
        .agg(
            F.max("first_detection_window_end").alias("anchor_start"),
            F.first("_first_new").alias("_first_new"),
        )
    )


def _write_alerts(spark: SparkSession, config: Config, new: DataFrame) -> tuple[int, int]:
    tables = Tables(config)
    detector = config.detector
    first_new = new.groupBy("host_id").agg(F.min("window_end").alias("_first_new"))
    anchors = _anchors(tables.smb_alerts.read(spark), new)
    since = first_new.join(anchors.select("host_id", "anchor_start"), "host_id", "left").select(
        "host_id", F.coalesce("anchor_start", "_first_new").alias("_since")
    )
    relevant = tables.smb_detections.read(spark).join(since, "host_id").where(F.col("window_end") >= F.col("_since"))
    episodes = A.assign_episodes(
        relevant.drop("_since"), anchors.select("host_id", "anchor_start"), detector.dedup_hours
    )
    episodes = episodes.persist()
    try:
        bounds = episodes.agg(F.min("window_start").alias("lo"), F.max("window_end").alias("hi")).first()
        assert bounds is not None
        hourly = tables.smb_contacts_hourly.read(spark).where(
            (F.col("hour") >= F.lit(bounds["lo"])) & (F.col("hour") < F.lit(bounds["hi"]))
        )
        rows = build_alerts(episodes, hourly)
        metrics = merge(
            rows,
            tables.smb_alerts,
            update_condition="t.content_hash <> s.content_hash",
            preserve=("detected_at", "status"),
        )
    finally:
        episodes.unpersist()
    return metrics.get("numTargetRowsInserted", 0), metrics.get("numTargetRowsUpdated", 0)


def build_alerts(episodes: DataFrame, hourly: DataFrame) -> DataFrame:
    """Build one `smb_alerts` row per episode from its peak detection, destinations and processes."""
    keys = ["host_id", "episode_start"]
    counts = episodes.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("detection_count"),
        F.min("window_start").alias("window_start"),
        F.max("window_end").alias("last_detection_window_end"),
    )
    peak = A._peak(episodes).select(
        *keys,
        "host_name",
        "threshold",
        "fleet_tail_threshold",
        "severity_reasons",
        "variation_reason",
        "baseline_source",
        "baseline_mean_new_destinations",
        "baseline_max_new_destinations",
        "baseline_windows_observed",
        "model_name",
        "model_version",
        "model_run_id",
    )
    joined = (
        counts.join(peak, keys)
        .join(A._levels(episodes), keys)
        .join(A.episode_destinations(episodes, hourly), keys, "left")
        .join(A.episode_processes(episodes, hourly), keys, "left")
    )
    alert = (
        joined.withColumnRenamed("top_variation", "variation")
        .withColumnRenamed("top_severity", "severity")
        .withColumn("window_end", F.col("last_detection_window_end"))
        .withColumn("first_detection_window_end", F.col("episode_start"))
        .withColumn("new_destination_count", F.size("new_destinations").cast("long"))
        .withColumn("failure_ratio", F.coalesce(F.col("failure_ratio"), F.lit(0.0)))
        .withColumn("alert_name", F.lit(ABNORMAL))
        .withColumn(
            "alert_id",
            F.sha2(
                F.concat_ws(
                    "|",
                    "host_id",
                    "alert_name",
                    F.date_format("episode_start", "yyyy-MM-dd'T'HH:mm:ss"),
                ),
                256,
            ),
        )
        .withColumn("suppressed_count", F.col("detection_count") - 1)
    )
    alert = alert.withColumn("reason", A.reason_sentence(alert))
    static = {
        "mitre_tactic_id": A.TACTIC[0],
        "mitre_tactic_name": A.TACTIC[1],
        "mitre_technique_id": A.TECHNIQUE[0],
        "mitre_technique_name": A.TECHNIQUE[1],
        "mitre_subtechnique_id": A.SUBTECHNIQUE[0],
        "mitre_subtechnique_name": A.SUBTECHNIQUE[1],
        "description": A.DESCRIPTION,
        "status": OPEN,
    }
    for name, value in static.items():
        alert = alert.withColumn(name, F.lit(value))
    alert = alert.withColumn("investigative_actions", F.array(*[F.lit(a) for a in A.INVESTIGATIVE_ACTIONS]))
    hashed = [c for c in alert.columns if c not in {"episode_start", "variation_reason"}]
    return (
        alert.withColumn("content_hash", F.sha2(F.to_json(F.struct(*sorted(hashed))), 256))
        .withColumn("detected_at", F.current_timestamp())
        .withColumn("updated_at", F.current_timestamp())
    )
