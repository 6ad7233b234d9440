"""Adapter for Windows network events: Sysmon 3, Security 5156/5157 and the share-access events 5140/5145.

Three encodings of the same events are read: flat JSON (OTRF/NXLog exports
and EVTX converted to JSON, where the EventData fields sit at the top level)
and Winlogbeat/Elastic ECS JSON (System fields under `winlog`, EventData under
`winlog.event_data`, ECS copies under `source`, `destination`, `process`).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smb_fanout.ingest.columns import (
    adapter_output,
    basename,
    blank_to_null,
    field,
    nested,
    protocol_name,
    record_key,
    value,
    with_values,
)

SYSMON_NETWORK_EVENT = "3"
WFP_ALLOWED_EVENT = "5156"
WFP_BLOCKED_EVENT = "5157"
SHARE_ACCESS_EVENTS = ("5140", "5145")
# Direction codes of Security 5156/5157; rendered exports write the English words instead.
WFP_OUTBOUND = ("%%14593", "outbound")
WFP_INBOUND = ("%%14592", "inbound")
# Share access is audited on the SMB server; the port is not in the event.
# NOTE: SMB over NetBIOS (139) is logged the same way and is recorded as 445.
SHARE_ACCESS_PORT = "445"

# EventData names read from the flat export or from `winlog.event_data`.
EVENT_DATA_FIELDS = (
    "UtcTime",
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
    "SourcePort",
    "DestAddress",
    "DestPort",
    "IpAddress",
    "IpPort",
    "SubjectUserName",
    "SubjectDomainName",
)

# ECS fields used when a Winlogbeat pipeline dropped `winlog.event_data`.
_ECS_FALLBACK = {
    "SourceIp": ("source", "$.ip"),
    "SourcePort": ("source", "$.port"),
    "DestinationIp": ("destination", "$.ip"),
    "DestinationPort": ("destination", "$.port"),
    "Image": ("process", "$.executable"),
    "ProcessId": ("process", "$.pid"),
    "Protocol": ("network", "$.transport"),
}


def _event_data(name: str) -> Column:
    text = F.coalesce(field(name), nested("winlog", f"$.event_data.{name}"))
    if name in _ECS_FALLBACK:
        text = F.coalesce(text, nested(*_ECS_FALLBACK[name]))
    return text


def windows_fields() -> dict[str, Column]:
    """System and EventData fields of a Windows event in any of the three encodings."""
    values = {name: _event_data(name) for name in EVENT_DATA_FIELDS}
    values["EventID"] = F.coalesce(field("EventID"), nested("winlog", "$.event_id"), nested("event", "$.code"))
    values["Channel"] = F.coalesce(field("Channel"), nested("winlog", "$.channel"))
    values["Computer"] = F.coalesce(
        field("Computer"), field("Hostname"), nested("winlog", "$.computer_name"), nested("host", "$.name")
    )
    values["RecordID"] = F.coalesce(field("EventRecordID"), field("RecordNumber"), nested("winlog", "$.record_id"))
    values["TimeCreated"] = F.coalesce(field("TimeCreated"), nested("winlog", "$.time_created"))
    values["@timestamp"] = field("@timestamp")
    return values


def windows_events(df: DataFrame) -> DataFrame:
    """Adapt Windows network and share-access events to canonical columns.

    Needs `_parsed` (the row's fields). Time comes from Sysmon `UtcTime`,
    else `TimeCreated` (UTC in EVTX exports), else the collector's
    `@timestamp`; the local-time `EventTime` of NXLog is never read. Sysmon
    and 5156 name the initiator `Source*` and the responder
    `Destination*`/`Dest*`. A 5140/5145 row is an inbound contact on the SMB
    server from the client in `IpAddress`, with `source_format`
    `windows_share_access`.
    """
    df = with_values(df, windows_fields())
    event_id = value("EventID")
    is_sysmon = event_id == SYSMON_NETWORK_EVENT
    is_wfp = event_id.isin(WFP_ALLOWED_EVENT, WFP_BLOCKED_EVENT)
    is_share = event_id.isin(*SHARE_ACCESS_EVENTS)
    initiated = F.lower(value("Initiated"))
    wfp_direction = F.lower(value("Direction"))
    image = F.when(is_sysmon, value("Image")).otherwise(value("Application"))
    df = with_values(
        df,
        {
            "direction": F.when(is_sysmon & (initiated == "true"), F.lit("outbound"))
            .when(is_sysmon & (initiated == "false"), F.lit("inbound"))
            .when(is_wfp & wfp_direction.isin(*WFP_OUTBOUND), F.lit("outbound"))
            .when(is_wfp & wfp_direction.isin(*WFP_INBOUND), F.lit("inbound"))
            .when(is_share, F.lit("inbound")),
            "source_ip": F.when(is_sysmon, value("SourceIp")).otherwise(value("SourceAddress")),
            "dest_ip": F.when(is_sysmon, value("DestinationIp")).otherwise(value("DestAddress")),
            "dest_port": F.when(is_sysmon, value("DestinationPort")).otherwise(value("DestPort")),
            "image": image,
            "kernel": F.lower(image) == "system",
        },
    )
    outbound = value("direction") == "outbound"
    host_name = value("Computer")
    event_key = record_key(F.lit("windows"), F.lower(host_name), value("Channel"), event_id, value("RecordID"))
    subject = F.when(
        value("SubjectUserName").isNotNull(),
        F.concat_ws("\\", value("SubjectDomainName"), value("SubjectUserName")),
    )
    kernel = value("kernel")

    columns = {
        "event_id": event_key,
        "event_time": F.coalesce(value("UtcTime"), value("TimeCreated"), value("@timestamp")),
        "host_id": F.lower(host_name),
        "host_name": host_name,
        "local_ip": F.when(is_share, F.lit(None)).when(outbound, value("source_ip")).otherwise(value("dest_ip")),
        "local_port": F.when(is_share, F.lit(SHARE_ACCESS_PORT))
        .when(outbound, value("SourcePort"))
        .otherwise(value("dest_port")),
        "remote_ip": F.when(is_share, value("IpAddress"))
        .when(outbound, value("dest_ip"))
        .otherwise(value("source_ip")),
        "remote_port": F.when(is_share, value("IpPort"))
        .when(outbound, value("dest_port"))
        .otherwise(value("SourcePort")),
        "direction": value("direction"),
        "protocol": F.when(is_share, F.lit("tcp")).otherwise(protocol_name(value("Protocol"))),
        "outcome": F.when(event_id == WFP_BLOCKED_EVENT, F.lit("blocked")).otherwise(F.lit("unknown")),
        "actor_process_name": F.when(kernel, F.lit("System")).otherwise(blank_to_null(basename(value("image")))),
        "actor_process_path": F.when(~kernel, value("image")),
        "actor_process_pid": F.coalesce(value("ProcessId"), value("ProcessID")),
        "user_name": F.when(is_sysmon, value("User")).when(is_share, subject),
    }
    reason = F.when(event_id.isNull(), F.lit("missing_event_id")).when(
        ~(is_sysmon | is_wfp | is_share), F.concat(F.lit("unsupported_event_id:"), event_id)
    )
    source_format = F.when(is_share, F.lit("windows_share_access")).otherwise(F.lit("windows"))
    return adapter_output(df, columns, reason, source_format)
