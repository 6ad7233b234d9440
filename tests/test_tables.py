"""Schema versions and migrations, duplicate keys, two writers on one table, and file counts after maintain."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smb_fanout import schemas
from smb_fanout.config import Config
from smb_fanout.maintain import run_maintain
from smb_fanout.migrations import VERSION_PROPERTY, SchemaAheadError, stored_version
from smb_fanout.tables import TABLE_SCHEMAS, DuplicateKeyError, Tables, append, merge

T0 = datetime(2026, 11, 2, 10, 0)
STATE_V1 = (
    "state_key STRING NOT NULL, processed_through TIMESTAMP NOT NULL, fleet_first_seen TIMESTAMP NOT NULL, "
    "updated_at TIMESTAMP NOT NULL"
)
PROFILE_V1 = (
    "host_id STRING NOT NULL, destination_id STRING NOT NULL, first_seen TIMESTAMP NOT NULL, "
    "last_seen TIMESTAMP NOT NULL, seen_before_batch TIMESTAMP, batch_start TIMESTAMP NOT NULL"
)

INGEST_RUNS_V1 = (
    "ingest_run_id STRING NOT NULL, source_file STRING NOT NULL, source_format STRING NOT NULL, "
    "rows_read BIGINT NOT NULL, rows_written BIGINT NOT NULL, rows_quarantined BIGINT NOT NULL, "
    "duplicates_removed BIGINT NOT NULL, started_at TIMESTAMP NOT NULL"
)


def create_v1(spark: SparkSession, path: str, ddl: str, rows: list[tuple]) -> None:
    """Write a table the way smb-fanout did before schema versions: no version property."""
    DeltaTable.create(spark).addColumns(schemas.struct_type(ddl)).location(path).execute()
    spark.createDataFrame(rows, schemas.struct_type(ddl)).write.format("delta").mode("append").save(path)


def test_current_ddl_ends_with_migrated_columns(spark: SparkSession) -> None:
    for key, steps in schemas.MIGRATIONS.items():
        from smb_fanout.tables import TABLE_SCHEMAS

        names = [field.name for field in schemas.struct_type(TABLE_SCHEMAS[key])]
        added = [field.name for step in steps if step.columns for field in schemas.struct_type(step.columns)]
        assert names[len(names) - len(added) :] == added, key


def test_old_table_upgraded_in_place(spark: SparkSession, config: Config) -> None:
    ref = Tables(config).smb_stats_state
    create_v1(spark, str(ref.path), STATE_V1, [("stats", T0, T0, T0)])
    rows = ref.read(spark).collect()
    assert [row.asDict() for row in rows] == [
        {
            "state_key": "stats",
            "processed_through": T0,
            "fleet_first_seen": T0,
            "updated_at": T0,
            "events_version": None,
        }
    ]
    assert stored_version(spark, ref) == schemas.schema_version("smb_stats_state") == 2


def test_ingest_runs_gain_reason_columns(spark: SparkSession, config: Config) -> None:
    ref = Tables(config).ingest_runs
    create_v1(spark, str(ref.path), INGEST_RUNS_V1, [("run-1", "a.jsonl", "canonical", 3, 2, 1, 0, T0)])
    rows = [row.asDict() for row in ref.read(spark).collect()]
    assert rows == [
        {
            "ingest_run_id": "run-1",
            "source_file": "a.jsonl",
            "source_format": "canonical",
            "rows_read": 3,
            "rows_written": 2,
            "rows_quarantined": 1,
            "duplicates_removed": 0,
            "started_at": T0,
            "quarantine_reasons": None,
            "error": None,
        }
    ]
    assert stored_version(spark, ref) == schemas.schema_version("ingest_runs") == 2


def test_profile_migration_backfills(spark: SparkSession, config: Config) -> None:
    ref = Tables(config).smb_profile
    earlier = datetime(2026, 11, 1, 3, 0)
    create_v1(spark, str(ref.path), PROFILE_V1, [("a", "b", earlier, T0, earlier, T0)])
    row = ref.read(spark).first()
    assert row is not None
    assert row["recent_hours"] == [T0]
    assert row["settled_last_seen"] == earlier
    clustering = ref.delta(spark).detail().select("clusteringColumns").first()
    assert clustering is not None
    assert clustering["clusteringColumns"] == ["host_id"]


def test_network_events_upgrade_enables_change_feed(spark: SparkSession, config: Config) -> None:
    ref = Tables(config).network_events
    ddl = schemas.NETWORK_EVENTS
    DeltaTable.create(spark).addColumns(schemas.struct_type(ddl)).location(str(ref.path)).execute()
    ref.read(spark)
    properties = ref.delta(spark).detail().select("properties").first()
    assert properties is not None
    assert properties["properties"]["delta.enableChangeDataFeed"] == "true"
    assert properties["properties"][VERSION_PROPERTY] == "2"


def test_process_hash_added_to_stored_arrays(spark: SparkSession, config: Config) -> None:
    ref = Tables(config).smb_host_windows
    old_process = "STRUCT<name: STRING, path: STRING, count: BIGINT>"
    ddl = schemas.SMB_HOST_WINDOWS.replace(schemas.PROCESS_COUNT, old_process)
    DeltaTable.create(spark).addColumns(schemas.struct_type(ddl)).location(str(ref.path)).property(
        VERSION_PROPERTY, "2"
    ).execute()
    row = ("h1", None, T0, T0 + timedelta(hours=5), 1, 0, [], 1, 0, 0.0, 0, 0, [("psexec.exe", None, 3)], [], [])
    spark.createDataFrame([row], schemas.struct_type(ddl)).write.format("delta").mode("append").save(str(ref.path))

    stored = ref.read(spark).first()

    assert stored is not None
    assert [p.asDict() for p in stored["actor_processes"]] == [
        {"name": "psexec.exe", "path": None, "count": 3, "sha256": None}
    ]
    assert stored_version(spark, ref) == schemas.schema_version("smb_host_windows") == 3
    assert ref.read(spark).schema == schemas.struct_type(schemas.SMB_HOST_WINDOWS)


def test_table_ahead_of_code_fails(spark: SparkSession, config: Config) -> None:
    ref = Tables(config).smb_alerts
    DeltaTable.create(spark).addColumns(schemas.struct_type(schemas.SMB_ALERTS)).location(str(ref.path)).property(
        VERSION_PROPERTY, "9"
    ).execute()
    with pytest.raises(
        SchemaAheadError, match=r"smb_alerts` has schema version 9, but this smb-fanout writes version 4"
    ):
        ref.read(spark)


def test_merge_rejects_duplicate_source_keys(spark: SparkSession, config: Config) -> None:
    ref = Tables(config).smb_score_state
    frame = spark.createDataFrame(
        [("score", 1, T0, T0), ("score", 2, T0, T0)],
        "state_key string, windows_version long, scored_through timestamp, updated_at timestamp",
    )
    with pytest.raises(DuplicateKeyError, match="MERGE source for"):
        merge(frame, ref)
    assert ref.read(spark).collect() == []


def test_merge_fails_on_stored_duplicate(spark: SparkSession, config: Config) -> None:
    # A row appended twice outside MERGE makes the key ambiguous; the next MERGE must not pass silently.
    ref = Tables(config).smb_score_state
    row = spark.createDataFrame(
        [("score", 1, T0, T0)], "state_key string, windows_version long, scored_through timestamp, updated_at timestamp"
    )
    append(row, ref)
    append(row, ref)
    with pytest.raises(
        DuplicateKeyError,
        match=r"after MERGE has more than one row for key \(.state_key.,\), for example \(.score.,\) \(1 repeated",
    ):
        merge(row.withColumn("windows_version", F.lit(2)), ref)


def _window_row(host_id: str, window_end: datetime) -> dict[str, object]:
    return {
        "host_id": host_id,
        "window_start": window_end - timedelta(hours=5),
        "window_end": window_end,
        **dict.fromkeys(("distinct_destinations", "new_destination_count", "attempts", "failures"), 1),
        **dict.fromkeys(("new_attempts", "new_failures"), 0),
        "failure_ratio": 0.0,
    }


@pytest.mark.parametrize("key", ["host_addresses", "smb_host_windows"])
def test_merge_reads_only_the_source_time_range(spark: SparkSession, config: Config, key: str) -> None:
    # The files of an earlier day are deleted behind Delta's back. A MERGE of
    # a later day that read the whole table would fail on them.
    ref = getattr(Tables(config), key)
    schema = schemas.struct_type(TABLE_SCHEMAS[key])

    def day_rows(day: int) -> list[object]:
        when = T0 + timedelta(days=day)
        if key == "host_addresses":
            return [(f"h{i}", None, f"10.0.0.{i}", when.date(), when, when) for i in range(3)]
        return [_window_row(f"h{i}", when) for i in range(3)]

    merge(spark.createDataFrame(day_rows(0), schema), ref)
    first_day_files = set(ref.read(spark).inputFiles())
    merge(spark.createDataFrame(day_rows(1), schema), ref)
    for uri in first_day_files:
        Path(uri.removeprefix("file:")).unlink()

    counts = merge(spark.createDataFrame(day_rows(1) + day_rows(2), schema), ref)

    assert counts.inserted == 3
    assert counts.updated == 3


def test_two_writers_retry_conflicts(spark: SparkSession, config: Config, caplog: pytest.LogCaptureFixture) -> None:
    ref = Tables(config).smb_score_state
    ddl = "state_key string, windows_version long, scored_through timestamp, updated_at timestamp"
    merge(spark.createDataFrame([("merged", 0, T0, T0)], ddl), ref)
    errors: list[BaseException] = []

    # Four appends, each committed while a MERGE is between its read and its
    # commit, conflict with it; the retries outlast them.
    def keep_appending() -> None:
        try:
            for number in range(4):
                append(spark.createDataFrame([(f"appended-{number}", number, T0, T0)], ddl), ref)
        except BaseException as err:
            errors.append(err)

    writer = threading.Thread(target=keep_appending)
    caplog.set_level(logging.WARNING, logger="smb_fanout.tables")
    writer.start()
    try:
        for version in range(1, 4):
            merge(spark.createDataFrame([("merged", version, T0, T0)], ddl), ref)
    finally:
        writer.join()
    assert errors == []
    merged = ref.read(spark).where(F.col("state_key") == "merged").collect()
    appended = ref.read(spark).where(F.col("state_key").startswith("appended-")).count()
    assert [row["windows_version"] for row in merged] == [3]
    assert appended == 4
    assert any("write conflict on MERGE into" in message for message in caplog.messages)


def test_maintain_bounds_files_after_many_writes(spark: SparkSession, config: Config) -> None:
    # 36 MERGEs, as 36 hourly stats runs write to this table, leave one or more files each.
    ref = Tables(config).smb_contacts_hourly
    for hour in range(36):
        moment = T0 + timedelta(hours=hour)
        rows = spark.range(3).select(
            F.concat(F.lit("w"), F.col("id").cast("string")).alias("host_id"),
            F.lit(None).alias("host_name"),
            F.lit("ip:10.0.0.100").alias("destination_id"),
            F.lit("10.0.0.100").alias("destination_ip"),
            F.lit(True).alias("destination_resolved"),
            F.lit(moment).alias("hour"),
            F.lit(moment.date()).alias("day"),
            F.lit(1).alias("attempts"),
            F.lit(0).alias("failures"),
            F.lit(moment).alias("first_time"),
            F.lit(moment).alias("last_time"),
            F.lit(None).alias("actor_processes"),
            F.lit(None).alias("causality_processes"),
            F.lit(None).alias("command_lines"),
            F.lit(None).alias("previous_seen"),
            F.lit(hour == 0).alias("is_new"),
        )
        merge(rows, ref)

    before = sorted(tuple(row) for row in ref.read(spark).collect())
    operations = config.operations.model_copy(update={"vacuum_retention_hours": 0})
    [result] = run_maintain(spark, config.model_copy(update={"operations": operations}), tables=["smb_contacts_hourly"])
    assert result.files_before >= 36
    assert result.files_after <= 2
    assert ref.path is not None
    # Every file the log removed is deleted. Each MERGE also leaves one empty
    # file that its commit never added. VACUUM LITE only deletes files that the
    # log names, so those empty files wait for the weekly full VACUUM.
    remaining = [str(path) for path in ref.path.glob("*.parquet")]
    assert spark.read.parquet(*remaining).count() == len(before)
    assert sorted(tuple(row) for row in ref.read(spark).collect()) == before
    assert len(before) == 108
