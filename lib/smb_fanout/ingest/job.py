"""The ingest job: raw files to `network_events`, with quarantine and reconciled counts."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from smb_fanout import checkpoints
from smb_fanout.config import Config
from smb_fanout.health import recorded_run
from smb_fanout.ingest import adapters
from smb_fanout.ingest.normalize import normalize_events
from smb_fanout.ingest.reader import (
    PARQUET_SUFFIXES,
    InputFileError,
    UnreadableFile,
    annotate_files,
    check_files,
    expand_paths,
    read_parquet_rows,
    read_text_lines,
)
from smb_fanout.tables import Tables, append, materialize, merge

logger = logging.getLogger(__name__)

WRITTEN = "written"
QUARANTINED = "quarantined"
DUPLICATE = "duplicate"


class UnknownFormatError(ValueError):
    """Raised for an input format name that has no adapter."""


@dataclass
class FileCounts:
    """Rows of one input file by outcome; `rows_read` is always the sum of the other three."""

    source_file: str
    source_format: str
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    duplicates_removed: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class IngestResult:
    ingest_run_id: str
    files: list[FileCounts] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    unreadable_files: list[UnreadableFile] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_written(self) -> int:
        return sum(f.rows_written for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    @property
    def duplicates_removed(self) -> int:
        return sum(f.duplicates_removed for f in self.files)


def parse_files(spark: SparkSession, files: list[str], input_format: str) -> DataFrame:
    """Read and adapt `files`; returns typed canonical rows with `reason` and `source_format`."""
    if input_format not in adapters.FORMATS:
        raise UnknownFormatError(f"unknown input format {input_format!r}: use one of {', '.join(adapters.FORMATS)}")
    parquet = [f for f in files if f.endswith(PARQUET_SUFFIXES)]
    text = [f for f in files if not f.endswith(PARQUET_SUFFIXES)]
    frames: list[DataFrame] = []
    if text:
        lines = adapters.parse_fields(annotate_files(read_text_lines(spark, text)))
        frames.append(adapters.adapt(lines, input_format))
    if parquet:
        frames.append(adapters.canonical_columns(read_parquet_rows(spark, parquet)))
    adapted_rows = frames[0]
    for frame in frames[1:]:
        adapted_rows = adapted_rows.unionByName(frame)
    return normalize_events(adapted_rows)


def classify_rows(parsed: DataFrame, existing_events: DataFrame) -> DataFrame:
    """Add `status`: quarantined (has a reason), duplicate (event id seen before or earlier in this batch) or written.

    The first row of an event id in (source priority, file, row) order is
    kept, so reruns keep the same row. A Zeek `conn.log` row has priority
    over the SMB-layer rows of the same connection.
    """
    first_of_id = Window.partitionBy("event_id").orderBy("source_priority", "source_file", "source_row")
    valid = parsed.where(F.col("reason").isNull())
    known = existing_events.select("event_date", "event_id").withColumn("_known", F.lit(True))
    ranked = (
        valid.withColumn("_rank", F.row_number().over(first_of_id))
        .join(known, ["event_date", "event_id"], "left")
        .withColumn(
            "status",
            F.when((F.col("_rank") > 1) | F.col("_known").isNotNull(), F.lit(DUPLICATE)).otherwise(F.lit(WRITTEN)),
        )
        .drop("_rank", "_known")
    )
    quarantined = parsed.where(F.col("reason").isNotNull()).withColumn("status", F.lit(QUARANTINED))
    return ranked.unionByName(quarantined)


def stored_on_batch_days(events: DataFrame, batch: DataFrame) -> DataFrame:
    """Select the stored `(event_date, event_id)` pairs on the days of the batch's valid rows.

    Duplicates share the event date, so only those days are read, and Delta
    skips the files of the rest of the history.
    """
    days = batch.where(F.col("reason").isNull()).agg(
        F.min("event_date").alias("low"), F.max("event_date").alias("high")
    )
    bounds = days.first()
    stored = events.select("event_date", "event_id")
    if bounds is None or bounds["low"] is None:
        return stored.limit(0)
    return stored.where(F.col("event_date").between(F.lit(bounds["low"]), F.lit(bounds["high"])))


def run_ingest(
    spark: SparkSession,
    config: Config,
    paths: list[str],
    input_format: str | None = None,
    transform: Callable[[DataFrame], DataFrame] | None = None,
) -> IngestResult:
    """Ingest `paths` into `network_events`; unusable rows go to `quarantined_events`.

    `transform`, when given, changes the parsed rows before duplicates are
    found. The replay uses it to move captures in time. It must keep the
    columns and the number of rows.
    """
    tables = Tables(config)
    run_id = str(uuid.uuid4())
    fmt = input_format or config.ingest.default_format
    if fmt not in adapters.FORMATS:
        raise UnknownFormatError(f"unknown input format {fmt!r}: use one of {', '.join(adapters.FORMATS)}")
    # Listed before the run record is written: an input folder may hold the tables.
    files, unreadable = check_files(expand_paths(paths))
    with recorded_run(spark, config, "ingest") as record:
        if not files:
            raise InputFileError(
                "no readable input: " + "; ".join(item.message() for item in unreadable)
                if unreadable
                else "no input files"
            )
        parsed = parse_files(spark, files, fmt)
        if transform is not None:
            parsed = transform(parsed)
        # The batch is parsed once, because the day range and the classification both read it.
        parsed = materialize(parsed)
        classified = classify_rows(parsed, stored_on_batch_days(tables.network_events.read(spark), parsed))
        # Computed here, so the statuses are decided before any row is written
        # and the written rows cannot be re-read as duplicates of themselves.
        classified = materialize(classified.withColumn("ingested_at", F.current_timestamp()))
        result = _count(classified, run_id)
        result.unreadable_files = unreadable
        # Insert-only MERGE on the event id: another ingest of the same file
        # running at the same time conflicts, retries and then inserts nothing.
        counts = merge(classified.where(F.col("status") == WRITTEN), tables.network_events, insert_only=True)
        _reconcile(result, counts.inserted)
        checkpoints.reached("ingest.events_merged")
        quarantine = classified.where(F.col("status") == QUARANTINED).select(
            "source_file",
            "source_row",
            "source_format",
            "reason",
            F.substring(F.col("raw"), 1, config.ingest.max_raw_chars).alias("raw"),
            F.lit(run_id).alias("ingest_run_id"),
            F.col("ingested_at").alias("quarantined_at"),
        )
        if result.rows_quarantined:
            # A file named twice in one run gives identical rows for a line; one is kept.
            unique = quarantine.dropDuplicates(["source_file", "source_row"])
            merge(unique, tables.quarantined_events, insert_only=True)
        checkpoints.reached("ingest.quarantine_merged")
        _record_run(spark, config, result)
        record.rows_read = result.rows_read
        record.rows_written = result.rows_written
        record.rows_quarantined = result.rows_quarantined
    logger.info(
        "ingested %s rows from %s files: %s written, %s quarantined, %s duplicates",
        result.rows_read,
        len(result.files),
        result.rows_written,
        result.rows_quarantined,
        result.duplicates_removed,
    )
    return result


def _reconcile(result: IngestResult, inserted: int) -> None:
    """Count rows that a concurrent ingest wrote first as duplicates, so read = written + quarantined + duplicates."""
    surplus = result.rows_written - inserted
    for counts in result.files:
        if surplus <= 0:
            break
        moved = min(surplus, counts.rows_written)
        counts.rows_written -= moved
        counts.duplicates_removed += moved
        surplus -= moved


def _count(classified: DataFrame, run_id: str) -> IngestResult:
    """Count rows per file and status; the result has one row per file, not per event."""
    per_file = (
        classified.groupBy("source_file")
        .agg(
            F.concat_ws(",", F.array_sort(F.collect_set("source_format"))).alias("source_format"),
            F.count(F.lit(1)).alias("rows_read"),
            F.sum(F.when(F.col("status") == WRITTEN, 1).otherwise(0)).alias("rows_written"),
            F.sum(F.when(F.col("status") == QUARANTINED, 1).otherwise(0)).alias("rows_quarantined"),
            F.sum(F.when(F.col("status") == DUPLICATE, 1).otherwise(0)).alias("duplicates_removed"),
        )
        .orderBy("source_file")
        .collect()
    )
    # One row per file and reason code. The detail after `:` (an event id or
    # a log name) is kept, because the formats bound the number of codes.
    reasons = (
        classified.where(F.col("status") == QUARANTINED)
        .groupBy("source_file", "reason")
        .count()
        .orderBy("source_file", "reason")
        .limit(10_000)
        .collect()
    )
    result = IngestResult(ingest_run_id=run_id)
    result.files = [FileCounts(**row.asDict()) for row in per_file]
    by_file = {counts.source_file: counts for counts in result.files}
    for row in reasons:
        by_file[row["source_file"]].quarantine_reasons[row["reason"]] = int(row["count"])
        code = row["reason"].split(":", 1)[0]
        result.quarantine_reasons[code] = result.quarantine_reasons.get(code, 0) + int(row["count"])
    return result


def _record_run(spark: SparkSession, config: Config, result: IngestResult) -> None:
    rows: list[tuple[str, str, str, int, int, int, int, dict[str, int], str | None]] = [
        (
            result.ingest_run_id,
            f.source_file,
            f.source_format,
            f.rows_read,
            f.rows_written,
            f.rows_quarantined,
            f.duplicates_removed,
            f.quarantine_reasons,
            None,
        )
        for f in result.files
    ]
    rows.extend(
        (result.ingest_run_id, item.source_file, "unreadable", 0, 0, 0, 0, {}, item.error)
        for item in result.unreadable_files
    )
    if not rows:
        return
    frame = spark.createDataFrame(
        rows,
        "ingest_run_id string, source_file string, source_format string, rows_read long, "
        "rows_written long, rows_quarantined long, duplicates_removed long, "
        "quarantine_reasons map<string, long>, error string",
    ).withColumn("started_at", F.current_timestamp())
    append(frame, Tables(config).ingest_runs)
