"""Detections: host windows compared with the champion model's thresholds."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smb_fanout.config import DetectorConfig
from smb_fanout.fit.thresholds import FLEET_HOST_ID
from smb_fanout.registry import ModelVersion

ABNORMAL = "Abnormal SMB activity to multiple hosts"
HIGHLY_RARE = "Highly rare SMB activity to multiple hosts"
LOW = "Low"
MEDIUM = "Medium"


def variation_rank(variation: Column) -> Column:
    return F.when(variation == HIGHLY_RARE, 2).otherwise(1)


def severity_rank(severity: Column) -> Column:
    return F.when(severity == MEDIUM, 2).otherwise(1)


def _with_thresholds(windows: DataFrame, thresholds: DataFrame) -> DataFrame:
    """Join each window to its host's threshold row, falling back to the fleet row."""
    fleet = thresholds.where(F.col("host_id") == FLEET_HOST_ID).select(
        F.col("threshold").alias("_fleet_threshold"),
        F.col("fleet_tail_threshold").alias("_fleet_tail"),
    )
    hosts = thresholds.where(F.col("host_id") != FLEET_HOST_ID).select(
        "host_id",
        F.col("threshold").alias("_host_threshold"),
        F.col("showed_fanout").alias("_showed_fanout"),
        F.col("baseline_source").alias("_baseline_source"),
        F.col("mean_new_destinations").alias("baseline_mean_new_destinations"),
        F.col("max_new_destinations").alias("baseline_max_new_destinations"),
        F.col("windows_observed").alias("baseline_windows_observed"),
    )
    return (
        windows.join(hosts, "host_id", "left")
        .crossJoin(F.broadcast(fleet))
        .withColumn("threshold", F.coalesce(F.col("_host_threshold"), F.col("_fleet_threshold")))
        .withColumn("fleet_tail_threshold", F.col("_fleet_tail"))
        .withColumn("baseline_source", F.coalesce(F.col("_baseline_source"), F.lit("fleet")))
    )


def _rare_actor_processes(windows: DataFrame, rarity: DataFrame, detector: DetectorConfig) -> DataFrame:
    """Per host window, the user-mode actor processes used for SMB by few hosts in training."""
    actors = windows.select("host_id", "window_end", F.explode("actor_processes").alias("p")).select(
        "host_id",
        "window_end",
        F.lower(F.coalesce(F.col("p.name"), F.lit(""))).alias("process_name"),
    )
    user_mode = actors.where(
        (F.col("process_name") != "") & ~F.col("process_name").isin(*detector.os_smb_client_processes)
    )
    rare = user_mode.join(F.broadcast(rarity.select("process_name", "host_fraction")), "process_name", "left").where(
        F.coalesce(F.col("host_fraction"), F.lit(0.0)) <= detector.rare_process_host_fraction
    )
    return rare.groupBy("host_id", "window_end").agg(F.array_sort(F.collect_set("process_name")).alias("_rare_actors"))


def detect(
    windows: DataFrame,
    thresholds: DataFrame,
    rarity: DataFrame,
    host_first_seen: DataFrame,
    fleet_first_seen: datetime,
    detector: DetectorConfig,
    model: ModelVersion,
) -> DataFrame:
    """Windows that are abnormal, with variation, severity and the reasons for both.

    Needs `smb_host_windows` rows, the model's `smb_thresholds` and
    `smb_process_rarity` rows, and `host_id`, `first_seen` per host. A window
    is scored only when the fleet and the host have `activation_days` of data.
    """
    activation = F.make_dt_interval(days=F.lit(detector.activation_days))
    scored = (
        _with_thresholds(windows, thresholds)
        .join(
            host_first_seen.select("host_id", F.col("first_seen").alias("_host_first_seen")),
            "host_id",
            "left",
        )
        .where(F.lit(fleet_first_seen).cast("timestamp") <= F.col("window_end") - activation)
        .where(F.col("_host_first_seen") <= F.col("window_end") - activation)
    )
    count = F.col("new_destination_count")
    abnormal = scored.where((count >= detector.min_new_destinations) & (count > F.col("threshold")))
    rare_actors = _rare_actor_processes(abnormal, rarity, detector)
    enriched = abnormal.join(rare_actors, ["host_id", "window_end"], "left")

    beyond_tail = count > F.col("fleet_tail_threshold")
    first_fanout = ~F.coalesce(F.col("_showed_fanout"), F.lit(False))
    new_failure_ratio = F.when(F.col("new_attempts") > 0, F.col("new_failures") / F.col("new_attempts")).otherwise(0.0)
    reasons = F.array_compact(
        F.array(
            F.when(
                F.size(F.coalesce(F.col("_rare_actors"), F.array())) > 0,
                F.concat(F.lit("rare actor process for SMB: "), F.array_join(F.col("_rare_actors"), ", ")),
            ),
            F.when(
                count >= F.col("threshold") * detector.medium_multiplier,
                F.lit(f"count at least {detector.medium_multiplier:g} times the threshold"),
            ),
            F.when(
                new_failure_ratio > detector.medium_failure_ratio,
                F.lit("most attempts failed (scan-like)"),
            ),
        )
    )
    variation_reason = (
        F.when(beyond_tail, F.lit("beyond the fleet's highly rare tail"))
        .when(first_fanout, F.lit("the host never showed SMB fan-out before"))
        .otherwise(F.lit(""))
    )
    return enriched.select(
        "host_id",
        "host_name",
        "window_start",
        "window_end",
        F.when(beyond_tail | first_fanout, F.lit(HIGHLY_RARE)).otherwise(F.lit(ABNORMAL)).alias("variation"),
        F.when(F.size(reasons) > 0, F.lit(MEDIUM)).otherwise(F.lit(LOW)).alias("severity"),
        "new_destination_count",
        "new_destinations",
        "threshold",
        "fleet_tail_threshold",
        new_failure_ratio.alias("failure_ratio"),
        reasons.alias("severity_reasons"),
        variation_reason.alias("variation_reason"),
        "baseline_source",
        "baseline_mean_new_destinations",
        "baseline_max_new_destinations",
        "baseline_windows_observed",
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.lit(model.run_id).alias("model_run_id"),
    )
