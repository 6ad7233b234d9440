"""Thresholds: the rarity model applied per host, per peer group and to the fleet."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smb_fanout.config import DetectorConfig
from smb_fanout.fit.peers import FLEET_GROUP
from smb_fanout.fit.rarity import group_priors, nb_quantile, posterior

FLEET_HOST_ID = "*"
PEER_PREFIX = "*peer:"


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


def destination_popularity(hourly: DataFrame) -> DataFrame:
    """Hosts that reached each destination, and their share of the SMB-active hosts.

    Needs training-period `smb_contacts_hourly` rows.
    """
    pairs = hourly.select("host_id", "destination_id").distinct()
    hosts = pairs.groupBy("destination_id").agg(F.count(F.lit(1)).alias("hosts"))
    active = pairs.agg(F.countDistinct("host_id").alias("_active"))
    return hosts.crossJoin(active).select(
        "destination_id",
        F.col("hosts").cast("long"),
        (F.col("hosts") / F.greatest(F.col("_active"), F.lit(1))).alias("host_fraction"),
    )


def split_common(windows: DataFrame, common: DataFrame) -> DataFrame:
    """Drop common destinations from each window's `new_destinations` and recount.

    `common` contains the `destination_id`s that a large share of the fleet
    reaches (file servers, domain controllers): reaching one for the first
    time is not fan-out. Adds `common_destination_count` and replaces
    `new_destination_count` with the rest.
    """
    # One array on every row: at most 1 / common_destination_fraction times
    # the destinations of an average host can be common, whatever the fleet size.
    ids = common.select(F.collect_set("destination_id").alias("_common"))
    joined = windows.crossJoin(F.broadcast(ids))
    kept = F.filter("new_destinations", lambda d: ~F.array_contains(F.col("_common"), d["destination_id"]))
    return (
        joined.withColumn("_kept", kept)
        .withColumn("common_destination_count", (F.size("new_destinations") - F.size("_kept")).cast("long"))
        .withColumn("new_destinations", F.col("_kept"))
        .withColumn("new_destination_count", F.size("_kept").cast("long"))
        .drop("_kept", "_common")
    )


def host_statistics(windows: DataFrame, observed: DataFrame, quantile: float) -> DataFrame:
    """Per-host counts, sums, quantile and maximum of new destinations per window, quiet windows as 0.

    Needs training windows (`host_id`, `new_destination_count`) and
    `observed_windows`. Only windows with SMB activity are stored, so the
    empirical quantile is taken over the active counts shifted by the number
    of zeros; it is kept for reference next to the model's threshold.
    """
    count = F.col("new_destination_count")
    active = windows.groupBy("host_id").agg(
        F.count(F.lit(1)).alias("active_windows"),
        F.sum(count).alias("new_sum"),
        F.sum(count * count).alias("new_sum_squares"),
        F.max(count).alias("max_new_destinations"),
        F.array_sort(F.collect_list(count)).alias("_sorted"),
    )
    joined = observed.join(active, "host_id", "left").fillna(
        {"active_windows": 0, "new_sum": 0, "new_sum_squares": 0, "max_new_destinations": 0}
    )
    total = F.greatest(F.col("windows_observed"), F.col("active_windows"))
    zeros = total - F.col("active_windows")
    rank = F.ceil(F.lit(quantile) * total) - zeros
    value = F.when(rank <= 0, F.lit(0)).otherwise(F.element_at(F.col("_sorted"), rank.cast("int")))
    return joined.select(
        "host_id",
        total.cast("long").alias("windows_observed"),
        F.col("active_windows").cast("long"),
        F.col("new_sum").cast("double"),
        F.col("new_sum_squares").cast("double"),
        F.when(total > 0, F.col("new_sum") / total).otherwise(F.lit(0.0)).alias("mean_new_destinations"),
        F.col("max_new_destinations").cast("long"),
        F.coalesce(value, F.lit(0)).cast("double").alias("empirical_quantile"),
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


def priors(stats: DataFrame, detector: DetectorConfig, min_hosts: int) -> DataFrame:
    """Build one prior row per peer group with at least `min_hosts` hosts, plus the fleet's.

    Needs per host `peer_group` and the sums of `host_statistics`. Columns:
    `peer_group`, `prior_source` (`peer` or `fleet`), `prior_hosts`,
    `prior_shape`, `prior_rate`, `nb_size_pooled`.
    """
    fraction = detector.slide_hours / detector.window_hours
    groups = group_priors(stats.where(F.col("peer_group") != FLEET_GROUP), fraction).where(
        F.col("prior_hosts") >= min_hosts
    )
    fleet = group_priors(stats.withColumn("peer_group", F.lit(FLEET_GROUP)), fraction)
    return groups.withColumn("prior_source", F.lit("peer")).unionByName(
        fleet.withColumn("prior_source", F.lit("fleet"))
    )


def _decision_columns(mean: Column, size: Column, detector: DetectorConfig) -> list[Column]:
    model = nb_quantile(mean, size, detector.p_abnormal)
    floor = float(detector.min_new_destinations - 1)
    return [
        model.alias("host_quantile"),
        F.lit(floor).alias("fleet_floor"),
        F.greatest(model, F.lit(floor)).alias("threshold"),
        mean.alias("predictive_mean"),
        size.alias("predictive_size"),
    ]


def thresholds(
    stats: DataFrame,
    prior_rows: DataFrame,
    fleet: FleetDistribution,
    detector: DetectorConfig,
    training_start: datetime,
    training_end: datetime,
) -> DataFrame:
    """Build one threshold row per host, one per peer group (`*peer:<group>`) and the fleet row (`*`).

    A window is abnormal when its count exceeds `threshold`: the count that a
    host's predictive distribution exceeds with probability at most
    `p_abnormal`, and never below `min_new_destinations - 1`. A host in a
    group too small for a prior of its own uses the fleet's prior.
    """
    tail = fleet.quantile(1.0 - detector.p_highly_rare)
    fraction = detector.slide_hours / detector.window_hours
    fleet_prior = prior_rows.where(F.col("prior_source") == "fleet").drop("peer_group")
    group_prior = prior_rows.where(F.col("prior_source") == "peer")
    with_group = stats.join(F.broadcast(group_prior), "peer_group", "left")
    with_prior = with_group.crossJoin(
        F.broadcast(fleet_prior.select(*[F.col(c).alias(f"_fleet_{c}") for c in fleet_prior.columns]))
    )
    for name in ("prior_source", "prior_hosts", "prior_shape", "prior_rate", "nb_size_pooled"):
        with_prior = with_prior.withColumn(name, F.coalesce(F.col(name), F.col(f"_fleet_{name}")))
    mean, size = posterior(
        F.col("windows_observed").cast("double"),
        F.col("new_sum"),
        F.col("prior_shape"),
        F.col("prior_rate"),
        F.col("nb_size_pooled"),
        fraction,
    )
    per_host = with_prior.select(
        "host_id",
        F.lit("host").alias("baseline_source"),
        "windows_observed",
        "active_windows",
        "mean_new_destinations",
        "max_new_destinations",
        *_decision_columns(mean, size, detector),
        (F.col("max_new_destinations") >= detector.fanout_min_destinations).alias("showed_fanout"),
        "peer_group",
        "peer_rule",
        "prior_source",
        "prior_hosts",
        (F.col("prior_shape") / F.col("prior_rate")).alias("prior_mean"),
    )
    prior_mean, prior_size = posterior(
        F.lit(0.0), F.lit(0.0), F.col("prior_shape"), F.col("prior_rate"), F.col("nb_size_pooled"), fraction
    )
    per_prior = prior_rows.select(
        F.when(F.col("prior_source") == "fleet", F.lit(FLEET_HOST_ID))
        .otherwise(F.concat(F.lit(PEER_PREFIX), F.col("peer_group")))
        .alias("host_id"),
        F.col("prior_source").alias("baseline_source"),
        F.lit(0).cast("long").alias("windows_observed"),
        F.lit(0).cast("long").alias("active_windows"),
        prior_mean.alias("mean_new_destinations"),
        F.lit(0).cast("long").alias("max_new_destinations"),
        *_decision_columns(prior_mean, prior_size, detector),
        F.lit(False).alias("showed_fanout"),
        "peer_group",
        F.when(F.col("prior_source") == "fleet", F.lit(FLEET_GROUP)).otherwise(F.lit("group")).alias("peer_rule"),
        "prior_source",
        "prior_hosts",
        prior_mean.alias("prior_mean"),
    )
    return (
        per_host.unionByName(per_prior)
        .withColumn("fleet_tail_threshold", F.lit(tail))
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
