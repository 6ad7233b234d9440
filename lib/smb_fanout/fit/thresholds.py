"""Threshold model: per-host quantiles of new destinations per window, with fleet floors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smb_fanout.config import DetectorConfig

FLEET_HOST_ID = "*"


@dataclass(frozen=True)
class FleetDistribution:
    """Counts of host-windows by number of new destinations, zeros included."""

    counts: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def mean(self) -> float:
        total = self.total
        return sum(value * count for value, count in self.counts.items()) / total if total else 0.0

    def quantile(self, q: float) -> float:
        """Smallest value v with P(X <= v) >= q; 0 for an empty distribution."""
        if self.total == 0:
            return 0.0
        rank = math.ceil(q * self.total)
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return float(value)
        return float(max(self.counts))


def observed_windows(
    host_first_seen: DataFrame, training_start: datetime, training_end: datetime, window_hours: int
) -> DataFrame:
    """Number of window ends in the training period during which each host existed.

    Needs `host_id`, `first_seen`; a window counts once the host has been seen
    for a whole window, so partial first windows are not read as quiet.
    """
    start = F.greatest(
        F.lit(training_start).cast("timestamp"),
        F.col("first_seen") + F.make_dt_interval(hours=F.lit(window_hours)),
    )
    seconds = F.unix_timestamp(F.lit(training_end).cast("timestamp")) - F.unix_timestamp(start)
    return host_first_seen.select(
        "host_id",
        F.greatest(F.floor(seconds / 3600), F.lit(0)).cast("long").alias("windows_observed"),
    )


def host_statistics(windows: DataFrame, observed: DataFrame, quantile: float) -> DataFrame:
    """Per-host quantile, mean and maximum of new destinations per window, counting quiet windows as 0.

    Needs training windows (`host_id`, `new_destination_count`) and
    `observed_windows`. Only windows with SMB activity are stored, so the
    quantile is taken over the active counts shifted by the number of zeros.
    """
    active = windows.groupBy("host_id").agg(
        F.count(F.lit(1)).alias("active_windows"),
        F.sum("new_destination_count").alias("_sum"),
        F.max("new_destination_count").alias("max_new_destinations"),
        F.array_sort(F.collect_list("new_destination_count")).alias("_sorted"),
    )
    joined = observed.join(active, "host_id", "left").fillna(
        {"active_windows": 0, "_sum": 0, "max_new_destinations": 0}
    )
    total = F.greatest(F.col("windows_observed"), F.col("active_windows"))
    zeros = total - F.col("active_windows")
    rank = F.ceil(F.lit(quantile) * total) - zeros
    value = F.when(rank <= 0, F.lit(0)).otherwise(F.element_at(F.col("_sorted"), rank.cast("int")))
    return joined.select(
        "host_id",
        total.cast("long").alias("windows_observed"),
        F.col("active_windows").cast("long"),
        F.when(total > 0, F.col("_sum") / total).otherwise(F.lit(0.0)).alias("mean_new_destinations"),
        F.col("max_new_destinations").cast("long"),
        F.coalesce(value, F.lit(0)).cast("double").alias("host_quantile"),
    )


def fleet_distribution(stats: DataFrame, windows: DataFrame) -> FleetDistribution:
    """Histogram of new-destination counts over every host-window; its size is the number of distinct counts."""
    rows = windows.groupBy("new_destination_count").count().collect()
    counts = {int(row["new_destination_count"]): int(row["count"]) for row in rows}
    totals = stats.agg(F.sum("windows_observed").alias("observed"), F.sum("active_windows").alias("active")).first()
    observed = int(totals["observed"] or 0) if totals else 0
    active = int(totals["active"] or 0) if totals else 0
    counts[0] = counts.get(0, 0) + max(observed - active, 0)
    return FleetDistribution(counts)


def thresholds(
    stats: DataFrame,
    fleet: FleetDistribution,
    detector: DetectorConfig,
    training_start: datetime,
    training_end: datetime,
) -> DataFrame:
    """Build one threshold row per host plus a fleet row (`host_id` '*') for hosts without history.

    The threshold a window must exceed is the largest of the host quantile,
    the fleet quantile and `min_new_destinations - 1`.
    """
    floor = max(fleet.quantile(detector.fleet_quantile), float(detector.min_new_destinations - 1))
    tail = fleet.quantile(1.0 - detector.highly_rare_fraction)
    per_host = stats.select(
        "host_id",
        F.lit("host").alias("baseline_source"),
        "windows_observed",
        "active_windows",
        "mean_new_destinations",
        "max_new_destinations",
        "host_quantile",
        F.lit(floor).alias("fleet_floor"),
        F.greatest(F.col("host_quantile"), F.lit(floor)).alias("threshold"),
        F.lit(tail).alias("fleet_tail_threshold"),
        (F.col("max_new_destinations") >= detector.fanout_min_destinations).alias("showed_fanout"),
    )
    fleet_row = stats.sparkSession.createDataFrame(
        [
            (
                FLEET_HOST_ID,
                "fleet",
                fleet.total,
                fleet.total - fleet.counts.get(0, 0),
                fleet.mean,
                max(fleet.counts, default=0),
                floor,
                floor,
                floor,
                tail,
                False,
            )
        ],
        "host_id string, baseline_source string, windows_observed long, active_windows long, "
        "mean_new_destinations double, max_new_destinations long, host_quantile double, "
        "fleet_floor double, threshold double, fleet_tail_threshold double, showed_fanout boolean",
    )
    return (
        per_host.unionByName(fleet_row)
        .withColumn("training_start", F.lit(training_start).cast("timestamp"))
        .withColumn("training_end", F.lit(training_end).cast("timestamp"))
    )


def training_period(training_end: datetime, training_days: int) -> tuple[datetime, datetime]:
    return training_end - timedelta(days=training_days), training_end


def process_rarity(hourly: DataFrame) -> DataFrame:
    """Share of SMB-active hosts that used each actor process name (lower case) for SMB.

    Needs training-period hourly contacts with `host_id` and `actor_processes`.
    """
    used = hourly.select("host_id", F.explode("actor_processes").alias("p")).select(
        "host_id", F.lower(F.coalesce(F.col("p.name"), F.lit(""))).alias("process_name")
    )
    active_hosts = hourly.select("host_id").distinct().count()
    return (
        used.distinct()
        .groupBy("process_name")
        .agg(F.count(F.lit(1)).alias("hosts"))
        .withColumn("host_fraction", F.col("hosts") / F.lit(max(active_hosts, 1)))
    )
