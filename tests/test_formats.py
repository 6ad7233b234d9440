"""Every input format, written by the generator and read back with `--format auto`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from pyspark.sql import SparkSession

from smb_fanout.config import load_config
from smb_fanout.generator.formats import FILE_SUFFIXES, OUTPUT_FORMATS, _expanded, format_lines
from smb_fanout.ingest.job import IngestResult, run_ingest
from smb_fanout.tables import Tables

BASE: dict[str, Any] = {
    "host_id": "agent-ws1",
    "host_name": "WS1.corp.local",
    "local_ip": "10.0.0.5",
    "protocol": "tcp",
    "actor_process_name": "System",
    "actor_process_path": None,
    "actor_process_pid": 4,
    "actor_process_command_line": None,
    "actor_process_sha256": None,
    "causality_process_name": None,
    "causality_process_path": None,
    "user_name": None,
}
EVENTS: list[dict[str, Any]] = [
    BASE
    | {
        "event_id": "kernel",
        "event_time": "2026-11-02T10:15:00.250Z",
        "local_port": 50000,
        "remote_ip": "10.0.0.9",
        "remote_port": 445,
        "direction": "outbound",
        "outcome": "success",
    },
    BASE
    | {
        "event_id": "tool",
        "event_time": "2026-11-02T10:15:01.500Z",
        "local_port": 50001,
        "remote_ip": "10.0.0.10",
        "remote_port": 445,
        "direction": "outbound",
        "outcome": "failure",
        "actor_process_name": "PsExec.exe",
        "actor_process_path": "C:\\Tools\\PsExec.exe",
        "actor_process_pid": 4412,
        "actor_process_command_line": "PsExec.exe \\\\10.0.0.10 -u CORP\\admin -p Winter2026! cmd",
        "causality_process_name": "cmd.exe",
        "causality_process_path": "C:\\Windows\\System32\\cmd.exe",
        "user_name": "CORP\\admin",
    },
    BASE
    | {
        "event_id": "v6",
        "event_time": "2026-11-02T23:59:59.999Z",
        "local_ip": "fd00::5",
        "local_port": 50002,
        "remote_ip": "fd00:0:0:0:0:0:0:a",
        "remote_port": 139,
        "direction": "outbound",
        "outcome": "success",
    },
    # The server side of the first connection.
    BASE
    | {
        "event_id": "server",
        "event_time": "2026-11-02T10:15:00.250Z",
        "host_id": "agent-fs1",
        "host_name": "FS1.corp.local",
        "local_ip": "10.0.0.9",
        "local_port": 445,
        "remote_ip": "10.0.0.5",
        "remote_port": 50000,
        "direction": "inbound",
        "outcome": "success",
    },
]
ZEEK_FORMATS = ("zeek_conn_json", "zeek_conn_json_underscore", "zeek_conn_tsv")
SOURCE_FORMATS = {
    "canonical": "canonical",
    "sysmon_otrf": "windows",
    "sysmon_evtx": "windows",
    "sysmon_ecs": "windows",
    "security_5156": "windows",
    "zeek_conn_json": "zeek_conn",
    "zeek_conn_json_underscore": "zeek_conn",
    "zeek_conn_tsv": "zeek_conn",
    "cortex_xdr_jsonl": "cortex_xdr",
    "cortex_xdr_csv": "cortex_xdr",
    "ocsf": "ocsf",
}


@pytest.fixture(scope="module")
def ingested(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> tuple[IngestResult, dict[str, list[Any]]]:
    """One ingest run over every output format; rows grouped by the file's format."""
    folder = tmp_path_factory.mktemp("formats")
    # Each file gets its own record numbers, because the Sysmon encodings of one
    # record (or XDR's CSV and JSON) are duplicates of each other.
    for index, output_format in enumerate(OUTPUT_FORMATS):
        path = folder / f"sample-{output_format}{FILE_SUFFIXES.get(output_format, '.jsonl')}"
        lines = format_lines(EVENTS, output_format, first_record=100 * index + 1)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = load_config("local", [f"storage.local_root={folder / 'out'}"])
    result = run_ingest(spark, config, [str(folder)], "auto")
    rows: dict[str, list[Any]] = {name: [] for name in OUTPUT_FORMATS}
    for row in Tables(config).network_events.read(spark).collect():
        name = row["source_file"].rsplit("sample-", 1)[1].rsplit(".", 1)[0]
        rows[name].append(row)
    return result, rows


