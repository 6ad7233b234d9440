"""Read raw input files as numbered lines, keeping the file and line of every row."""

from __future__ import annotations

import glob
import logging
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".log", ".txt", ".json.gz", ".jsonl.gz")
PARQUET_SUFFIXES = (".parquet",)


class InputFileError(ValueError):
    """Raised when an input path cannot be read at all."""


def expand_paths(paths: list[str]) -> list[str]:
    """Expand local folders and globs to files; leave remote URIs (`dbfs:/`, `s3://`) to Spark.

    Raises:
        InputFileError: a local path matches no file.
    """
    files: list[str] = []
    for path in paths:
        if "://" in path or path.startswith("dbfs:"):
            files.append(path)
            continue
        matches = sorted(glob.glob(path)) if any(ch in path for ch in "*?[") else [path]
        found = False
        for match in matches:
            candidate = Path(match)
            if candidate.is_dir():
                children = sorted(
                    str(child)
                    for child in candidate.rglob("*")
                    if child.is_file() and child.name.endswith(TEXT_SUFFIXES + PARQUET_SUFFIXES)
                )
                files.extend(children)
                found = found or bool(children)
            elif candidate.is_file():
                files.append(str(candidate.resolve()))
                found = True
        if not found:
            raise InputFileError(
                f"input not found or empty: {path}: pass a file, a folder of .jsonl/.json/.parquet files, or a glob"
            )
    return files


def read_text_lines(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read text files into `source_file`, `source_row` (1-based line number) and `raw`.

    Blank lines are skipped but still counted in the line numbers. Gzip files
    are decompressed by Spark.
    """
    # NOTE: a truncated gzip or unreadable file fails the whole read instead of
    # being reported per file.
    lines = spark.read.text(files).select(
        F.col("value").alias("raw"),
        F.col("_metadata.file_path").alias("source_file"),
        F.col("_metadata.file_block_start").alias("_block"),
        F.monotonically_increasing_id().alias("_position"),
    )
    # Rows of one split keep file order, and splits of a file are ordered by
    # their start offset, so this order numbers the lines of each file.
    # NOTE: the window puts each file in one task; very large single files
    # should be split upstream.
    in_file = Window.partitionBy("source_file").orderBy("_block", "_position")
    return (
        lines.withColumn("source_row", F.row_number().over(in_file).cast("long"))
        .where(F.trim(F.col("raw")) != "")
        .drop("_block", "_position")
    )


def read_parquet_rows(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read Parquet files with every column as a string, plus `source_file`, `source_row` and `raw`."""
    frame = spark.read.parquet(*files)
    data_columns = [F.col(f"`{name}`").cast("string").alias(name) for name in frame.columns]
    return frame.select(
        *data_columns,
        F.to_json(F.struct(*[F.col(f"`{name}`") for name in frame.columns])).alias("raw"),
        F.col("_metadata.file_path").alias("source_file"),
        (F.col("_metadata.row_index") + 1).cast("long").alias("source_row"),
    )
