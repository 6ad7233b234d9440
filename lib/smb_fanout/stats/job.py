"""The stats job: network events to hourly SMB contacts, the destination profile and host windows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import Config
from smb_fanout.stats.contacts import (
    host_addresses,
    hourly_contacts,
    resolve_destinations,
    smb_contacts,
)
from smb_fanout.stats.novelty import add_novelty, host_windows, profile_updates, seen_before
from smb_fanout.tables import Tables, merge

logger = logging.getLogger(__name__)

STATE_KEY = "stats"


@dataclass(frozen=True)
class StatsState:
    """Progress of the stats job: every hour before `processed_through` is aggregated."""

    processed_through: datetime
    fleet_first_seen: datetime
    last_batch_start: datetime | None = None


@dataclass(frozen=True)
class StatsResult:
    batch_start: datetime | None
    batch_end: datetime | None
    hourly_rows: int
    windows: int
    fleet_first_seen: datetime | None


def read_state(spark: SparkSession, config: Config) -> StatsState | None:
    rows = Tables(config).smb_stats_state.read(spark).where(F.col("state_key") == STATE_KEY).collect()
    if not rows:
        return None
    return StatsState(rows[0]["processed_through"], rows[0]["fleet_first_seen"])


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def plan_batch(
    events: DataFrame, state: StatsState | None, until: datetime | None
) -> tuple[datetime, datetime, datetime] | None:
    """Return (batch start, batch end, fleet first seen), or None when there is nothing new."""
    bounds = events.agg(F.min("event_time").alias("first"), F.max("event_time").alias("last")).first()
    if bounds is None or bounds["first"] is None:
        return None
    end = until or _hour_floor(bounds["last"]) + timedelta(hours=1)
    if state is None:
        start = _hour_floor(bounds["first"])
        fleet_first = bounds["first"]
    else:
        start = state.processed_through
        fleet_first = min(state.fleet_first_seen, bounds["first"])
    if end <= start:
        return None
    return start, end, fleet_first


def run_stats(spark: SparkSession, config: Config, until: datetime | None = None) -> StatsResult:
    """Aggregate every complete hour not yet processed, up to `until` (default: the last event's hour).

    NOTE: events older than the stored progress are not aggregated again;
    rescoring late events is not implemented yet.
    """
    tables = Tables(config)
    detector = config.detector
    state = read_state(spark, config)
    events = tables.network_events.read(spark)
    plan = plan_batch(events, state, until)
    if plan is None:
        logger.info("stats: no new events after %s", state.processed_through if state else None)
        return StatsResult(None, None, 0, 0, state.fleet_first_seen if state else None)
    start, end, fleet_first = plan
    batch_events = events.where((F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(end)))

    merge(host_addresses(batch_events), tables.host_addresses)
    addresses = tables.host_addresses.read(spark).where(F.col("day").between(F.lit(start.date()), F.lit(end.date())))
    resolved = resolve_destinations(smb_contacts(batch_events, detector), addresses)
    history = seen_before(tables.smb_profile.read(spark), start)
    hourly = add_novelty(hourly_contacts(resolved), history, detector.training_days).persist()
    try:
        hourly_metrics = merge(hourly, tables.smb_contacts_hourly)
        merge(profile_updates(hourly, history, start), tables.smb_profile)
        context_start = start - timedelta(hours=detector.window_hours)
        context = tables.smb_contacts_hourly.read(spark).where(
            (F.col("hour") >= F.lit(context_start)) & (F.col("hour") < F.lit(start))
        )
        first_end = start + timedelta(hours=1)
        windows = host_windows(
            context.unionByName(hourly, allowMissingColumns=True),
            detector.window_hours,
            first_end,
            end,
        )
        window_metrics = merge(windows, tables.smb_host_windows)
    finally:
        hourly.unpersist()
    _write_state(spark, config, end, fleet_first)
    rows = hourly_metrics.get("numTargetRowsInserted", 0) + hourly_metrics.get("numTargetRowsUpdated", 0)
    window_rows = window_metrics.get("numTargetRowsInserted", 0) + window_metrics.get("numTargetRowsUpdated", 0)
    logger.info(
        "stats: hours %s to %s, %s hourly contact rows, %s host windows",
        start,
        end,
        rows,
        window_rows,
    )
    return StatsResult(start, end, rows, window_rows, fleet_first)


def _write_state(spark: SparkSession, config: Config, processed_through: datetime, fleet_first: datetime) -> None:
    frame = spark.createDataFrame(
        [(STATE_KEY, processed_through, fleet_first)],
        "state_key string, processed_through timestamp, fleet_first_seen timestamp",
    ).withColumn("updated_at", F.current_timestamp())
    merge(frame, Tables(config).smb_stats_state)
