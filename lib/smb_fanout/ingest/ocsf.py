"""Adapter for OCSF Network Activity (class 4001) JSON.

Field names follow OCSF 1.x: `time` in epoch milliseconds, `src_endpoint` and
`dst_endpoint` with `ip` and `port`, `connection_info.direction_id`, the
reporting `device`, and the `actor` process and user.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smb_fanout.ingest.columns import (
    adapter_output,
    basename,
    field,
    nested,
    protocol_name,
    record_key,
    value,
    with_values,
)
from smb_fanout.ipaddr import normalize_ip

NETWORK_ACTIVITY_CLASS = "4001"
# connection_info.direction_id: 1 inbound, 2 outbound, 3 lateral (between two
# internal endpoints, so the device's own address decides), 0 and 99 unknown.
INBOUND_ID, OUTBOUND_ID, LATERAL_ID = "1", "2", "3"
# activity_id 4 (Fail) and 5 (Refuse) are failed attempts; status_id 1 is success, 2 failure.
FAILED_ACTIVITIES = ("4", "5")


def _text(name: str, path: str) -> Column:
    return nested(name, path)


def ocsf_events(df: DataFrame) -> DataFrame:
    """Adapt OCSF 4001 rows to canonical columns.

    Needs `_parsed`. A row of another `class_uid` is quarantined as
    `unsupported_class_uid:<uid>`. Time is `time`, else `time_dt`.
    """
    class_uid = field("class_uid")
    df = with_values(
        df,
        {
            "src_ip": _text("src_endpoint", "$.ip"),
            "src_port": _text("src_endpoint", "$.port"),
            "dst_ip": _text("dst_endpoint", "$.ip"),
            "dst_port": _text("dst_endpoint", "$.port"),
            "device_ip": normalize_ip(_text("device", "$.ip")),
        },
    )
    src_ip, src_port, dst_ip, dst_port = value("src_ip"), value("src_port"), value("dst_ip"), value("dst_port")
    device_ip = value("device_ip")
    direction_id = _text("connection_info", "$.direction_id")
    direction_text = F.lower(_text("connection_info", "$.direction"))
    lateral = (direction_id == LATERAL_ID) | (direction_text == "lateral")
    direction = (
        F.when((direction_id == OUTBOUND_ID) | (direction_text == "outbound"), F.lit("outbound"))
        .when((direction_id == INBOUND_ID) | (direction_text == "inbound"), F.lit("inbound"))
        .when(lateral & (device_ip == normalize_ip(src_ip)), F.lit("outbound"))
        .when(lateral & (device_ip == normalize_ip(dst_ip)), F.lit("inbound"))
    )
    df = with_values(df, {"direction": direction})
    outbound = value("direction") == "outbound"
    status_id, activity_id = field("status_id"), field("activity_id")
    outcome = (
        F.when(activity_id.isin(*FAILED_ACTIVITIES) | (status_id == "2"), F.lit("failure"))
        .when(status_id == "1", F.lit("success"))
        .otherwise(F.lit("unknown"))
    )
    host_name = F.coalesce(_text("device", "$.hostname"), _text("device", "$.name"))
    host_id = F.coalesce(F.lower(_text("device", "$.uid")), F.lower(host_name))
    process_path = _text("actor", "$.process.file.path")
    user = _text("actor", "$.user.name")
    domain = _text("actor", "$.user.domain")
    columns = {
        "event_id": record_key(F.lit("ocsf"), host_id, _text("metadata", "$.uid")),
        "event_time": F.coalesce(field("time"), field("time_dt")),
        "host_id": host_id,
        "host_name": host_name,
        "local_ip": F.when(outbound, src_ip).otherwise(dst_ip),
        "local_port": F.when(outbound, src_port).otherwise(dst_port),
        "remote_ip": F.when(outbound, dst_ip).otherwise(src_ip),
        "remote_port": F.when(outbound, dst_port).otherwise(src_port),
        "direction": value("direction"),
        "protocol": protocol_name(
            F.coalesce(_text("connection_info", "$.protocol_name"), _text("connection_info", "$.protocol_num"))
        ),
        "outcome": outcome,
        "actor_process_name": F.coalesce(_text("actor", "$.process.file.name"), basename(process_path)),
        "actor_process_path": process_path,
        "actor_process_pid": _text("actor", "$.process.pid"),
        "actor_process_command_line": _text("actor", "$.process.cmd_line"),
        "causality_process_name": _text("actor", "$.process.parent_process.file.name"),
        "causality_process_path": _text("actor", "$.process.parent_process.file.path"),
        "user_name": F.when(user.isNotNull(), F.concat_ws("\\", domain, user)),
    }
    reason = F.when(class_uid.isNull(), F.lit("missing_class_uid")).when(
        class_uid != NETWORK_ACTIVITY_CLASS, F.concat(F.lit("unsupported_class_uid:"), class_uid)
    )
    return adapter_output(df, columns, reason, F.lit("ocsf"))
