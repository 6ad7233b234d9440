"""The one write path for Delta tables: create, read, append and MERGE."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from smb_fanout import schemas
from smb_fanout.config import Config
from smb_fanout.identifiers import qualified_name, validate_identifier

logger = logging.getLogger(__name__)

TABLE_SCHEMAS = {
    "network_events": schemas.NETWORK_EVENTS,
    "quarantined_events": schemas.QUARANTINED_EVENTS,
    "ingest_runs": schemas.INGEST_RUNS,
    "host_addresses": schemas.HOST_ADDRESSES,
    "smb_contacts_hourly": schemas.SMB_CONTACTS_HOURLY,
    "smb_profile": schemas.SMB_PROFILE,
    "smb_host_windows": schemas.SMB_HOST_WINDOWS,
    "smb_stats_state": schemas.SMB_STATS_STATE,
    "smb_thresholds": schemas.SMB_THRESHOLDS,
    "smb_process_rarity": schemas.SMB_PROCESS_RARITY,
    "smb_destination_popularity": schemas.SMB_DESTINATION_POPULARITY,
    "host_roles": schemas.HOST_ROLES,
    "smb_detections": schemas.SMB_DETECTIONS,
    "smb_alerts": schemas.SMB_ALERTS,
    "smb_score_state": schemas.SMB_SCORE_STATE,
    "detector_runs": schemas.DETECTOR_RUNS,
}

# Keys that identify one row; every MERGE source is reduced to one row per key.
TABLE_KEYS = {
    "network_events": ("event_date", "event_id"),
    "quarantined_events": ("source_file", "source_row"),
    "host_addresses": ("host_id", "ip", "day"),
    "smb_contacts_hourly": ("host_id", "destination_id", "hour"),
    "smb_profile": ("host_id", "destination_id"),
    "smb_host_windows": ("host_id", "window_end"),
    "smb_stats_state": ("state_key",),
    "smb_thresholds": ("model_run_id", "host_id"),
    "smb_process_rarity": ("model_run_id", "process_name"),
    "smb_destination_popularity": ("model_run_id", "destination_id"),
    "host_roles": ("host_id",),
    "smb_detections": ("host_id", "window_end"),
    "smb_alerts": ("alert_id",),
    "smb_score_state": ("state_key",),
    "detector_runs": ("run_id",),
}

# The key column that places a row in time. A MERGE limits the target rows it
# reads to the source's range of this column, so Delta skips the files of
# other days instead of reading the whole history for every hourly batch.
TIME_KEYS = {
    "network_events": "event_date",
    "host_addresses": "day",
    "smb_contacts_hourly": "hour",
    "smb_host_windows": "window_end",
    "smb_detections": "window_end",
}

# Delta commit conflicts: another writer changed the table between this
# transaction's read and its commit. Retrying re-reads the table.
WRITE_CONFLICTS = (
    DeltaConcurrentModificationException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    ConcurrentTransactionException,
)
WRITE_ATTEMPTS = 6
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 8.0

T = TypeVar("T")


class DuplicateKeyError(RuntimeError):
    """Raised when a MERGE source, or a table after a MERGE, has more than one row for a key."""


class WriteConflictError(RuntimeError):
    """Raised when a write still conflicts with other writers after every retry."""


@dataclass(frozen=True)
class TableRef:
    """A Delta table addressed by path (local) or by catalog name (Databricks)."""

    key: str
    name: str
    path: Path | None

    @property
    def sql_name(self) -> str:
        if self.path is not None:
            return f"delta.`{self.path}`"
        return self.name

    def exists(self, spark: SparkSession) -> bool:
        if self.path is not None:
            return DeltaTable.isDeltaTable(spark, str(self.path))
        return bool(spark.catalog.tableExists(self.name))

    def delta(self, spark: SparkSession) -> DeltaTable:
        if self.path is not None:
            return DeltaTable.forPath(spark, str(self.path))
        return DeltaTable.forName(spark, self.name)

    def read_version(self, spark: SparkSession, version: int) -> DataFrame:
        """Read the table as of a Delta version, so commits by other writers during a run do not change its input."""
        ensure_table(spark, self)
        if self.path is None:
            return spark.sql(f"SELECT * FROM {self.name} VERSION AS OF {int(version)}")
        return spark.read.format("delta").option("versionAsOf", version).load(str(self.path))

    def read(self, spark: SparkSession) -> DataFrame:
        """Read the table, creating it empty first when it does not exist."""
        ensure_table(spark, self)
        if self.path is not None:
            return spark.read.format("delta").load(str(self.path))
        return spark.read.table(self.name)


class Tables:
    """Resolves the table names of a configuration to `TableRef`s."""

    def __init__(self, config: Config) -> None:
        self._config = config

    def __getattr__(self, key: str) -> TableRef:
        if key not in TABLE_SCHEMAS:
            raise AttributeError(key)
        return self.ref(key)

    def ref(self, key: str) -> TableRef:
        storage = self._config.storage
        table = validate_identifier(getattr(storage.tables, key))
        if storage.use_paths:
            folder = self._config.local_root / "tables" / storage.schema_name / table
            return TableRef(key=key, name=table, path=folder)
        name = qualified_name(storage.catalog, storage.schema_name, table)
        return TableRef(key=key, name=name, path=None)


def ensure_table(spark: SparkSession, ref: TableRef) -> None:
    """Create the table at the current schema version, or upgrade it once per process.

    Raises:
        SchemaAheadError: the table was written by a newer smb-fanout.
    """
    from smb_fanout import migrations

    if not ref.exists(spark):
        with_conflict_retry(lambda: migrations.create(spark, ref), f"create {ref.sql_name}")
        return
    migrations.upgrade_once(spark, ref)


def with_conflict_retry(action: Callable[[], T], what: str) -> T:
    """Run `action`, retrying Delta commit conflicts with bounded exponential backoff and jitter.

    Raises:
        WriteConflictError: the action still conflicted after `WRITE_ATTEMPTS` attempts.
    """
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return action()
        except WRITE_CONFLICTS as err:
            summary = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if attempt == WRITE_ATTEMPTS:
                raise WriteConflictError(
                    f"{what} still conflicted with another writer after {attempt} attempts ({summary}); "
                    "check that only one run of each job is active, then rerun the job"
                ) from err
            delay = min(RETRY_BASE_SECONDS * 2 ** (attempt - 1), RETRY_MAX_SECONDS) * random.uniform(0.5, 1.0)
            logger.warning(
                "write conflict on %s, attempt %s of %s; retrying in %.1f s: %s",
                what,
                attempt,
                WRITE_ATTEMPTS,
                delay,
                summary,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def conform(df: DataFrame, ref: TableRef) -> DataFrame:
    """Select the table's columns in declared order, cast to the declared types."""
    schema = schemas.struct_type(TABLE_SCHEMAS[ref.key])
    return df.select([F.col(field.name).cast(field.dataType).alias(field.name) for field in schema])