def test_every_format_read(ingested: tuple[IngestResult, dict[str, list[Any]]]) -> None:
    result, _ = ingested
    assert result.rows_quarantined == 0, result.quarantine_reasons
    assert result.rows_read == result.rows_written + result.duplicates_removed
    assert set(OUTPUT_FORMATS) == {"canonical", *SOURCE_FORMATS}


@pytest.mark.parametrize("output_format", [name for name in SOURCE_FORMATS if name not in ZEEK_FORMATS])
def test_endpoint_format_round_trip(output_format: str, ingested: tuple[IngestResult, dict[str, list[Any]]]) -> None:
    _, rows = ingested
    got = {
        (row["direction"], row["remote_ip"], row["remote_port"], row["local_ip"], row["event_time"])
        for row in rows[output_format]
    }
    assert got == {
        ("outbound", "10.0.0.9", 445, "10.0.0.5", datetime(2026, 11, 2, 10, 15, 0, 250000)),
        ("outbound", "10.0.0.10", 445, "10.0.0.5", datetime(2026, 11, 2, 10, 15, 1, 500000)),
        ("outbound", "fd00::a", 139, "fd00::5", datetime(2026, 11, 2, 23, 59, 59, 999000)),
        ("inbound", "10.0.0.5", 50000, "10.0.0.9", datetime(2026, 11, 2, 10, 15, 0, 250000)),
    }
    assert {row["source_format"] for row in rows[output_format]} == {SOURCE_FORMATS[output_format]}


@pytest.mark.parametrize("output_format", [name for name in SOURCE_FORMATS if name not in ZEEK_FORMATS])
def test_endpoint_format_process(output_format: str, ingested: tuple[IngestResult, dict[str, list[Any]]]) -> None:
    _, rows = ingested
    by_port = {row["local_port"]: row for row in rows[output_format]}
    kernel, tool = by_port[50000], by_port[50001]
    assert (kernel["actor_process_name"], kernel["actor_process_pid"]) == ("System", 4)
    assert tool["actor_process_pid"] == 4412
    assert tool["actor_process_name"].lower() == "psexec.exe"
    if tool["actor_process_command_line"] is not None:
        assert tool["actor_process_command_line"] == "PsExec.exe \\\\10.0.0.10 -u CORP\\admin -p [REDACTED] cmd"


def test_windows_host_is_computer_name(ingested: tuple[IngestResult, dict[str, list[Any]]]) -> None:
    _, rows = ingested
    for name in ("sysmon_otrf", "sysmon_evtx", "sysmon_ecs", "security_5156"):
        assert {row["host_id"] for row in rows[name]} == {"ws1.corp.local", "fs1.corp.local"}, name


def test_xdr_and_ocsf_keep_agent_and_outcome(ingested: tuple[IngestResult, dict[str, list[Any]]]) -> None:
    _, rows = ingested
    for name in ("cortex_xdr_jsonl", "cortex_xdr_csv", "ocsf"):
        outcomes = {row["local_port"]: (row["host_id"], row["outcome"]) for row in rows[name]}
        assert outcomes[50000] == ("agent-ws1", "success"), name
        assert outcomes[50001] == ("agent-ws1", "failure"), name
        causality = {row["causality_process_name"] for row in rows[name]}
        assert "cmd.exe" in causality, name


def test_zeek_both_ends_counted_once(ingested: tuple[IngestResult, dict[str, list[Any]]]) -> None:
    result, rows = ingested
    zeek_rows = [row for name in ZEEK_FORMATS for row in rows[name]]
    # Three encodings of three connections: the client's and the server's
    # view of the first connection is one connection, seen from its originator.
    got = {(row["host_id"], row["remote_ip"], row["remote_port"], row["outcome"]) for row in zeek_rows}
    assert got == {
        ("ip:10.0.0.5", "10.0.0.9", 445, "success"),
        ("ip:10.0.0.5", "10.0.0.10", 445, "failure"),
        ("ip:fd00::5", "fd00::a", 139, "success"),
    }
    assert len(zeek_rows) == 3
    zeek_files = [counts for counts in result.files if "zeek" in counts.source_file]
    assert sum(counts.duplicates_removed for counts in zeek_files) == 3 * 4 - 3


@pytest.mark.parametrize(
    ("address", "written"),
    [
        ("fe80::1%3", "fe80:0:0:0:0:0:0:1%3"),
        ("fd00::a", "fd00:0:0:0:0:0:0:a"),
        ("10.0.0.9", "10.0.0.9"),
    ],
)
def test_expanded_ipv6_keeps_zone_id(address: str, written: str) -> None:
    assert _expanded(address) == written
