"""Adapters from raw input rows to canonical network event columns, and format detection.

Each adapter takes rows with `source_file`, `source_row`, `raw` and the
row's fields in `_parsed`, and returns the canonical columns as strings
(types are cast later in one place), `source_format`, and a `reason` that is
set when the adapter has already found the row unusable.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smb_fanout.ingest.columns import CANONICAL_FIELDS, adapter_output, blank_to_null, field
from smb_fanout.ingest.ocsf import ocsf_events
from smb_fanout.ingest.reader import CSV, JSON_LINES, ZEEK_TSV
from smb_fanout.ingest.windows import windows_events
from smb_fanout.ingest.xdr import xdr_events
from smb_fanout.ingest.zeek import zeek_events

__all__ = ["CANONICAL_FIELDS", "FORMATS", "TEXT_ADAPTERS", "adapt", "canonical_columns", "parse_fields"]

# A quoted CSV field may contain commas: split only on commas followed by an
# even number of quotes.
_CSV_SPLIT = r',(?=(?:[^"]*"[^"]*")*[^"]*$)'


def _csv_values(raw: Column) -> Column:
    """Split one CSV line into field values, removing the quotes and undoing doubled quotes."""
    return F.transform(
        F.split(raw, _CSV_SPLIT, -1),
        lambda value: F.regexp_replace(F.regexp_replace(value, r'^\s*"|"\s*$', ""), '""', '"'),
    )


def parse_fields(df: DataFrame) -> DataFrame:
    """Add `_parsed`, a map of field name to text, and `_parse_error` for a row that cannot be parsed.

    Needs the columns of `reader.annotate_files`. JSON keeps field names
    case-sensitive (Windows exports carry both `ProcessId` and `ProcessID`)
    and turns numbers and nested objects into text. A TSV or CSV row must
    have as many values as its file's header.
    """
    kind = F.col("_file_kind")
    header = F.col("_header")
    tsv_values = F.split(F.col("raw"), "\t", -1)
    csv_values = _csv_values(F.col("raw"))
    values = F.when(kind == ZEEK_TSV, tsv_values).when(kind == CSV, csv_values)
    same_length = F.size(values) == F.size(header)
    parsed = F.when(kind == JSON_LINES, F.from_json(F.col("raw"), "map<string,string>")).when(
        same_length, F.map_from_arrays(header, values)
    )
    error = (
        F.when(kind == JSON_LINES, F.when(parsed.isNull(), F.lit("invalid_json")))
        .when(header.isNull(), F.lit("missing_header"))
        .when(~same_length, F.lit("field_count_mismatch"))
    )
    return df.withColumn("_parsed", parsed).withColumn("_parse_error", error)


def canonical_json(df: DataFrame) -> DataFrame:
    """Adapt canonical JSON Lines (what the fleet generator writes)."""
    columns = {name: field(name) for name in CANONICAL_FIELDS}
    return adapter_output(df, columns, F.lit(None).cast("string"), F.lit("canonical"))


def canonical_columns(df: DataFrame) -> DataFrame:
    """Adapt canonical Parquet, whose columns already carry the canonical names."""
    columns = [
        blank_to_null(F.col(name)).alias(name) if name in df.columns else F.lit(None).cast("string").alias(name)
        for name in CANONICAL_FIELDS
    ]
    return df.select(
        "source_file",
        "source_row",
        "raw",
        *columns,
        F.lit(None).cast("string").alias("reason"),
        F.lit("canonical").alias("source_format"),
        F.lit(1).alias("_priority"),
    )


TEXT_ADAPTERS: dict[str, Callable[[DataFrame], DataFrame]] = {
    "canonical": canonical_json,
    "sysmon": windows_events,
    "windows_security": windows_events,
    "windows": windows_events,
    "zeek": zeek_events,
    "cortex_xdr": xdr_events,
    "ocsf": ocsf_events,
}
FORMATS = (*TEXT_ADAPTERS, "auto")


def detected_format() -> Column:
    """The adapter for a row in `--format auto`, from its file kind and field names.

    Zeek TSV and CSV files are recognised per file from their header. In JSON
    Lines each row is routed by its fields, so one file may mix formats.
    """
    has = F.map_contains_key
    parsed = F.col("_parsed")
    is_windows = has(parsed, "EventID") | has(parsed, "winlog")
    is_zeek = (
        has(parsed, "_path")
        | has(parsed, "@stream")
        | has(parsed, "id.orig_h")
        | has(parsed, "id_orig_h")
        | (has(parsed, "id") & has(parsed, "uid"))
    )
    is_xdr = has(parsed, "agent_id") | has(parsed, "action_remote_ip") | has(parsed, "agent_hostname")
    kind = F.col("_file_kind")
    return (
        F.when(kind == ZEEK_TSV, F.lit("zeek"))
        .when(kind == CSV, F.lit("cortex_xdr"))
        .when(parsed.isNull(), F.lit("canonical"))
        .when(has(parsed, "class_uid"), F.lit("ocsf"))
        .when(is_windows, F.lit("windows"))
        .when(is_zeek, F.lit("zeek"))
        .when(is_xdr, F.lit("cortex_xdr"))
        .otherwise(F.lit("canonical"))
    )


def adapt(df: DataFrame, input_format: str) -> DataFrame:
    """Run the adapter of `input_format` on parsed rows, or route each row when it is `auto`.

    For `auto`, one small job first finds which adapters the input needs (at
    most five rows reach the driver). Only those are unioned, because Spark
    copies the normalisation that follows into every branch of a union, and
    the size of the plan, not the data, then dominates a small ingest.
    """
    if input_format != "auto":
        return TEXT_ADAPTERS[input_format](df)
    routed = df.withColumn("_adapter", detected_format())
    present = sorted(row["_adapter"] for row in routed.select("_adapter").distinct().collect())
    frames = [TEXT_ADAPTERS[name](routed.where(F.col("_adapter") == name)) for name in present or ["canonical"]]
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result
