"""Adapters from raw input rows to canonical network event columns.

Each adapter takes rows with `source_file`, `source_row` and `raw` and returns
the canonical columns as strings (types are cast later in one place), plus a
`reason` that is set when the adapter has already found the row unusable.
"""

from __future__ import annotations

from collections.abc import Callable

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

# Flat Windows event JSON: Sysmon (EVTX-converted or OTRF/NXLog) and Security.
WINDOWS_FIELDS = (
    "EventID",
    "Channel",
    "Computer",
    "Hostname",
    "EventRecordID",
    "RecordNumber",
    "UtcTime",
    "TimeCreated",
    "@timestamp",
    "Image",
    "ProcessId",
    "ProcessID",
    "User",
    "Protocol",
    "Initiated",
    "SourceIp",
    "SourcePort",
    "DestinationIp",
    "DestinationPort",
    "Application",
    "Direction",
    "SourceAddress",
    "DestAddress",
    "DestPort",
)

SYSMON_NETWORK_EVENT = "3"
WFP_ALLOWED_EVENT = "5156"
WFP_BLOCKED_EVENT = "5157"
WFP_OUTBOUND = "%%14593"
WFP_INBOUND = "%%14592"


def _json_fields(df: DataFrame) -> DataFrame:
    """Parse `raw` as a JSON object into `_parsed`, a map of field name to text; null for invalid JSON.

    A map keeps field names case-sensitive (Windows exports carry both
    `ProcessId` and `ProcessID`) and turns numbers and nested values into text.
    """
    return df.withColumn("_parsed", F.from_json(F.col("raw"), "map<string,string>"))


def _blank_to_null(column: Column) -> Column:
    trimmed = F.trim(column)
    return F.when((trimmed == "") | (trimmed == "-"), F.lit(None)).otherwise(trimmed)


def canonical_json(df: DataFrame) -> DataFrame:
    """Adapter for canonical JSON Lines (what the fleet generator writes)."""
    parsed = _json_fields(df)
    columns = [_blank_to_null(F.col("_parsed").getItem(name)).alias(name) for name in CANONICAL_FIELDS]
    reason = F.when(F.col("_parsed").isNull(), F.lit("invalid_json"))
    return parsed.select("source_file", "source_row", "raw", *columns, reason.alias("reason"))


def canonical_columns(df: DataFrame) -> DataFrame:
    """Adapter for canonical Parquet, whose columns already carry the canonical names."""
    columns = [
        _blank_to_null(F.col(name)).alias(name) if name in df.columns else F.lit(None).cast("string").alias(name)
        for name in CANONICAL_FIELDS
    ]
    return df.select("source_file", "source_row", "raw", *columns, F.lit(None).cast("string").alias("reason"))


def _basename(path: Column) -> Column:
    return F.regexp_extract(path, r"([^\\/]+)$", 1)


def windows_events(df: DataFrame) -> DataFrame:
    """Adapter for flat JSON of Sysmon event 3 and Windows Security 5156/5157.

    Time comes from Sysmon `UtcTime`, else `TimeCreated` (UTC in EVTX exports),
    else the collector's `@timestamp`; the local-time `EventTime` is never read.
    Both formats name the initiator `Source*` and the responder `Destination*`/`Dest*`.
    """
    parsed = _json_fields(df)
    field = {name: _blank_to_null(F.col("_parsed").getItem(name)) for name in WINDOWS_FIELDS}
    event_id = field["EventID"]
    is_sysmon = event_id == SYSMON_NETWORK_EVENT
    is_wfp = event_id.isin(WFP_ALLOWED_EVENT, WFP_BLOCKED_EVENT)

    initiated = F.lower(field["Initiated"])
    wfp_direction = field["Direction"]
    direction = (
        F.when(is_sysmon & (initiated == "true"), F.lit("outbound"))
        .when(is_sysmon & (initiated == "false"), F.lit("inbound"))
        .when(is_wfp & (wfp_direction == WFP_OUTBOUND), F.lit("outbound"))
        .when(is_wfp & (wfp_direction == WFP_INBOUND), F.lit("inbound"))
    )
    source_ip = F.when(is_sysmon, field["SourceIp"]).otherwise(field["SourceAddress"])
    source_port = field["SourcePort"]
    dest_ip = F.when(is_sysmon, field["DestinationIp"]).otherwise(field["DestAddress"])
    dest_port = F.when(is_sysmon, field["DestinationPort"]).otherwise(field["DestPort"])
    outbound = direction == "outbound"

    image = F.when(is_sysmon, field["Image"]).otherwise(field["Application"])
    kernel = F.lower(image) == "system"
    protocol = F.lower(field["Protocol"])
    host_name = F.coalesce(field["Computer"], field["Hostname"])
    record_id = F.coalesce(field["EventRecordID"], field["RecordNumber"])
    event_key = F.concat_ws("|", F.lit("windows"), F.lower(host_name), field["Channel"], event_id, record_id)

    columns = {
        "event_id": F.when(record_id.isNotNull(), F.sha2(event_key, 256)),
        "event_time": F.coalesce(field["UtcTime"], field["TimeCreated"], field["@timestamp"]),
        "host_id": F.lower(host_name),
        "host_name": host_name,
        "local_ip": F.when(outbound, source_ip).otherwise(dest_ip),
        "local_port": F.when(outbound, source_port).otherwise(dest_port),
        "remote_ip": F.when(outbound, dest_ip).otherwise(source_ip),
        "remote_port": F.when(outbound, dest_port).otherwise(source_port),
        "direction": direction,
        "protocol": F.when(protocol.isin("6", "tcp"), F.lit("tcp"))
        .when(protocol.isin("17", "udp"), F.lit("udp"))
        .otherwise(protocol),
        "outcome": F.when(event_id == WFP_BLOCKED_EVENT, F.lit("blocked")).otherwise(F.lit("unknown")),
        "actor_process_name": F.when(kernel, F.lit("System")).otherwise(_basename(image)),
        "actor_process_path": F.when(~kernel, image),
        "actor_process_pid": F.coalesce(field["ProcessId"], field["ProcessID"]),
        "actor_process_command_line": F.lit(None).cast("string"),
        "actor_process_sha256": F.lit(None).cast("string"),
        "causality_process_name": F.lit(None).cast("string"),
        "causality_process_path": F.lit(None).cast("string"),
        "user_name": F.when(is_sysmon, field["User"]),
    }
    reason = (
        F.when(F.col("_parsed").isNull(), F.lit("invalid_json"))
        .when(event_id.isNull(), F.lit("missing_event_id"))
        .when(~(is_sysmon | is_wfp), F.concat(F.lit("unsupported_event_id:"), event_id))
    )
    return parsed.select(
        "source_file",
        "source_row",
        "raw",
        *[columns[name].cast("string").alias(name) for name in CANONICAL_FIELDS],
        reason.alias("reason"),
    )


def auto_detect(df: DataFrame) -> DataFrame:
    """Route each row to the Windows adapter when it has an `EventID`, else to canonical JSON."""
    has_event_id = F.get_json_object(F.col("raw"), "$.EventID").isNotNull()
    windows = windows_events(df.where(has_event_id)).withColumn("source_format", F.lit("windows"))
    canonical = canonical_json(df.where(~has_event_id)).withColumn("source_format", F.lit("canonical"))
    return windows.unionByName(canonical)


TEXT_ADAPTERS: dict[str, Callable[[DataFrame], DataFrame]] = {
    "canonical": canonical_json,
    "sysmon": windows_events,
    "windows_security": windows_events,
    "windows": windows_events,
}
FORMATS = (*TEXT_ADAPTERS, "auto")
