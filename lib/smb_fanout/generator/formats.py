"""Writers of canonical events in every input format the ingest job reads.

`write_format` converts generated canonical JSON Lines into one vendor format,
so each adapter can be tested on the same events and the ingested rows can be
compared with the canonical ones. The writers reproduce the traps of the real
formats: host-local `EventTime` next to the UTC fields, IPv6 written expanded
by Sysmon, 5156 process paths as device paths, epoch milliseconds in XDR and
OCSF, and Zeek TSV headers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from typing import Any

Event = dict[str, Any]

# NXLog exports of the OTRF lab carry `EventTime` in the hosts' local time, UTC-4.
_LOCAL_OFFSET = timedelta(hours=-4)
# The collector receives events a little after they happen.
_RECEIVE_DELAY = timedelta(seconds=30)
_DEVICE_PREFIX = "\\device\\harddiskvolume2\\"
ZEEK_CONN_FIELDS = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "conn_state",
)
XDR_COLUMNS = (
    "event_id",
    "_time",
    "event_timestamp",
    "_insert_time",
    "agent_id",
    "agent_hostname",
    "event_type",
    "event_sub_type",
    "action_local_ip",
    "action_local_port",
    "action_remote_ip",
    "action_remote_port",
    "action_network_protocol",
    "actor_process_image_name",
    "actor_process_image_path",
    "actor_process_os_pid",
    "actor_process_command_line",
    "actor_process_image_sha256",
    "causality_actor_process_image_name",
    "causality_actor_process_image_path",
    "actor_effective_username",
)


def _time(event: Event) -> datetime:
    return datetime.fromisoformat(str(event["event_time"]).replace("Z", "+00:00")).astimezone(UTC)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _expanded(ip: str) -> str:
    """Write IPv6 as Sysmon does, every group without leading zeros and no `::`."""
    # The zone id is split off first: `exploded` raises on "fe80::1%3" in Python 3.11.
    text, _, zone = ip.partition("%")
    address = ip_address(text)
    if not isinstance(address, IPv6Address):
        return ip
    expanded = ":".join(f"{int(group, 16):x}" for group in address.exploded.split(":"))
    return f"{expanded}%{zone}" if zone else expanded


def _initiator(event: Event) -> tuple[str, int, str, int]:
    """(source ip, source port, destination ip, destination port) with the initiator first."""
    local = (event["local_ip"], event["local_port"])
    remote = (event["remote_ip"], event["remote_port"])
    source, dest = (local, remote) if event["direction"] == "outbound" else (remote, local)
    return source[0], source[1], dest[0], dest[1]


def _image(event: Event) -> str:
    return "System" if event.get("actor_process_name") == "System" else event.get("actor_process_path") or ""


def _sysmon_data(event: Event) -> dict[str, Any]:
    source_ip, source_port, dest_ip, dest_port = _initiator(event)
    return {
        "UtcTime": _time(event).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "Image": _image(event),
        "ProcessId": str(event.get("actor_process_pid") or ""),
        "User": event.get("user_name") or "-",
        "Protocol": event.get("protocol") or "tcp",
        "Initiated": "true" if event["direction"] == "outbound" else "false",
        "SourceIp": _expanded(source_ip),
        "SourcePort": str(source_port),
        "DestinationIp": _expanded(dest_ip),
        "DestinationPort": str(dest_port),
        "SourceHostname": "-",
    }


def sysmon_otrf(event: Event, record: int) -> str:
    """Sysmon 3 as OTRF/NXLog flat JSON: `Hostname`, local `EventTime`, receive-time `@timestamp`."""
    moment = _time(event)
    line = {
        "EventID": 3,
        "SourceName": "Microsoft-Windows-Sysmon",
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Hostname": event["host_name"],
        "RecordNumber": record,
        "EventTime": (moment + _LOCAL_OFFSET).strftime("%Y-%m-%d %H:%M:%S"),
        "@timestamp": (moment + _RECEIVE_DELAY).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    } | _sysmon_data(event)
    return json.dumps(line)


def sysmon_evtx(event: Event, record: int) -> str:
    """Sysmon 3 as flattened EVTX JSON: `Computer`, `TimeCreated` in UTC, `Initiated` as `True`/`False`."""
    data = _sysmon_data(event)
    data["Initiated"] = data["Initiated"].capitalize()
    line = {
        "Provider": "Microsoft-Windows-Sysmon",
        "EventID": 3,
        "TimeCreated": _time(event).strftime("%Y-%m-%d %H:%M:%S.%f") + "+00:00",
        "EventRecordID": record,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": event["host_name"],
    } | data
    return json.dumps(line)


def sysmon_ecs(event: Event, record: int) -> str:
    """Sysmon 3 as Winlogbeat writes it: `winlog.event_data` plus ECS `source`, `destination`, `process`."""
    data = _sysmon_data(event)
    source_ip, source_port, dest_ip, dest_port = _initiator(event)
    line = {
        "@timestamp": _time(event).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "event": {"code": "3", "kind": "event", "provider": "Microsoft-Windows-Sysmon"},
        "host": {"name": event["host_name"].lower()},
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "computer_name": event["host_name"],
            "event_id": "3",
            "record_id": record,
            "event_data": data,
        },
        "source": {"ip": source_ip, "port": source_port},
        "destination": {"ip": dest_ip, "port": dest_port},
        "network": {"transport": event.get("protocol") or "tcp"},
    }
    return json.dumps(line)


def security_5156(event: Event, record: int) -> str:
    """Security 5156 as flattened EVTX JSON: direction codes, protocol number and device paths."""
    source_ip, source_port, dest_ip, dest_port = _initiator(event)
    image = _image(event)
    if image not in ("", "System") and len(image) > 2 and image[1] == ":":
        image = _DEVICE_PREFIX + image[3:].lower()
    line = {
        "Provider": "Microsoft-Windows-Security-Auditing",
        "EventID": 5156,
        "TimeCreated": _time(event).strftime("%Y-%m-%d %H:%M:%S.%f") + "+00:00",
        "EventRecordID": record,
        "Channel": "Security",
        "Computer": event["host_name"],
        "ProcessID": str(event.get("actor_process_pid") or ""),
        "Application": image,
        "Direction": "%%14593" if event["direction"] == "outbound" else "%%14592",
        "SourceAddress": source_ip,
        "SourcePort": str(source_port),
        "DestAddress": dest_ip,
        "DestPort": str(dest_port),
        "Protocol": "6" if (event.get("protocol") or "tcp") == "tcp" else "17",
        "LayerName": "%%14611",
    }
    return json.dumps(line)


def zeek_conn_json(event: Event, record: int, *, dotted: bool = True) -> str:
    """A Zeek `conn.log` row as JSON, with dotted (`id.orig_h`) or underscored (`id_orig_h`) names."""
    values = _zeek_conn_values(event, record)
    if dotted:
        values["ts"] = _time(event).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
        return json.dumps({"_path": "conn"} | values)
    return json.dumps({"@stream": "conn"} | {name.replace(".", "_"): value for name, value in values.items()})


def _zeek_conn_values(event: Event, record: int) -> dict[str, Any]:
    source_ip, source_port, dest_ip, dest_port = _initiator(event)
    failed = event.get("outcome") in ("failure", "blocked")
    return {
        "ts": round(_time(event).timestamp(), 6),
        "uid": f"C{record:017d}",
        "id.orig_h": source_ip,
        "id.orig_p": source_port,
        "id.resp_h": dest_ip,
        "id.resp_p": dest_port,
        "proto": event.get("protocol") or "tcp",
        "service": "-" if failed else "smb" if dest_port in (445, 139) else "-",
        "duration": 0.0 if failed else 1.5,
        "conn_state": "REJ" if failed else "SF",
    }


def zeek_conn_tsv_lines(events: Iterable[Event], first_record: int = 1) -> list[str]:
    """A complete Zeek `conn.log` in TSV, header lines included."""
    lines = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#fields\t" + "\t".join(ZEEK_CONN_FIELDS),
        "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tstring",
    ]
    for record, event in enumerate(events, start=first_record):
        values = _zeek_conn_values(event, record)
        values["ts"] = f"{values['ts']:.6f}"
        lines.append("\t".join(str(values[name]) for name in ZEEK_CONN_FIELDS))
    lines.append("#close\t2026-12-01-00-00-00")
    return lines


def _xdr_values(event: Event, record: int) -> dict[str, Any]:
    moment = _time(event)
    failed = event.get("outcome") in ("failure", "blocked")
    sub_type = "NETWORK_STREAM_ACCEPT"
    if event["direction"] == "outbound":
        sub_type = "NETWORK_STREAM_CONNECT_FAILED" if failed else "NETWORK_STREAM_CONNECT"
    return {
        "event_id": f"xdr-{record}",
        "_time": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "event_timestamp": _millis(moment),
        "_insert_time": _millis(moment + timedelta(minutes=3)),
        "agent_id": event["host_id"],
        "agent_hostname": event.get("host_name"),
        "event_type": "NETWORK",
        "event_sub_type": sub_type,
        "action_local_ip": event["local_ip"],
        "action_local_port": event["local_port"],
        "action_remote_ip": event["remote_ip"],
        "action_remote_port": event["remote_port"],
        "action_network_protocol": (event.get("protocol") or "tcp").upper(),
        "actor_process_image_name": event.get("actor_process_name"),
        "actor_process_image_path": event.get("actor_process_path"),
        "actor_process_os_pid": event.get("actor_process_pid"),
        "actor_process_command_line": event.get("actor_process_command_line"),
        "actor_process_image_sha256": event.get("actor_process_sha256"),
        "causality_actor_process_image_name": event.get("causality_process_name"),
        "causality_actor_process_image_path": event.get("causality_process_path"),
        "actor_effective_username": event.get("user_name"),
    }


def xdr_jsonl(event: Event, record: int) -> str:
    """A Cortex XDR `xdr_data` network row as JSON."""
    return json.dumps(_xdr_values(event, record))


def xdr_csv_lines(events: Iterable[Event], first_record: int = 1) -> list[str]:
    """A Cortex XDR `xdr_data` export as CSV with a header line."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=XDR_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record, event in enumerate(events, start=first_record):
        writer.writerow({name: "" if value is None else value for name, value in _xdr_values(event, record).items()})
    # `str.splitlines` would also split at `\x0c`, `\x85`, `\u2028` and other
    # characters that Spark's text reader keeps inside a line.
    return buffer.getvalue().removesuffix("\n").split("\n")


