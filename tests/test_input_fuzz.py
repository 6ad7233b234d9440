"""Property and fuzz tests: random and mutated rows never crash ingest, and the counts always reconcile."""

from __future__ import annotations

import json
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from smb_fanout import schemas
from smb_fanout.generator.formats import FILE_SUFFIXES, format_lines
from smb_fanout.ingest.job import QUARANTINED, classify_rows, parse_files

# Generator output format and the `--format` that reads it.
ADAPTER_SAMPLES = {
    "canonical": "canonical",
    "sysmon_otrf": "sysmon",
    "sysmon_ecs": "sysmon",
    "security_5156": "windows_security",
    "zeek_conn_json": "zeek",
    "zeek_conn_tsv": "zeek",
    "cortex_xdr_csv": "cortex_xdr",
    "cortex_xdr_jsonl": "cortex_xdr",
    "ocsf": "ocsf",
}
FUZZ_ROWS = 10_000
JUNK = ['"', "\\", ",", "\t", "{", "}", "[", "]", ":", "-", "\u00e9", "\u0000", "\u2028", "%", "'", " ", "9", "."]
ODD_VALUES: list[Any] = [None, "", "-", "(empty)", 0, -1, 65536, 1e308, "abc", [], {}, True, "1" * 300, "::ffff:1.2.3"]


def _event(rng: random.Random, index: int) -> dict[str, Any]:
    outbound = rng.random() < 0.7
    return {
        "event_id": f"fuzz-{index}",
        "event_time": datetime.fromtimestamp(1_700_000_000 + rng.randrange(10**7), UTC).isoformat(),
        "host_id": f"agent-{rng.randrange(50)}",
        "host_name": f"WS{rng.randrange(50)}.corp.local",
        "local_ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
        "local_port": rng.randrange(65536),
        "remote_ip": rng.choice(["10.0.0.9", "fd00::a", "::ffff:10.1.1.1", "fe80::1%3"]),
        "remote_port": rng.choice([445, 139, 443, 50000]),
        "direction": "outbound" if outbound else "inbound",
        "protocol": rng.choice(["tcp", "udp"]),
        "outcome": rng.choice(["success", "failure", "unknown"]),
        "actor_process_name": rng.choice(["System", "powershell.exe"]),
        "actor_process_path": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "actor_process_pid": rng.choice([4, 4092, None]),
        "actor_process_command_line": "net use \\\\fs1\\c$ /user:corp\\a P@ss",
        "actor_process_sha256": None,
        "causality_process_name": "cmd.exe",
        "causality_process_path": None,
        "user_name": "CORP\\alice",
    }


def _mutate_json(line: str, rng: random.Random) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return line
    if not isinstance(record, dict) or not record:
        return line
    key = rng.choice(sorted(record))
    action = rng.randrange(3)
    if action == 0:
        record[key] = rng.choice(ODD_VALUES)
    elif action == 1:
        del record[key]
    else:
        record[key.upper() if rng.random() < 0.5 else key + "_"] = record[key]
    return json.dumps(record)


def _mutate_text(line: str, rng: random.Random) -> str:
    position = rng.randrange(len(line) + 1)
    action = rng.randrange(4)
    if action == 0:
        return line[:position]
    if action == 1:
        return line[:position] + rng.choice(JUNK) + line[position:]
    if action == 2:
        return line[:position] + line[position + 1 :]
    return line[:position] + line[position:].replace(",", "\t", 1).replace("\t", ",", 1)


def malformed_lines(output_format: str, count: int, seed: int) -> list[str]:
    """`count` data lines of `output_format`, most of them mutated, plus the format's header lines."""
    rng = random.Random(seed)
    events = [_event(rng, index) for index in range(count)]
    lines = format_lines(events, output_format)
    header = [line for line in lines if line.startswith("#")] if output_format == "zeek_conn_tsv" else []
    if output_format == "cortex_xdr_csv":
        header = lines[:1]
    data = [line for line in lines if line not in header]
    mutated = []
    for line in data:
        roll = rng.random()
        if roll < 0.45:
            mutated.append(_mutate_json(line, rng) if line.startswith("{") else _mutate_text(line, rng))
        elif roll < 0.9:
            mutated.append(_mutate_text(line, rng))
        else:
            mutated.append(line)
    return header + mutated


