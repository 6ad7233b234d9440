"""The stats job: network events to hourly SMB contacts, the destination profile and host windows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smb_fanout import checkpoints
from smb_fanout.config import Config
from smb_fanout.health import recorded_run
from smb_fanout.stats.contacts import (
    host_addresses,
    hourly_contacts,
    resolve_destinations,
    smb_contacts,
)
from smb_fanout.stats.novelty import add_novelty, host_windows, profile_updates, seen_before
from smb_fanout.tables import Tables, changed_condition, current_version, materialize, merge, read_changes

logger = logging.getLogger(__name__)

STATE_KEY = "stats"


@dataclass(frozen=True)
class StatsState:
    """Progress of the stats job: every hour before `processed_through` is aggregated.

    `events_version` is the `network_events` version the last batch read;
    None for a state written before versions were recorded.
    """

    processed_through: datetime
    fleet_first_seen: datetime
    events_version: int | None = None


@dataclass(frozen=True)
class StatsResult:
    batch_start: datetime | None
    batch_end: datetime | None
    hourly_rows: int
    windows: int
    fleet_first_seen: datetime | None
    rows_read: int = 0
    rows_late: int = 0
    rows_too_late: int = 0


@dataclass(frozen=True)
class Batch:
    """Hours [start, end) to aggregate, and what the new events were."""

    start: datetime
    end: datetime
    fleet_first_seen: datetime
    events_version: int
    rows_read: int
    rows_late: int
    rows_too_late: int


def read_state(spark: SparkSession, config: Config) -> StatsState | None:
    rows = Tables(config).smb_stats_state.read(spark).where(F.col("state_key") == STATE_KEY).collect()
    if not rows:
        return None
    return StatsState(rows[0]["processed_through"], rows[0]["fleet_first_seen"], rows[0]["events_version"])


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def plan_batch(spark: SparkSession, config: Config, state: StatsState | None, until: datetime | None) -> Batch | None:
    """Decide the hours to aggregate from the events added since the last batch.

    Events at or after the progress are new hours. Events before it arrived
    late: within `operations.allowed_lateness_hours` their hour and every
    later one are aggregated again; older ones are only counted. Returns None
    when there is nothing to do.
    """
    tables = Tables(config)
    version = current_version(spark, tables.network_events)
    events = tables.network_events.read_version(spark, version)
    if state is None:
        bounds = events.agg(
            F.min("event_time").alias("first"), F.max("event_time").alias("last"), F.count(F.lit(1)).alias("rows")
        ).first()
        if bounds is None or bounds["first"] is None:
            return None
        end = until or _hour_floor(bounds["last"]) + timedelta(hours=1)
        return Batch(_hour_floor(bounds["first"]), end, bounds["first"], version, int(bounds["rows"]), 0, 0)

    progress = state.processed_through
    if state.events_version is not None and version == state.events_version:
        changes = None
    elif state.events_version is not None:
        changes = read_changes(spark, tables.network_events, state.events_version, version)
    else:
        changes = events.where(F.col("event_time") >= F.lit(progress))
    horizon = _hour_floor(progress - timedelta(hours=config.operations.allowed_lateness_hours))
    late = (F.col("event_time") < F.lit(progress)) & (F.col("event_time") >= F.lit(horizon))
    counts = None
    if changes is not None:
        counts = changes.agg(
            F.count(F.lit(1)).alias("rows"),
            F.count(F.when(late, 1)).alias("late"),
            F.count(F.when(F.col("event_time") < F.lit(horizon), 1)).alias("too_late"),
            F.min(F.when(late, F.col("event_time"))).alias("earliest_late"),
        ).first()
    pending = events.where(F.col("event_time") >= F.lit(progress)).agg(F.max("event_time").alias("last")).first()
    start = progress
    if counts is not None and counts["earliest_late"] is not None:
        start = _hour_floor(counts["earliest_late"])
    last = pending["last"] if pending is not None else None
    end = until or (_hour_floor(last) + timedelta(hours=1) if last is not None else progress)
    end = max(end, progress) if until is None else end
    rows = int(counts["rows"]) if counts is not None else 0
    if (rows == 0 and end <= progress) or (until is not None and until <= start):
        return None
    return Batch(
        start,
        end,
        min(state.fleet_first_seen, start),
        version,
        rows,
        int(counts["late"]) if counts is not None else 0,
        int(counts["too_late"]) if counts is not None else 0,
    )


def run_stats(spark: SparkSession, config: Config, until: datetime | None = None) -> StatsResult:
    """Aggregate the hours with new or late events, up to `until` (default: the last event's hour).

    Each run reads only the events added to `network_events` since the
    version the last run recorded (through the Delta change data feed), plus
    events at or after the progress that an earlier `until` left out.
    """
    with recorded_run(spark, config, "stats") as record:
        state = read_state(spark, config)
        batch = plan_batch(spark, config, state, until)
        if batch is None:
            logger.info("stats: no new events after %s", state.processed_through if state else None)
            record.rows_read = 0
            if config.operations.degrade_on_empty_input:
                progress = state.processed_through if state else None
                record.degrade(f"no new events since the last run (progress {progress})")
            return StatsResult(None, None, 0, 0, state.fleet_first_seen if state else None)
        record.rows_read, record.rows_late, record.rows_too_late = batch.rows_read, batch.rows_late, batch.rows_too_late
        if batch.rows_too_late:
            record.degrade(
                f"{batch.rows_too_late} events arrived more than {config.operations.allowed_lateness_hours} hours "
                "late and were not aggregated"
            )
        if batch.rows_read == 0 and config.operations.degrade_on_empty_input:
            record.degrade("no new events since the last run")
        keep_from = batch.start
        if state is not None:
            keep_from = _hour_floor(state.processed_through - timedelta(hours=config.operations.allowed_lateness_hours))
        hourly_rows, window_rows = 0, 0
        if batch.start < batch.end:
            hourly_rows, window_rows = _aggregate(spark, config, batch, min(keep_from, batch.start))
        _write_state(spark, config, batch)
        record.rows_written = hourly_rows + window_rows
    logger.info(
        "stats: hours %s to %s, %s hourly contact rows, %s host windows, %s events read, %s late, %s too late",
        batch.start,
        batch.end,
        hourly_rows,
        window_rows,
        batch.rows_read,
        batch.rows_late,
        batch.rows_too_late,
    )
    return StatsResult(
        batch.start,
        batch.end,
        hourly_rows,
        window_rows,
        batch.fleet_first_seen,
        batch.rows_read,
        batch.rows_late,
        batch.rows_too_late,
    )


def _aggregate(spark: SparkSession, config: Config, batch: Batch, keep_from: datetime) -> tuple[int, int]:
    """Write hourly contacts, profile and windows of the batch's hours; return rows written to each."""
    tables = Tables(config)
    detector = config.detector
    start, end = batch.start, batch.end
    events = tables.network_events.read_version(spark, batch.events_version)
    batch_events = events.where((F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(end)))

    merge(
        host_addresses(batch_events),
        tables.host_addresses,
        combine={
            "first_seen": "least(t.first_seen, s.first_seen)",
            "last_seen": "greatest(t.last_seen, s.last_seen)",
            "host_name": "coalesce(s.host_name, t.host_name)",
        },
    )
    addresses = tables.host_addresses.read(spark).where(F.col("day").between(F.lit(start.date()), F.lit(end.date())))
    resolved = resolve_destinations(smb_contacts(batch_events, detector), addresses)
    history = materialize(seen_before(tables.smb_profile.read(spark), start))
    hourly = materialize(add_novelty(hourly_contacts(resolved), history, detector.training_days))
    hourly_counts = merge(
        hourly, tables.smb_contacts_hourly, update_condition=changed_condition(tables.smb_contacts_hourly)
    )
    checkpoints.reached("stats.hourly_merged")
    merge(profile_updates(hourly, history, start, keep_from), tables.smb_profile)
    checkpoints.reached("stats.profile_merged")
    context_start = start - timedelta(hours=detector.window_hours)
    context = tables.smb_contacts_hourly.read(spark).where(
        (F.col("hour") >= F.lit(context_start)) & (F.col("hour") < F.lit(start))
    )
    windows = host_windows(
        context.unionByName(hourly, allowMissingColumns=True),
        detector.window_hours,
        start + timedelta(hours=1),
        end,
    )
    window_counts = merge(windows, tables.smb_host_windows, update_condition=changed_condition(tables.smb_host_windows))
    checkpoints.reached("stats.windows_merged")
    rows = hourly_counts.inserted + hourly_counts.updated
    window_rows = window_counts.inserted + window_counts.updated
    return rows, window_rows


def _write_state(spark: SparkSession, config: Config, batch: Batch) -> None:
    frame = spark.createDataFrame(
        [(STATE_KEY, batch.end, batch.fleet_first_seen, batch.events_version)],
        "state_key string, processed_through timestamp, fleet_first_seen timestamp, events_version long",
    ).withColumn("updated_at", F.current_timestamp())
    merge(frame, Tables(config).smb_stats_state)
