"""Read raw input files as numbered lines, keeping the file and line of every row."""

from __future__ import annotations

import codecs
import glob
import gzip
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (
    ".json",
    ".jsonl",
    ".ndjson",
    ".log",
    ".txt",
    ".csv",
    ".tsv",
    ".json.gz",
    ".jsonl.gz",
    ".log.gz",
    ".csv.gz",
)
PARQUET_SUFFIXES = (".parquet",)

# File kinds found from a file's first lines. A Zeek TSV file starts with
# `#separator` and names its columns in `#fields`. A CSV file (Cortex XDR
# exports) has a header line first. Every other file is read as JSON Lines.
JSON_LINES = "json"
ZEEK_TSV = "zeek_tsv"
CSV = "csv"

# A CSV header is recognised by one of these Cortex XDR `xdr_data` columns.
CSV_HEADER_MARKERS = ("agent_id", "agent_hostname", "action_remote_ip", "event_timestamp")
_READ_CHUNK = 1 << 20


class InputFileError(ValueError):
    """Raised when an input path cannot be read at all."""


@dataclass(frozen=True)
class UnreadableFile:
    """A file skipped before reading, with the reason and what to do about it."""

    source_file: str
    error: str

    def message(self) -> str:
        return f"{self.source_file}: {self.error}"


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
                    str(child.resolve())
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
                f"input not found or empty: {path}: pass a file, a folder of .jsonl/.json/.log/.csv/.parquet "
                "files, or a glob"
            )
    return files


def check_files(files: list[str]) -> tuple[list[str], list[UnreadableFile]]:
    """Split local files into readable ones and files that cannot be read at all.

    A text file must open, decompress completely when it is gzip, and decode
    as UTF-8 (a UTF-8 byte order mark is allowed). Spark would otherwise fail
    the whole read on a truncated gzip and silently replace invalid bytes.
    Remote URIs and Parquet files are left to Spark.

    NOTE: the check reads each local text file once on the driver before
    Spark reads it again, which doubles the disk reads of an ingest run.
    """
    readable: list[str] = []
    unreadable: list[UnreadableFile] = []
    for name in files:
        if "://" in name or name.startswith("dbfs:") or name.endswith(PARQUET_SUFFIXES):
            readable.append(name)
            continue
        error = _text_file_error(Path(name))
        if error is None:
            readable.append(name)
        else:
            logger.error("skipping unreadable input %s: %s", name, error)
            unreadable.append(UnreadableFile(name, error))
    return readable, unreadable


def _text_file_error(path: Path) -> str | None:
    """Return why a local text file cannot be read, or None when it decodes as UTF-8 completely."""
    try:
        return _decoding_error(path)
    except FileNotFoundError:
        return "file not found: check the path and that the file was not moved while ingesting"
    except PermissionError:
        return "permission denied: make the file readable by the user running the job"
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        return f"truncated or corrupt gzip ({err}): copy the file again, and check it with `gzip -t`"
    except OSError as err:
        return f"cannot be read ({err}): check the file and the disk"


def _decoding_error(path: Path) -> str | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb") as handle:
        try:
            while chunk := handle.read(_READ_CHUNK):
                if offset == 0 and chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    return "the file is UTF-16, not UTF-8: convert it, for example with `iconv -f UTF-16 -t UTF-8`"
                decoder.decode(chunk)
                offset += len(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as err:
            return (
                f"not UTF-8 at byte {offset + err.start}: convert the file to UTF-8, "
                "for example with `iconv -f WINDOWS-1252 -t UTF-8`"
            )
    return None


def read_text_lines(spark: SparkSession, files: list[str]) -> DataFrame:
    """Read text files into `source_file`, `source_row` (1-based line number) and `raw`.

    Blank lines are skipped but still counted in the line numbers. Gzip files
    are decompressed by Spark. A UTF-8 byte order mark at the start of a file
    is removed.
    """
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
    source_row = F.row_number().over(in_file).cast("long")
    without_bom = F.when(F.col("source_row") == 1, F.regexp_replace(F.col("raw"), "^\ufeff", "")).otherwise(
        F.col("raw")
    )
    return (
        lines.withColumn("source_row", source_row)
        .withColumn("raw", without_bom)
        .where(F.trim(F.col("raw")) != "")
        .drop("_block", "_position")
    )


def _header_names(text: Column, separator: str) -> Column:
    """Split a header line into unique column names.

    A repeated name gets `#<position>` appended, because Spark raises on
    duplicate keys when it builds the row's field map.
    """
    names = F.transform(F.split(text, separator, -1), lambda name: F.trim(F.regexp_replace(name, '^"|"$', "")))
    return F.transform(
        names,
        lambda name, index: F.when(
            F.array_position(F.slice(names, 1, index), name) > 0,
            F.concat(name, F.lit("#"), index.cast("string")),
        ).otherwise(name),
    )


def annotate_files(lines: DataFrame) -> DataFrame:
    """Add `_file_kind`, `_header` and `_zeek_path` to every line, and drop header lines.

    The kind comes from the file's first line. Header lines (the CSV header,
    Zeek's `#` lines) describe the file and are not rows, so they are not
    counted as rows read. The per-file summary has one row per file.
    """
    is_fields = F.col("raw").startswith("#fields")
    is_path = F.col("raw").startswith("#path")
    files = lines.groupBy("source_file").agg(
        F.min_by("raw", "source_row").alias("_first_line"),
        F.min("source_row").alias("_first_row"),
        F.min_by(F.col("raw"), F.when(is_fields, F.col("source_row"))).alias("_fields_line"),
        F.min_by(F.col("raw"), F.when(is_path, F.col("source_row"))).alias("_path_line"),
    )
    first = F.trim(F.col("_first_line"))
    has_marker = F.lit(False)
    for marker in CSV_HEADER_MARKERS:
        has_marker = has_marker | first.rlike(rf'(^|,)"?{marker}"?(,|$)')
    looks_csv = ~first.startswith("{") & has_marker
    kind = (
        F.when(first.startswith("#separator") | F.col("_fields_line").isNotNull(), F.lit(ZEEK_TSV))
        .when(looks_csv, F.lit(CSV))
        .otherwise(F.lit(JSON_LINES))
    )
    header = F.when(
        kind == ZEEK_TSV, _header_names(F.regexp_replace(F.col("_fields_line"), r"^#fields\t", ""), "\t")
    ).when(kind == CSV, _header_names(F.col("_first_line"), ","))
    summary = files.select(
        "source_file",
        "_first_row",
        kind.alias("_file_kind"),
        header.alias("_header"),
        F.regexp_extract(F.col("_path_line"), r"^#path\t(\S+)", 1).alias("_zeek_path"),
    )
    joined = lines.join(F.broadcast(summary), "source_file", "left")
    is_header = ((F.col("_file_kind") == ZEEK_TSV) & F.col("raw").startswith("#")) | (
        (F.col("_file_kind") == CSV) & (F.col("source_row") == F.col("_first_row"))
    )
    return joined.where(~is_header).drop("_first_row")


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