def _count_statuses(spark: SparkSession, files: dict[Path, str]) -> dict[str, dict[str, int]]:
    """Parse and classify all files as one DataFrame; one row of counts per file reaches the driver."""
    empty = spark.createDataFrame([], schemas.struct_type(schemas.NETWORK_EVENTS))
    frames: list[DataFrame] = [
        classify_rows(parse_files(spark, [str(path)], input_format), empty) for path, input_format in files.items()
    ]
    classified = frames[0]
    for frame in frames[1:]:
        classified = classified.unionByName(frame)
    rows = (
        classified.groupBy("source_file")
        .agg(
            F.count(F.lit(1)).alias("read"),
            F.sum(F.when(F.col("status") == "written", 1).otherwise(0)).alias("written"),
            F.sum(F.when(F.col("status") == QUARANTINED, 1).otherwise(0)).alias("quarantined"),
            F.sum(F.when(F.col("status") == "duplicate", 1).otherwise(0)).alias("duplicates"),
            F.sum(F.when((F.col("status") == QUARANTINED) & F.col("reason").isNull(), 1).otherwise(0)).alias(
                "without_reason"
            ),
            F.sum(F.when((F.col("status") != QUARANTINED) & F.col("reason").isNotNull(), 1).otherwise(0)).alias(
                "written_with_reason"
            ),
        )
        .collect()
    )
    return {Path(row["source_file"]).name: row.asDict() for row in rows}


def _data_line_count(lines: list[str], output_format: str) -> int:
    if output_format == "zeek_conn_tsv":
        return sum(1 for line in lines if line.strip() and not line.startswith("#"))
    if output_format == "cortex_xdr_csv":
        return sum(1 for line in lines[1:] if line.strip())
    return sum(1 for line in lines if line.strip())


def test_fuzz_every_adapter(spark: SparkSession, tmp_path: Path) -> None:
    files: dict[Path, str] = {}
    expected: dict[str, int] = {}
    for seed, (output_format, input_format) in enumerate(ADAPTER_SAMPLES.items()):
        lines = malformed_lines(output_format, FUZZ_ROWS, seed)
        path = tmp_path / f"fuzz-{output_format}{FILE_SUFFIXES.get(output_format, '.jsonl')}"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files[path] = input_format
        expected[path.name] = _data_line_count(lines, output_format)
    counts = _count_statuses(spark, files)
    assert set(counts) == set(expected)
    for name, row in counts.items():
        # `expected` leaves out the lines that the fuzzer truncated to nothing,
        # because blank lines are not rows. Splitting a line on a mutated line
        # break can add a line, never remove one.
        assert row["read"] >= expected[name], name
        assert row["read"] == row["written"] + row["quarantined"] + row["duplicates"], name
        assert row["quarantined"] > 0, name
        assert row["written"] > 0, name
        assert row["without_reason"] == 0, name
        assert row["written_with_reason"] == 0, name


SYSMON_EVENT: dict[str, Any] = {
    "event_id": "sysmon-1",
    "event_time": "2026-11-02T10:15:00Z",
    "host_id": "ws1.corp.local",
    "host_name": "WS1.corp.local",
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
    "causality_process_name": None,
    "causality_process_path": None,
    "user_name": None,
}


def _classified_rows(spark: SparkSession, path: Path, input_format: str) -> dict[int, Row]:
    """Classify the rows of one file and return them by line number."""
    empty = spark.createDataFrame([], schemas.struct_type(schemas.NETWORK_EVENTS))
    classified = classify_rows(parse_files(spark, [str(path)], input_format), empty)
    return {row["source_row"]: row for row in classified.collect()}


def test_sysmon_blank_lines_not_rows(spark: SparkSession, tmp_path: Path) -> None:
    # The fuzz file that seemed to lose 4 Sysmon rows had 4 lines truncated at
    # position 0, so they were empty, and lines with U+2028 inside and outside strings.
    first, second, third = format_lines([SYSMON_EVENT] * 3, "sysmon_otrf")
    outside_string = second.replace('"WS1.corp.local"', '"WS1.corp.local"\u2028')
    inside_string = third.replace('"WS1.corp.local"', '"WS1.corp.lo\u2028cal"')
    path = tmp_path / "sysmon.jsonl"
    path.write_text("\n".join([first, "", outside_string, "   ", inside_string]) + "\n", encoding="utf-8")

    rows = _classified_rows(spark, path, "sysmon")

    assert sorted(rows) == [1, 3, 5]
    assert rows[1]["status"] == "written"
    assert rows[3]["status"] == QUARANTINED
    assert rows[3]["reason"] == "invalid_json"
    assert rows[3]["raw"] == outside_string
    assert rows[5]["status"] == "written"
    assert rows[5]["host_name"] == "WS1.corp.lo\u2028cal"


