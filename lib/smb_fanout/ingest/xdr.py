"""Adapter for Cortex XDR / XSIAM `xdr_data` network events exported as CSV or JSON Lines.

The columns are the `xdr_data` dataset's: the agent (`agent_id`,
`agent_hostname`), the connection (`action_local_ip`, `action_remote_ip`,
`action_remote_port`, ...), the actor process, the causality actor (the
process chain's root, for example the script host that started a tool) and
`event_timestamp` in epoch milliseconds (UTC). Enum values may carry the
`ENUM.` prefix of XQL exports.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smb_fanout.ingest.columns import adapter_output, field, first_field, protocol_name, record_key, value, with_values

# `event_sub_type` of network events: the agent's host connected (outbound),
# failed to connect (outbound, failed) or accepted a connection (inbound).
CONNECT = "NETWORK_STREAM_CONNECT"
CONNECT_FAILED = "NETWORK_STREAM_CONNECT_FAILED"
ACCEPT = "NETWORK_STREAM_ACCEPT"
NETWORK_EVENT_TYPE = "NETWORK"


def _enum(name: str) -> Column:
    return F.upper(F.regexp_replace(field(name), r"(?i)^enum\.", ""))


def xdr_events(df: DataFrame) -> DataFrame:
    """Adapt `xdr_data` network rows to canonical columns.

    Needs `_parsed`. Time is `event_timestamp`, else `_time`; `_insert_time`
    (when the event reached the tenant) is never read. A row of another
    `event_type` is quarantined as `unsupported_event_type:<type>`, and an
    unknown `event_sub_type` as `unknown_direction`.

    NOTE: numeric `event_sub_type` codes are not mapped, so such rows are
    quarantined as `unknown_direction`.
    """
    df = with_values(df, {"event_type": _enum("event_type"), "sub_type": _enum("event_sub_type")})
    event_type, sub_type = value("event_type"), value("sub_type")
    direction = F.when(sub_type.isin(CONNECT, CONNECT_FAILED), F.lit("outbound")).when(
        sub_type == ACCEPT, F.lit("inbound")
    )
    agent = F.lower(first_field("agent_id", "agent_hostname"))
    columns = {
        "event_id": record_key(F.lit("xdr"), agent, field("event_id")),
        "event_time": first_field("event_timestamp", "_time"),
        "host_id": agent,
        "host_name": field("agent_hostname"),
        "local_ip": field("action_local_ip"),
        "local_port": field("action_local_port"),
        "remote_ip": field("action_remote_ip"),
        "remote_port": field("action_remote_port"),
        "direction": direction,
        "protocol": protocol_name(field("action_network_protocol")),
        "outcome": F.when(sub_type == CONNECT_FAILED, F.lit("failure"))
        .when(sub_type.isin(CONNECT, ACCEPT), F.lit("success"))
        .otherwise(F.lit("unknown")),
        "actor_process_name": field("actor_process_image_name"),
        "actor_process_path": field("actor_process_image_path"),
        "actor_process_pid": field("actor_process_os_pid"),
        "actor_process_command_line": field("actor_process_command_line"),
        "actor_process_sha256": field("actor_process_image_sha256"),
        "causality_process_name": field("causality_actor_process_image_name"),
        "causality_process_path": field("causality_actor_process_image_path"),
        "user_name": first_field("actor_effective_username", "actor_primary_username"),
    }
    reason = F.when(
        event_type.isNotNull() & (event_type != NETWORK_EVENT_TYPE),
        F.concat(F.lit("unsupported_event_type:"), event_type),
    )
    return adapter_output(df, columns, reason, F.lit("cortex_xdr"))