def ocsf(event: Event, record: int) -> str:
    """An OCSF Network Activity (class 4001) event."""
    source_ip, source_port, dest_ip, dest_port = _initiator(event)
    failed = event.get("outcome") in ("failure", "blocked")
    outcome = {"success": 1, "failure": 2}.get(event.get("outcome") or "", 0)
    process: dict[str, Any] = {
        "pid": event.get("actor_process_pid"),
        "cmd_line": event.get("actor_process_command_line"),
    }
    process["file"] = {"name": event.get("actor_process_name"), "path": event.get("actor_process_path")}
    process["parent_process"] = {
        "file": {"name": event.get("causality_process_name"), "path": event.get("causality_process_path")}
    }
    user = event.get("user_name") or ""
    domain, _, name = user.rpartition("\\")
    line = {
        "class_uid": 4001,
        "category_uid": 4,
        "activity_id": 4 if failed else 1,
        "status_id": outcome,
        "time": _millis(_time(event)),
        "metadata": {"uid": f"ocsf-{record}", "version": "1.1.0"},
        "device": {"uid": event["host_id"], "hostname": event.get("host_name"), "ip": event["local_ip"]},
        "src_endpoint": {"ip": source_ip, "port": source_port},
        "dst_endpoint": {"ip": dest_ip, "port": dest_port},
        "connection_info": {
            "direction_id": 2 if event["direction"] == "outbound" else 1,
            "protocol_name": event.get("protocol") or "tcp",
        },
        "actor": {"process": process, "user": {"name": name or None, "domain": domain or None}},
    }
    return json.dumps(line)


