"""The one write path for Delta tables: create, read, append and MERGE."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

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
    "smb_detections": schemas.SMB_DETECTIONS,
    "smb_alerts": schemas.SMB_ALERTS,
}

# Keys that identify one row; every MERGE source is reduced to one row per key.
TABLE_KEYS = {
    "network_events": ("event_id",),
    "host_addresses": ("host_id", "ip", "day"),
    "smb_contacts_hourly": ("host_id", "destination_id", "hour"),
    "smb_profile": ("host_id", "destination_id"),
    "smb_host_windows": ("host_id", "window_end"),
    "smb_stats_state": ("state_key",),
    "smb_thresholds": ("model_run_id", "host_id"),
    "smb_process_rarity": ("model_run_id", "process_name"),
    "smb_detections": ("host_id", "window_end"),
    "smb_alerts": ("alert_id",),
}


class DuplicateKeyError(RuntimeError):
    """Raised when a MERGE source has more than one row for a key."""


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
    """Create the table with its declared schema when it does not exist yet."""
    if ref.exists(spark):
        return
    schema = schemas.struct_type(TABLE_SCHEMAS[ref.key])
    builder = DeltaTable.createIfNotExists(spark).addColumns(schema)
    builder = builder.location(str(ref.path)) if ref.path is not None else builder.tableName(ref.name)
    builder.execute()
    logger.info("created table %s", ref.sql_name)


def conform(df: DataFrame, ref: TableRef) -> DataFrame:
    """Select the table's columns in declared order, cast to the declared types."""
    schema = schemas.struct_type(TABLE_SCHEMAS[ref.key])
    return df.select([F.col(field.name).cast(field.dataType).alias(field.name) for field in schema])


def append(df: DataFrame, ref: TableRef) -> None:
    ensure_table(df.sparkSession, ref)
    writer = conform(df, ref).write.format("delta").mode("append")
    if ref.path is not None:
        writer.save(str(ref.path))
    else:
        writer.saveAsTable(ref.name)


def assert_unique_keys(df: DataFrame, keys: tuple[str, ...], what: str) -> None:
    """Fail when `df` has two rows for one key; only the offending keys reach the driver."""
    duplicates = df.groupBy(*keys).count().where(F.col("count") > 1).limit(5).collect()
    if duplicates:
        sample = ", ".join(str(tuple(row[k] for k in keys)) for row in duplicates)
        raise DuplicateKeyError(f"{what} has more than one row for key {keys}: {sample}")


def merge(
    df: DataFrame,
    ref: TableRef,
    *,
    update_condition: str | Column | None = None,
    insert_only: bool = False,
    preserve: tuple[str, ...] = (),
) -> dict[str, int]:
    """Upsert `df` into `ref` on the table's key and return Delta's operation metrics.

    Columns named in `preserve` keep their stored value when a row is updated.

    The source must already have one row per key, and this is checked before
    the write. Delta would otherwise reject the MERGE or, for a new key,
    insert both rows.
    """
    spark = df.sparkSession
    ensure_table(spark, ref)
    keys = TABLE_KEYS[ref.key]
    # Cached so that the key check and Delta's passes over the source compute it once.
    source = conform(df, ref).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        assert_unique_keys(source, keys, f"MERGE source for {ref.sql_name}")
        condition = " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in keys)
        builder = ref.delta(spark).alias("t").merge(source.alias("s"), condition)
        if not insert_only:
            updated: dict[str, str | Column] = {name: f"s.`{name}`" for name in source.columns if name not in preserve}
            builder = builder.whenMatchedUpdate(condition=update_condition, set=updated)
        builder.whenNotMatchedInsertAll().execute()
    finally:
        source.unpersist()
    metrics = last_operation_metrics(spark, ref)
    logger.info(
        "merged into %s: %s inserted, %s updated",
        ref.sql_name,
        metrics.get("numTargetRowsInserted", 0),
        metrics.get("numTargetRowsUpdated", 0),
    )
    return metrics


def last_operation_metrics(spark: SparkSession, ref: TableRef) -> dict[str, int]:
    history = ref.delta(spark).history(1).select("operationMetrics").collect()
    if not history or history[0]["operationMetrics"] is None:
        return {}
    return {name: int(value) for name, value in history[0]["operationMetrics"].items()}
