"""The maintain job: OPTIMIZE (liquid clustering on host and time) and VACUUM of every table.

Hourly MERGEs leave many small files. Run this job apart from the writers,
for example daily: its commits only rewrite files, and a conflict with a
concurrent writer is retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession

from smb_fanout.config import Config
from smb_fanout.health import recorded_run
from smb_fanout.tables import TABLE_SCHEMAS, TableRef, Tables, ensure_table, with_conflict_retry

logger = logging.getLogger(__name__)

# Delta rejects a shorter VACUUM retention unless this check is disabled.
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
DEFAULT_MIN_RETENTION_HOURS = 168


@dataclass(frozen=True)
class TableMaintenance:
    table: str
    files_before: int
    files_after: int


def run_maintain(spark: SparkSession, config: Config, vacuum: bool = True) -> list[TableMaintenance]:
    """Compact and cluster every existing table, then remove unreferenced files older than the retention."""
    results: list[TableMaintenance] = []
    retention = config.operations.vacuum_retention_hours
    with recorded_run(spark, config, "maintain") as record:
        for key in TABLE_SCHEMAS:
            ref = Tables(config).ref(key)
            if not ref.exists(spark):
                continue
            results.append(_maintain_table(spark, ref, retention if vacuum else None))
        record.rows_written = sum(result.files_after for result in results)
    return results


def _maintain_table(spark: SparkSession, ref: TableRef, retention_hours: int | None) -> TableMaintenance:
    ensure_table(spark, ref)
    before = _file_count(spark, ref)
    with_conflict_retry(lambda: spark.sql(f"OPTIMIZE {ref.sql_name}").collect(), f"OPTIMIZE {ref.sql_name}")
    if retention_hours is not None:
        _vacuum(spark, ref, retention_hours)
    after = _file_count(spark, ref)
    logger.info("maintained %s: %s data files before, %s after", ref.sql_name, before, after)
    return TableMaintenance(ref.sql_name, before, after)


def _vacuum(spark: SparkSession, ref: TableRef, retention_hours: int) -> None:
    statement = f"VACUUM {ref.sql_name} RETAIN {int(retention_hours)} HOURS"
    if retention_hours >= DEFAULT_MIN_RETENTION_HOURS:
        spark.sql(statement).collect()
        return
    # A retention below Delta's default can delete files that a reader or a
    # writer still in progress needs, so it is allowed for this statement only.
    logger.warning("VACUUM %s with %s hours of retention, below Delta's 168", ref.sql_name, retention_hours)
    previous = spark.conf.get(RETENTION_CHECK, "true")
    spark.conf.set(RETENTION_CHECK, "false")
    try:
        spark.sql(statement).collect()
    finally:
        spark.conf.set(RETENTION_CHECK, previous or "true")


def _file_count(spark: SparkSession, ref: TableRef) -> int:
    row = ref.delta(spark).detail().select("numFiles").first()
    return int(row["numFiles"]) if row is not None else 0