# Line breaks are left out: a CSV field with a line break is not read (see docs/inputs.md).
_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\n\r"), max_size=40
)
_EVENTS = st.fixed_dictionaries(
    {
        "event_id": st.uuids().map(str),
        "event_time": st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)).map(
            lambda moment: moment.isoformat() + "Z"
        ),
        "host_id": st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
        "host_name": st.from_regex(r"[A-Z][A-Z0-9-]{0,14}", fullmatch=True),
        "local_ip": st.ip_addresses().map(str),
        "local_port": st.integers(0, 65535),
        "remote_ip": st.ip_addresses().map(str),
        "remote_port": st.integers(0, 65535),
        "direction": st.sampled_from(["outbound", "inbound"]),
        "protocol": st.sampled_from(["tcp", "udp"]),
        "outcome": st.sampled_from(["success", "failure"]),
        "actor_process_name": st.sampled_from(["System", "svc.exe"]),
        "actor_process_path": st.none() | st.just("C:\\Windows\\svc.exe"),
        "actor_process_pid": st.none() | st.integers(0, 2**31),
        "actor_process_command_line": st.none() | _TEXT,
        "actor_process_sha256": st.none(),
        "causality_process_name": st.none() | _TEXT,
        "causality_process_path": st.none(),
        "user_name": st.none() | st.just("CORP\\alice"),
    }
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(_EVENTS, min_size=1, max_size=6, unique_by=lambda event: event["event_id"]),
    junk=st.lists(_TEXT.filter(lambda text: text.lstrip("\ufeff").strip(" ") != ""), max_size=4),
)
def test_property_valid_rows_written(
    spark: SparkSession, tmp_path: Path, events: list[dict[str, Any]], junk: list[str]
) -> None:
    # Hypothesis seeds `random` per example, so the folder name comes from tempfile.
    folder = Path(tempfile.mkdtemp(prefix="example-", dir=tmp_path))
    files: dict[Path, str] = {}
    for output_format, input_format in ADAPTER_SAMPLES.items():
        path = folder / f"valid-{output_format}{FILE_SUFFIXES.get(output_format, '.jsonl')}"
        path.write_text("\n".join(format_lines(events, output_format)) + "\n", encoding="utf-8")
        files[path] = input_format
    junk_path = folder / "junk.jsonl"
    junk_path.write_text("\n".join(junk) + "\n", encoding="utf-8")
    files[junk_path] = "auto"
    counts = _count_statuses(spark, files)
    for name, row in counts.items():
        assert row["read"] == row["written"] + row["quarantined"] + row["duplicates"], name
        if name.startswith("valid-"):
            assert row["quarantined"] == 0, name
            assert row["read"] == len(events), name
    if junk:
        assert counts["junk.jsonl"]["read"] == len(junk)


# An event from a falsifying example of the property test. The generator split
# its CSV row at the form feed (`\x0c`) in the command line, so both halves of
# the row were quarantined as `field_count_mismatch`.
FORM_FEED_EVENT: dict[str, Any] = {
    "event_id": "f4e14107-d4cb-7d79-e1b3-a70537c5a822",
    "event_time": "2069-07-04T14:06:13.020257Z",
    "host_id": "t",
    "host_name": "VRDYO1N001H0XK6",
    "local_ip": "8cca:88c4:cc68:776d:bdaa:d91f:458f:f8fd",
    "local_port": 17741,
    "remote_ip": "76.207.124.12",
    "remote_port": 334,
    "direction": "inbound",
    "protocol": "tcp",
    "outcome": "success",
    "actor_process_name": "svc.exe",
    "actor_process_path": None,
    "actor_process_pid": 52872,
    "actor_process_command_line": "\u00c3\x88\x0f/\x0c\U000e887f",
    "actor_process_sha256": None,
    "causality_process_name": "\x06\x01\U000436a7\U00030b32v\U00016a00\u00f2",
    "causality_process_path": None,
    "user_name": "CORP\\alice",
}


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_xdr_csv_row_one_line(separator: str) -> None:
    event = FORM_FEED_EVENT | {"actor_process_command_line": f"net{separator}use"}

    lines = format_lines([event], "cortex_xdr_csv")

    assert len(lines) == 2
    assert f"net{separator}use" in lines[1]


def test_xdr_csv_form_feed_row_written(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "xdr.csv"
    path.write_text("\n".join(format_lines([FORM_FEED_EVENT], "cortex_xdr_csv")) + "\n", encoding="utf-8")

    rows = _classified_rows(spark, path, "cortex_xdr")

    assert sorted(rows) == [2]
    assert rows[2]["reason"] is None
    assert rows[2]["status"] == "written"
    assert rows[2]["actor_process_command_line"] == FORM_FEED_EVENT["actor_process_command_line"]
    assert rows[2]["causality_process_name"] == FORM_FEED_EVENT["causality_process_name"]
