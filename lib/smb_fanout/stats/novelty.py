"""Novelty against the per-host destination profile, and windowed per-host statistics."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from smb_fanout.stats.contacts import merge_processes


def seen_before(profile: DataFrame, batch_start: datetime) -> DataFrame:
    """Last contact of each (host, destination) strictly before `batch_start`.

    Reads `recent_hours` and `settled_last_seen`, so a batch that starts
    earlier than the last one (a rerun, or late events) reads the profile as it
    was before its own hours. Returns `host_id`, `destination_id`,
    `first_seen`, `profile_last_seen`, and `recent_before` and
    `settled_last_seen` for `profile_updates`.
    """
    start = F.lit(batch_start).cast("timestamp")
    recent = F.coalesce(F.col("recent_hours"), F.array().cast("array<timestamp>"))
    recent_before = F.filter(recent, lambda hour: hour < start)
    settled = F.when(F.col("settled_last_seen") < start, F.col("settled_last_seen"))
    return profile.select(
        "host_id",
        "destination_id",
        "first_seen",
        F.coalesce(F.array_max(recent_before), settled).alias("profile_last_seen"),
        recent_before.alias("recent_before"),
        settled.alias("settled_last_seen"),
    )


def add_novelty(hourly: DataFrame, history: DataFrame, training_days: int) -> DataFrame:
    """Add `previous_seen` and `is_new` to a batch of hourly contacts.

    `previous_seen` is the previous contact hour of the same pair inside the
    batch, else the profile's last contact before the batch. A contact is new
    when there is no previous contact within `training_days` before its hour.
    Needs `host_id`, `destination_id`, `hour`; `history` comes from `seen_before`.
    """
    pair = Window.partitionBy("host_id", "destination_id").orderBy("hour")
    last_seen = history.select("host_id", "destination_id", "profile_last_seen")
    with_history = hourly.join(last_seen, ["host_id", "destination_id"], "left")
    previous = F.coalesce(F.lag("hour").over(pair), F.col("profile_last_seen"))
    horizon = F.col("hour") - F.make_dt_interval(days=F.lit(training_days))
    return (
        with_history.withColumn("previous_seen", previous)
        .withColumn("is_new", F.col("previous_seen").isNull() | (F.col("previous_seen") < horizon))
        .drop("profile_last_seen")
    )


def profile_updates(hourly: DataFrame, history: DataFrame, batch_start: datetime, keep_from: datetime) -> DataFrame:
    """Profile rows after a batch: first and last contact, and the hours a later batch may recompute.

    Needs the batch's hourly contacts and `seen_before(profile, batch_start)`;
    returns one row per (host, destination) touched by the batch. Contact
    hours from `keep_from` on stay in `recent_hours`; the last one before it
    becomes `settled_last_seen`. No later batch may start before `keep_from`.
    """
    batch = hourly.groupBy("host_id", "destination_id").agg(
        F.min("hour").alias("_batch_first"), F.array_sort(F.collect_set("hour")).alias("_batch_hours")
    )
    joined = batch.join(history, ["host_id", "destination_id"], "left")
    keep = F.lit(keep_from).cast("timestamp")
    hours = F.array_sort(
        F.array_union(F.coalesce(F.col("recent_before"), F.array().cast("array<timestamp>")), F.col("_batch_hours"))
    )
    settled = F.greatest(F.col("settled_last_seen"), F.array_max(F.filter(hours, lambda hour: hour < keep)))
    return joined.select(
        "host_id",
        "destination_id",
        F.least(F.col("_batch_first"), F.coalesce(F.col("first_seen"), F.col("_batch_first"))).alias("first_seen"),
        F.greatest(F.array_max(hours), F.col("settled_last_seen")).alias("last_seen"),
        F.col("profile_last_seen").alias("seen_before_batch"),
        F.lit(batch_start).cast("timestamp").alias("batch_start"),
        F.filter(hours, lambda hour: hour >= keep).alias("recent_hours"),
        settled.alias("settled_last_seen"),
    )


def _window_ends(window_hours: int) -> Column:
    """List every window end whose window [end - window_hours, end) contains the row's hour."""
    return F.sequence(
        F.col("hour") + F.expr("INTERVAL 1 HOUR"),
        F.col("hour") + F.make_dt_interval(hours=F.lit(window_hours)),
        F.expr("INTERVAL 1 HOUR"),
    )


def host_windows(hourly: DataFrame, window_hours: int, first_end: datetime, last_end: datetime) -> DataFrame:
    """Per-host statistics of every window [end - window_hours, end) with `first_end <= end <= last_end`.

    Needs hourly contacts with novelty (`is_new`). A destination is new in a
    window when its first contact there is new for the host. Returns one row
    per (`host_id`, `window_end`) in the `smb_host_windows` layout.
    """
    exploded = hourly.withColumn("window_end", F.explode(_window_ends(window_hours))).where(
        F.col("window_end").between(F.lit(first_end).cast("timestamp"), F.lit(last_end).cast("timestamp"))
    )
    per_destination = exploded.groupBy("host_id", "window_end", "destination_id").agg(
        F.max("host_name").alias("host_name"),
        F.min("destination_ip").alias("destination_ip"),
        F.max("destination_resolved").alias("resolved"),
        F.min("first_time").alias("first_time"),
        F.sum("attempts").alias("attempts"),
        F.sum("failures").alias("failures"),
        F.max("is_new").alias("is_new"),
    )
    new_destination = F.struct(
        "destination_id",
        "destination_ip",
        "resolved",
        "first_time",
        "attempts",
        "failures",
    )
    totals = per_destination.groupBy("host_id", "window_end").agg(
        F.max("host_name").alias("host_name"),
        F.count(F.lit(1)).alias("distinct_destinations"),
        F.sum(F.col("is_new").cast("long")).alias("new_destination_count"),
        F.array_sort(F.collect_list(F.when(F.col("is_new"), new_destination))).alias("new_destinations"),
        F.sum("attempts").alias("attempts"),
        F.sum("failures").alias("failures"),
        F.sum(F.when(F.col("is_new"), F.col("attempts")).otherwise(0)).alias("new_attempts"),
        F.sum(F.when(F.col("is_new"), F.col("failures")).otherwise(0)).alias("new_failures"),
    )
    processes = merge_processes(exploded, ["host_id", "window_end"])
    return (
        totals.join(processes, ["host_id", "window_end"], "left")
        .withColumn("window_start", F.col("window_end") - F.make_dt_interval(hours=F.lit(window_hours)))
        .withColumn("failure_ratio", F.col("failures") / F.col("attempts"))
    )