def materialize(df: DataFrame) -> DataFrame:
    """Compute `df` once and return it with its lineage cut.

    Queries on the result start from the computed rows, not from the plan that
    built them. A cached frame keeps its plan, and a query that joins it
    several times repeats that plan in each branch: the alert rows of a score
    run had a plan of 21 million characters, and Spark spent its time planning.
    """
    return df.localCheckpoint(eager=True)


def append(df: DataFrame, ref: TableRef) -> None:
    ensure_table(df.sparkSession, ref)
    writer = conform(df, ref).write.format("delta").mode("append")
    if ref.path is not None:
        with_conflict_retry(lambda: writer.save(str(ref.path)), f"append to {ref.sql_name}")
    else:
        with_conflict_retry(lambda: writer.saveAsTable(ref.name), f"append to {ref.sql_name}")


def assert_unique_keys(df: DataFrame, keys: tuple[str, ...], what: str, time_key: str | None = None) -> str | None:
    """Raise `DuplicateKeyError` when `df` has two rows for one key.

    One aggregate returns the number of repeated keys and one example, so
    nothing that grows with `df` reaches the driver. With `time_key` (a DATE
    or TIMESTAMP column), the same aggregate gives the column's range,
    returned as a SQL condition on `t.<time_key>`, or None for an empty frame.
    """
    counted = df.groupBy(*keys).count()
    repeated = F.col("count") > 1
    aggregates = [
        F.count(F.when(repeated, F.lit(1))).alias("keys"),
        F.min(F.when(repeated, F.struct(*keys))).alias("example"),
    ]
    # Days or microseconds since 1970: a bound read back as a local date-time
    # would shift by an hour around a daylight saving change.
    is_date = dict(df.dtypes).get(time_key or "") == "date"
    epoch, literal = (F.unix_date, "date_from_unix_date") if is_date else (F.unix_micros, "timestamp_micros")
    if time_key is not None:
        aggregates += [epoch(F.min(time_key)).alias("low"), epoch(F.max(time_key)).alias("high")]
    summary = counted.agg(*aggregates).first()
    if summary is not None and summary["keys"]:
        example = tuple(summary["example"][key] for key in keys)
        raise DuplicateKeyError(
            f"{what} has more than one row for key {keys}, for example {example} ({summary['keys']} repeated in all)"
        )
    if time_key is None or summary is None or summary["low"] is None:
        return None
    column = f"t.`{time_key}`"
    return f"{column} >= {literal}({int(summary['low'])}) AND {column} <= {literal}({int(summary['high'])})"


