"""The maintain job: OPTIMIZE (liquid clustering on host and time) and VACUUM of every table.

Hourly MERGEs leave many small files. Run this job apart from the writers,
for example daily: its commits only rewrite files, and a conflict with a
concurrent writer is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import SparkSession

from smb_fanout import checkpoints
from smb_fanout.config import Config
from smb_fanout.health import recorded_run
from smb_fanout.tables import TABLE_SCHEMAS, TableRef, Tables, ensure_table, with_conflict_retry

logger = logging.getLogger(__name__)

# Delta rejects a shorter VACUUM retention unless this check is disabled.
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
DEFAULT_MIN_RETENTION_HOURS = 168
# Error class of a lite VACUUM when the Delta log no longer has every removed file.
LITE_REJECTED = "DELTA_CANNOT_VACUUM_LITE"


class UnknownTableError(ValueError):
    """Raised when maintain is asked for a table smb-fanout does not have."""


@dataclass(frozen=True)
class TableMaintenance:
    table: str
    files_before: int
    files_after: int


def run_maintain(
    spark: SparkSession, config: Config, vacuum: bool = True, tables: Sequence[str] | None = None
) -> list[TableMaintenance]:
    """Compact and cluster the existing tables, then remove unreferenced files older than the retention.

    `tables` names the tables to maintain (keys of `TABLE_SCHEMAS`); all of them by default.

    Raises:
        UnknownTableError: a name in `tables` is not a table of smb-fanout.
    """
    keys = list(TABLE_SCHEMAS) if tables is None else list(tables)
    unknown = sorted(set(keys) - set(TABLE_SCHEMAS))
    if unknown:
        raise UnknownTableError(f"unknown table {', '.join(unknown)}: use one of {', '.join(TABLE_SCHEMAS)}")
    results: list[TableMaintenance] = []
    operations = config.operations
    with recorded_run(spark, config, "maintain") as record:
        for key in keys:
            ref = Tables(config).ref(key)
            if not ref.exists(spark):
                continue
            vacuum_with = (operations.vacuum_retention_hours, operations.vacuum_mode) if vacuum else None
            results.append(_maintain_table(spark, ref, vacuum_with))
        record.rows_written = sum(result.files_after for result in results)
    return results


def _maintain_table(spark: SparkSession, ref: TableRef, vacuum_with: tuple[int, str] | None) -> TableMaintenance:
    ensure_table(spark, ref)
    before = _file_count(spark, ref)
    with_conflict_retry(lambda: spark.sql(f"OPTIMIZE {ref.sql_name}").collect(), f"OPTIMIZE {ref.sql_name}")
    checkpoints.reached("maintain.optimized")
    if vacuum_with is not None:
        _vacuum(spark, ref, *vacuum_with)
        checkpoints.reached("maintain.vacuumed")
    after = _file_count(spark, ref)
    logger.info("maintained %s: %s data files before, %s after", ref.sql_name, before, after)
    return TableMaintenance(ref.sql_name, before, after)


def _vacuum(spark: SparkSession, ref: TableRef, retention_hours: int, mode: str) -> None:
    if mode == "lite":
        try:
            _run_vacuum(spark, ref, retention_hours, "LITE")
            return
        except Exception as err:  # Delta raises a plain AnalysisException
            if LITE_REJECTED not in str(err):
                raise
            logger.warning("VACUUM LITE failed for %s, so a full VACUUM runs instead: %s", ref.sql_name, err)
    _run_vacuum(spark, ref, retention_hours, "FULL")


def _run_vacuum(spark: SparkSession, ref: TableRef, retention_hours: int, mode: str) -> None:
    statement = f"VACUUM {ref.sql_name} {mode} RETAIN {int(retention_hours)} HOURS"
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
