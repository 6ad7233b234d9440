"""Ingest: adapters, normalisation, quarantine, deduplication and reconciled counts."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import Config
from smb_fanout.ingest.job import parse_files, run_ingest
from smb_fanout.ingest.reader import InputFileError
from smb_fanout.tables import Tables
from tests.conftest import FIXTURES, real_data

CANONICAL = {
    "event_id": "e-1",
    "event_time": "2026-11-02T10:15:00.250Z",
    "host_id": "host-a",
    "host_name": "WS-A",
    "local_ip": "10.0.0.5",
    "local_port": 50000,
    "remote_ip": "10.0.0.9",
    "remote_port": 445,
    "direction": "outbound",
    "protocol": "tcp",
    "outcome": "success",
    "actor_process_name": "System",
    "actor_process_path": None,
    "actor_process_pid": 4,
    "actor_process_command_line": None,
    "actor_process_sha256": None,
    "causality_process_name": "explorer.exe",
    "causality_process_path": "C:\\Windows\\explorer.exe",
    "user_name": "CORP\\alice",
}


def write_lines(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def event(**changes: object) -> str:
    return json.dumps(CANONICAL | changes)


def test_canonical_row_written(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [event()])
    result = run_ingest(spark, config, [path], "canonical")
    row = Tables(config).network_events.read(spark).first()
    assert result.rows_written == 1
    assert row is not None
    assert row["event_time"] == datetime(2026, 11, 2, 10, 15, 0, 250000)
    assert row["remote_ip"] == "10.0.0.9"
    assert row["remote_port"] == 445
    assert row["actor_process_pid"] == 4
    assert row["source_row"] == 1
    assert row["source_file"].endswith("a.jsonl")


def test_bad_rows_quarantined_with_reason(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    lines = [
        event(event_id="ok"),
        "{not json",
        event(event_id="t", event_time="yesterday"),
        event(event_id="d", direction="sideways"),
        event(event_id="i", remote_ip="10.0.0.999"),
        event(event_id="p", remote_port="http"),
        event(event_id="h", host_id=None),
        "",
        event(event_id="m", event_time=None),
    ]
    path = write_lines(tmp_path / "bad.jsonl", lines)
    result = run_ingest(spark, config, [path], "canonical")
    quarantined = {
        (row["source_row"], row["reason"]) for row in Tables(config).quarantined_events.read(spark).collect()
    }
    assert quarantined == {
        (2, "invalid_json"),
        (3, "invalid_event_time"),
        (4, "unknown_direction"),
        (5, "invalid_remote_ip"),
        (6, "invalid_remote_port"),
        (7, "missing_host_id"),
        (9, "missing_event_time"),
    }
    assert result.rows_written == 1
    assert result.rows_read == result.rows_written + result.rows_quarantined + result.duplicates_removed


def test_quarantine_keeps_raw_text(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ["{not json"])
    run_ingest(spark, config, [path], "canonical")
    row = Tables(config).quarantined_events.read(spark).first()
    assert row is not None
    assert row["raw"] == "{not json"


def test_rerun_counts_duplicates(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [event(event_id="x1"), event(event_id="x2"), event(event_id="x1")])
    first = run_ingest(spark, config, [path], "canonical")
    second = run_ingest(spark, config, [path], "canonical")
    ids = sorted(row["event_id"] for row in Tables(config).network_events.read(spark).collect())
    assert (first.rows_written, first.duplicates_removed) == (2, 1)
    assert (second.rows_written, second.duplicates_removed) == (0, 3)
    assert ids == ["x1", "x2"]


def test_duplicates_found_without_reading_other_days(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    # The first day's files are deleted behind Delta's back: an ingest that
    # read the whole table to find duplicates would fail on them.
    events_table = Tables(config).network_events
    run_ingest(spark, config, [write_lines(tmp_path / "day1.jsonl", [event(event_id="old")])], "canonical")
    first_day_files = set(events_table.read(spark).inputFiles())
    later = [event(event_id="kept", event_time="2026-11-04T09:00:00Z")]
    run_ingest(spark, config, [write_lines(tmp_path / "day3.jsonl", later)], "canonical")
    for uri in first_day_files:
        Path(uri.removeprefix("file:")).unlink()

    again = [*later, event(event_id="new", event_time="2026-11-05T09:00:00Z")]
    result = run_ingest(spark, config, [write_lines(tmp_path / "again.jsonl", again)], "canonical")

    assert result.rows_written == 1
    assert result.duplicates_removed == 1
    stored = events_table.read(spark).where(F.col("event_date") >= "2026-11-04")
    assert sorted(row["event_id"] for row in stored.collect()) == ["kept", "new"]


def test_duplicate_keeps_first_row(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "a.jsonl", [event(event_id="same", host_name="FIRST"), event(event_id="same", host_name="SECOND")]
    )
    run_ingest(spark, config, [path], "canonical")
    names = [row["host_name"] for row in Tables(config).network_events.read(spark).collect()]
    assert names == ["FIRST"]


def test_epoch_and_offset_times(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    lines = [
        event(event_id="s", event_time=1793614500),
        event(event_id="ms", event_time="1793614500250"),
        event(event_id="off", event_time="2026-11-02T12:15:00+02:00"),
    ]
    run_ingest(spark, config, [write_lines(tmp_path / "t.jsonl", lines)], "canonical")
    times = {row["event_id"]: row["event_time"] for row in Tables(config).network_events.read(spark).collect()}
    assert times == {
        "s": datetime(2026, 11, 2, 10, 15),
        "ms": datetime(2026, 11, 2, 10, 15, 0, 250000),
        "off": datetime(2026, 11, 2, 10, 15),
    }


def test_credentials_redacted(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    lines = [
        event(event_id="net", actor_process_command_line="net use \\\\fs01\\c$ /user:CORP\\admin S3cret!"),
        event(event_id="psexec", actor_process_command_line="PsExec.exe \\\\ws7 -u admin -p Hunter2 cmd"),
        event(event_id="long", actor_process_command_line="tool.exe --password=abc123 --host x"),
        event(event_id="hash", actor_process_command_line="wmiexec.py -hashes aad3b435:8846f7ea admin@10.0.0.9"),
    ]
    run_ingest(spark, config, [write_lines(tmp_path / "c.jsonl", lines)], "canonical")
    lines_by_id = {
        row["event_id"]: row["actor_process_command_line"]
        for row in Tables(config).network_events.read(spark).collect()
    }
    assert lines_by_id["net"] == "net use \\\\fs01\\c$ /user:CORP\\admin [REDACTED]"
    assert lines_by_id["psexec"] == "PsExec.exe \\\\ws7 -u admin -p [REDACTED] cmd"
    assert lines_by_id["long"] == "tool.exe --password=[REDACTED] --host x"
    assert lines_by_id["hash"] == "wmiexec.py -hashes [REDACTED] admin@10.0.0.9"


def test_only_quarantined_rows_keep_raw_text(spark: SparkSession, tmp_path: Path) -> None:
    secret = "PsExec.exe \\\\ws7 -u admin -p Hunter2 cmd"
    without_id = json.dumps(
        {key: value for key, value in CANONICAL.items() if key != "event_id"} | {"actor_process_command_line": secret}
    )
    lines = [without_id, event(event_id="bad", direction="sideways", actor_process_command_line=secret)]
    parsed = parse_files(spark, [write_lines(tmp_path / "a.jsonl", lines)], "canonical")
    rows = {row["source_row"]: row for row in parsed.collect()}

    assert rows[1]["raw"] is None
    # The key of a row without an id is still taken over its redacted text.
    redacted_line = without_id.replace("Hunter2", "[REDACTED]")
    assert rows[1]["event_id"] == hashlib.sha256(f"canonical|{redacted_line}".encode()).hexdigest()
    assert rows[2]["reason"] == "unknown_direction"
    assert "-p [REDACTED] cmd" in rows[2]["raw"]
    assert "Hunter2" not in rows[2]["raw"]


def test_missing_file_named(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nothing-here\.jsonl"):
        run_ingest(spark, config, [str(tmp_path / "nothing-here.jsonl")], "canonical")


def test_parquet_canonical(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    values = CANONICAL | {"event_id": "pq", "remote_port": 139}
    schema = ", ".join(f"{name} {'bigint' if name.endswith(('port', 'pid')) else 'string'}" for name in values)
    spark.createDataFrame([tuple(values.values())], schema).write.parquet(str(tmp_path / "pq"))
    result = run_ingest(spark, config, [str(tmp_path / "pq")], "auto")
    row = Tables(config).network_events.read(spark).first()
    assert result.rows_written == 1
    assert row is not None
    assert row["remote_port"] == 139
    assert row["source_row"] >= 1


def test_mordor_sysmon_and_wfp(spark: SparkSession, config: Config) -> None:
    path = FIXTURES / "mordor" / "purplesharp_ad_playbook_I_smb_2020-10-22042947.jsonl"
    result = run_ingest(spark, config, [str(path)], "auto")
    events = Tables(config).network_events.read(spark)
    outbound = events.where((F.col("direction") == "outbound") & (F.col("host_id") == "workstation5.theshire.local"))
    destinations = sorted({row["remote_ip"] for row in outbound.collect()})
    sysmon_system = outbound.where(F.col("actor_process_name") == "System").where(F.col("actor_process_pid") == 4)
    first_sysmon = events.where(F.col("event_id").isNotNull()).orderBy("event_time").first()
    assert result.rows_written == 36
    assert result.rows_quarantined == 0
    assert destinations == ["172.18.38.5", "172.18.39.6", "172.18.39.7"]
    assert sysmon_system.count() == 6
    assert first_sysmon is not None
    # Sysmon UtcTime (08:29:53.017), not the collector's @timestamp or local EventTime.
    assert first_sysmon["event_time"] == datetime(2020, 10, 22, 8, 29, 53, 17000)


def test_mordor_other_events_quarantined(spark: SparkSession, config: Config) -> None:
    path = FIXTURES / "mordor" / "covenant_copy_smb_CreateRequest_2020-09-22145302.jsonl"
    result = run_ingest(spark, config, [str(path)], "auto")
    shares = Tables(config).network_events.read(spark).where(F.col("source_format") == "windows_share_access")
    assert result.rows_read == 38
    # 28 Security 5156, 3 Sysmon 3 and 5 share-access events (5140, 5145); two logons (4624) are not network events.
    assert result.rows_written == 36
    assert result.quarantine_reasons == {"unsupported_event_id": 2}
    assert {(row["host_id"], row["remote_ip"], row["direction"]) for row in shares.collect()} == {
        ("workstation6.theshire.local", "172.18.39.5", "inbound")
    }


def test_evtx_userhunter_trace(spark: SparkSession, config: Config) -> None:
    path = real_data(
        "evtx-attack-samples-smb", "events", "Discovery__discovery_sysmon_3_Invoke_UserHunter_SourceMachine.evtx.jsonl"
    )
    run_ingest(spark, config, [str(path)], "sysmon")
    smb = Tables(config).network_events.read(spark).where(F.col("remote_port") == 445)
    rows = smb.orderBy("remote_ip").collect()
    assert [row["remote_ip"] for row in rows] == [
        "10.59.4.11",
        "10.59.4.12",
        "10.59.4.21",
        "10.59.4.22",
        "10.59.4.23",
        "10.59.4.24",
        "10.59.4.25",
    ]
    assert {row["host_id"] for row in rows} == {"alice.insecurebank.local"}
    assert {row["actor_process_name"] for row in rows} == {"System"}