def changed_condition(ref: TableRef, ignore: tuple[str, ...] = ()) -> str:
    """SQL condition that holds when a source row differs from its target row in any non-key column."""
    keys = TABLE_KEYS[ref.key]
    compared = [f.name for f in schemas.struct_type(TABLE_SCHEMAS[ref.key]) if f.name not in keys + ignore]
    return "NOT (" + " AND ".join(f"t.`{name}` <=> s.`{name}`" for name in compared) + ")"


@dataclass(frozen=True)
class MergeCounts:
    """Rows a MERGE inserted and updated, as Delta reports them for that commit."""

    inserted: int
    updated: int


def merge(
    df: DataFrame,
    ref: TableRef,
    *,
    update_condition: str | Column | None = None,
    insert_only: bool = False,
    preserve: tuple[str, ...] = (),
    combine: dict[str, str] | None = None,
) -> MergeCounts:
    """Upsert `df` into `ref` on the table's key and return the rows inserted and updated.

    Columns named in `preserve` keep their stored value when a row is updated.
    `combine` maps a column to the SQL expression (over `t` and `s`) that
    gives its updated value. Commit conflicts are retried.

    The source must already have one row per key, and this is checked before
    the write. Delta would otherwise reject the MERGE or, for a new key,
    insert both rows. After the write, the keys written are checked again in
    the table, and a key stored twice fails the run.
    """
    spark = df.sparkSession
    ensure_table(spark, ref)
    keys = TABLE_KEYS[ref.key]
    # Computed once for the key checks and Delta's passes over the source.
    source = materialize(conform(df, ref))
    time_range = assert_unique_keys(source, keys, f"MERGE source for {ref.sql_name}", TIME_KEYS.get(ref.key))
    condition = " AND ".join([f"t.`{key}` <=> s.`{key}`" for key in keys] + ([time_range] if time_range else []))

    def execute() -> MergeCounts:
        builder = ref.delta(spark).alias("t").merge(source.alias("s"), condition)
        if not insert_only:
            updated: dict[str, str | Column] = {
                name: (combine or {}).get(name, f"s.`{name}`") for name in source.columns if name not in preserve
            }
            builder = builder.whenMatchedUpdate(condition=update_condition, set=updated)
        # Delta returns the counts as one local row, so no Spark job reads the history.
        result = builder.whenNotMatchedInsertAll().execute().first()
        if result is None:
            return MergeCounts(inserted=0, updated=0)
        return MergeCounts(inserted=int(result["num_inserted_rows"]), updated=int(result["num_updated_rows"]))

    counts = with_conflict_retry(execute, f"MERGE into {ref.sql_name}")
    stored = ref.read(spark).alias("t")
    if time_range:
        stored = stored.where(time_range)
    written = stored.join(source.select(*keys).distinct(), list(keys), "left_semi")
    assert_unique_keys(written, keys, f"{ref.sql_name} after MERGE")
    logger.info("merged into %s: %s inserted, %s updated", ref.sql_name, counts.inserted, counts.updated)
    return counts


def current_version(spark: SparkSession, ref: TableRef) -> int:
    """Return the table's latest Delta version."""
    ensure_table(spark, ref)
    row = ref.delta(spark).history(1).select("version").first()
    assert row is not None
    return int(row["version"])


def read_changes(spark: SparkSession, ref: TableRef, after_version: int, through_version: int) -> DataFrame:
    """Rows inserted or updated in versions (`after_version`, `through_version`], from the change data feed.

    A key changed in several versions appears once, with its latest change.
    """
    ensure_table(spark, ref)
    reader = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", after_version + 1)
        .option("endingVersion", through_version)
    )
    changes = reader.load(str(ref.path)) if ref.path is not None else reader.table(ref.name)
    keys = TABLE_KEYS[ref.key]
    latest = Window.partitionBy(*keys).orderBy(F.col("_commit_version").desc())
    return (
        changes.where(F.col("_change_type").isin("insert", "update_postimage"))
        .withColumn("_latest", F.row_number().over(latest))
        .where(F.col("_latest") == 1)
        .drop("_latest", "_change_type", "_commit_version", "_commit_timestamp")
    )
