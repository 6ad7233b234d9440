"""Column helpers shared by the adapters: field lookup, blanks, names and the common output shape."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

CANONICAL_FIELDS = (
    "event_id",
    "event_time",
    "host_id",
    "host_name",
    "local_ip",
    "local_port",
    "remote_ip",
    "remote_port",
    "direction",
    "protocol",
    "outcome",
    "actor_process_name",
    "actor_process_path",
    "actor_process_pid",
    "actor_process_command_line",
    "actor_process_sha256",
    "causality_process_name",
    "causality_process_path",
    "user_name",
)
# Zeek writes `-` for an unset field and `(empty)` for an empty set; NXLog and
# Windows exports write `-` for an empty value.
_BLANKS = ("", "-", "(empty)")


def blank_to_null(column: Column) -> Column:
    """Trim text and turn the blank markers `""`, `-` and `(empty)` into NULL."""
    trimmed = F.trim(column)
    return F.when(trimmed.isin(*_BLANKS), F.lit(None)).otherwise(trimmed)


def field(name: str) -> Column:
    """Value of one field of the row's `_parsed` map, blank markers as NULL."""
    return blank_to_null(F.col("_parsed").getItem(name))


def first_field(*names: str) -> Column:
    """The first non-blank value among several field names (aliases of one field)."""
    return F.coalesce(*[field(name) for name in names])


def nested(name: str, path: str) -> Column:
    """A value inside a nested JSON object stored as text in field `name`, for example `winlog` `$.event_id`."""
    return blank_to_null(F.get_json_object(F.col("_parsed").getItem(name), path))


def with_values(df: DataFrame, values: dict[str, Column]) -> DataFrame:
    """Compute each named value once, as a column `_v_<name>` read back with `value(name)`.

    Adapters look up the same field many times; computing it in its own
    projection keeps Spark's generated code small, because the optimizer does
    not copy a non-trivial expression into every place that uses it.
    """
    return df.select("*", *[column.alias(_value_column(name)) for name, column in values.items()])


def value(name: str) -> Column:
    """A value computed by `with_values`."""
    return F.col(_value_column(name))


def _value_column(name: str) -> str:
    # Spark resolves column names case-insensitively, and Windows fields
    # differ only in case (`ProcessId`, `ProcessID`): mark each capital.
    return "_v_" + "".join(f"_{char.lower()}" if char.isupper() else char for char in name)


def basename(path: Column) -> Column:
    """The last component of a Windows or POSIX path."""
    return F.regexp_extract(path, r"([^\\/]+)$", 1)


def protocol_name(text: Column) -> Column:
    """IANA protocol numbers 6 and 17 and the names in any case, as `tcp` or `udp`; other values lowercased."""
    lowered = F.lower(F.regexp_replace(text, r"(?i)^enum\.", ""))
    return (
        F.when(lowered.isin("6", "tcp"), F.lit("tcp")).when(lowered.isin("17", "udp"), F.lit("udp")).otherwise(lowered)
    )


def record_key(*parts: Column) -> Column:
    """A SHA-256 event id over the parts that identify a source record; NULL when the last part is NULL."""
    return F.when(parts[-1].isNotNull(), F.sha2(F.concat_ws("|", *parts), 256))


def adapter_output(df: DataFrame, columns: dict[str, Column], reason: Column, source_format: Column) -> DataFrame:
    """Select the canonical columns as strings, `reason`, `source_format` and the row's source columns.

    `reason` is set when the adapter already found the row unusable; a parse
    error found earlier (`_parse_error`) takes precedence. `_priority` orders
    rows of one event id when duplicates are removed (lower wins).
    """
    return df.select(
        "source_file",
        "source_row",
        "raw",
        *[columns.get(name, F.lit(None)).cast("string").alias(name) for name in CANONICAL_FIELDS],
        F.coalesce(F.col("_parse_error"), reason).alias("reason"),
        source_format.alias("source_format"),
        F.coalesce(columns.get("_priority", F.lit(None)), F.lit(1)).cast("int").alias("_priority"),
    )
