"""Type casting and validation shared by every adapter."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smb_fanout.ingest.redact import redact_command_line
from smb_fanout.ipaddr import normalize_ip

DIRECTIONS = ("outbound", "inbound")
OUTCOMES = ("success", "failure", "blocked", "unknown")
_EPOCH_MILLIS_FLOOR = 100_000_000_000  # 1973-03-03 in milliseconds; larger numbers are milliseconds


# An ISO-8601 text that ends in `Z`, `UTC` or a numeric offset carries its own zone.
_ZONE_SUFFIX = r"(?i)(z|utc|gmt|[+-]\d{2}(:?\d{2})?)$"
_MICROS_PER_DAY = 86_400_000_000
# Epoch milliseconds of the year 5138: far beyond any real event time.
_EPOCH_MILLIS_LIMIT = 1e14


def parse_event_time(text: Column) -> Column:
    """Parse ISO-8601 (with or without offset; no offset means UTC) or epoch seconds or milliseconds.

    A text without a zone gets `Z` appended before the cast, because Spark
    would read it in the session time zone.
    """
    trimmed = F.trim(text)
    # Spark's JSON reader turns a float such as Zeek's `"ts": 1588205198.89971`
    # into the text `1.58820519889971E9`, so exponents are accepted.
    number = trimmed.try_cast("double")
    # Larger numbers would overflow the timestamp cast; they stay null and the row is quarantined.
    numeric = F.when(trimmed.rlike(r"^\d+(\.\d+)?([eE][+]?\d+)?$") & (number < _EPOCH_MILLIS_LIMIT), number)
    from_epoch = F.when(numeric >= _EPOCH_MILLIS_FLOOR, F.timestamp_millis(numeric.try_cast("long"))).otherwise(
        F.timestamp_seconds(numeric)
    )
    zoned = F.when(trimmed.rlike(_ZONE_SUFFIX), trimmed).otherwise(F.concat(trimmed, F.lit("Z")))
    return F.when(numeric.isNotNull(), from_epoch).otherwise(zoned.try_cast("timestamp"))


def utc_date(timestamp: Column) -> Column:
    """The UTC calendar date of a timestamp, whatever the session time zone."""
    return F.date_from_unix_date(F.floor(F.unix_micros(timestamp) / _MICROS_PER_DAY).cast("int"))


def _port(text: Column) -> Column:
    port = text.try_cast("int")
    return F.when((port >= 0) & (port <= 65535), port)


def normalize_events(df: DataFrame) -> DataFrame:
    """Cast adapter output to typed canonical columns and set `reason` for unusable rows.

    Needs the adapter columns (strings) plus `reason`; adds typed columns and
    `event_date`. A row whose `reason` is not null goes to quarantine and
    keeps its `raw` text, redacted; other rows have no `raw` text.
    """
    event_time = parse_event_time(F.col("event_time"))
    remote_ip = normalize_ip(F.col("remote_ip"))
    local_ip = normalize_ip(F.col("local_ip"))
    remote_port = _port(F.col("remote_port"))
    direction = F.lower(F.col("direction"))
    outcome = F.coalesce(F.lower(F.col("outcome")), F.lit("unknown"))
    typed = df.select(
        "source_file",
        "source_row",
        "source_format",
        "_priority",
        "raw",
        F.col("event_id").alias("_given_event_id"),
        event_time.alias("event_time"),
        F.col("event_time").alias("_event_time_text"),
        F.col("host_id"),
        F.col("host_name"),
        local_ip.alias("local_ip"),
        F.col("local_ip").alias("_local_ip_text"),
        _port(F.col("local_port")).alias("local_port"),
        remote_ip.alias("remote_ip"),
        F.col("remote_ip").alias("_remote_ip_text"),
        remote_port.alias("remote_port"),
        F.col("remote_port").alias("_remote_port_text"),
        direction.alias("direction"),
        F.lower(F.col("protocol")).alias("protocol"),
        outcome.alias("outcome"),
        "actor_process_name",
        "actor_process_path",
        F.col("actor_process_pid").try_cast("long").alias("actor_process_pid"),
        redact_command_line(F.col("actor_process_command_line")).alias("actor_process_command_line"),
        F.lower(F.col("actor_process_sha256")).alias("actor_process_sha256"),
        "causality_process_name",
        "causality_process_path",
        "user_name",
        F.col("reason").alias("_adapter_reason"),
    )
    reason = (
        F.when(F.col("_adapter_reason").isNotNull(), F.col("_adapter_reason"))
        .when(F.col("_event_time_text").isNull(), F.lit("missing_event_time"))
        .when(F.col("event_time").isNull(), F.lit("invalid_event_time"))
        .when(F.col("host_id").isNull(), F.lit("missing_host_id"))
        .when(F.col("direction").isNull(), F.lit("unknown_direction"))
        .when(~F.col("direction").isin(*DIRECTIONS), F.lit("unknown_direction"))
        .when(F.col("_remote_ip_text").isNull(), F.lit("missing_remote_ip"))
        .when(F.col("remote_ip").isNull(), F.lit("invalid_remote_ip"))
        .when(
            F.col("_local_ip_text").isNotNull() & F.col("local_ip").isNull(),
            F.lit("invalid_local_ip"),
        )
        .when(F.col("_remote_port_text").isNull(), F.lit("missing_remote_port"))
        .when(F.col("remote_port").isNull(), F.lit("invalid_remote_port"))
        .when(~F.col("outcome").isin(*OUTCOMES), F.lit("invalid_outcome"))
    )
    # Redaction is costly, so it runs only where its result is used: the key
    # of a row without an event id, and the text of a quarantined row.
    # Written rows do not keep their raw text.
    redacted = redact_command_line(F.col("raw"))
    content_key = F.sha2(F.concat_ws("|", F.col("source_format"), redacted), 256)
    return (
        typed.withColumn("reason", reason)
        .withColumn("event_id", F.coalesce(F.col("_given_event_id"), content_key))
        .withColumn("raw", F.when(F.col("reason").isNotNull(), redacted))
        .withColumn("event_date", utc_date(F.col("event_time")))
        .withColumnRenamed("_priority", "source_priority")
        .drop(*[name for name in typed.columns if name.startswith("_") and name != "_priority"])
    )