LINE_WRITERS: dict[str, Callable[[Event, int], str]] = {
    "sysmon_otrf": sysmon_otrf,
    "sysmon_evtx": sysmon_evtx,
    "sysmon_ecs": sysmon_ecs,
    "security_5156": security_5156,
    "zeek_conn_json": zeek_conn_json,
    "zeek_conn_json_underscore": lambda event, record: zeek_conn_json(event, record, dotted=False),
    "cortex_xdr_jsonl": xdr_jsonl,
    "ocsf": ocsf,
}
FILE_WRITERS: dict[str, Callable[[Iterable[Event], int], list[str]]] = {
    "zeek_conn_tsv": zeek_conn_tsv_lines,
    "cortex_xdr_csv": xdr_csv_lines,
}
FILE_SUFFIXES = {"zeek_conn_tsv": ".log", "cortex_xdr_csv": ".csv"}
OUTPUT_FORMATS = ("canonical", *LINE_WRITERS, *FILE_WRITERS)


def format_lines(events: list[Event], output_format: str, first_record: int = 1) -> list[str]:
    """Lines of a file in `output_format` holding `events` (canonical dicts).

    Record numbers (Windows record ids, XDR and OCSF event ids) start at
    `first_record`; two files with the same numbers hold the same records.
    """
    if output_format == "canonical":
        return [json.dumps(event) for event in events]
    if output_format in FILE_WRITERS:
        return FILE_WRITERS[output_format](events, first_record)
    if output_format in LINE_WRITERS:
        writer = LINE_WRITERS[output_format]
        return [writer(event, record) for record, event in enumerate(events, start=first_record)]
    raise ValueError(f"unknown output format {output_format!r}: use one of {', '.join(OUTPUT_FORMATS)}")


def write_format(events_dir: Path, out_dir: Path, output_format: str) -> list[Path]:
    """Convert every generated `events-*.jsonl` file in `events_dir` to `output_format` under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(events_dir.glob("events-*.jsonl")):
        with source.open(encoding="utf-8") as handle:
            events = [json.loads(line) for line in handle if line.strip()]
        suffix = FILE_SUFFIXES.get(output_format, ".jsonl")
        target = out_dir / f"{source.stem}-{output_format}{suffix}"
        target.write_text("\n".join(format_lines(events, output_format)) + "\n", encoding="utf-8")
        written.append(target)
    return written
