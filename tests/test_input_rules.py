"""Normalisation rules at their boundaries: time, addresses, direction, processes, credentials, files."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import Config
from smb_fanout.ingest.job import run_ingest
from smb_fanout.ingest.normalize import parse_event_time, utc_date
from smb_fanout.ingest.reader import InputFileError
from smb_fanout.ingest.redact import redact_command_line
from smb_fanout.tables import Tables

# Command lines as attackers and administrators type them, and what is stored.
REDACTION_CASES = [
    ("net use \\\\fs01\\c$ /user:CORP\\admin S3cret!", "net use \\\\fs01\\c$ /user:CORP\\admin [REDACTED]"),
    (
        "net use Z: \\\\fs01\\share /user:corp\\bob Passw0rd /persistent:no",
        "net use Z: \\\\fs01\\share /user:corp\\bob [REDACTED] /persistent:no",
    ),
    ("net use \\\\10.0.0.9\\IPC$ Summer2026 /u:admin", "net use \\\\10.0.0.9\\IPC$ [REDACTED] /u:admin"),
    ("net use \\\\fs01\\share /user:bob *", "net use \\\\fs01\\share /user:bob *"),
    ("net user backdoor P@ssw0rd1 /add", "net user backdoor [REDACTED] /add"),
    ("PsExec.exe \\\\ws7 -u admin -p Hunter2 cmd", "PsExec.exe \\\\ws7 -u admin -p [REDACTED] cmd"),
    ('PsExec64.exe \\\\ws7 -u admin -p "pass word" -s cmd', "PsExec64.exe \\\\ws7 -u admin -p [REDACTED] -s cmd"),
    (
        "schtasks /create /s ws9 /u corp\\adm /p Tr0ub4dor /tn x /tr c:\\x.exe",
        "schtasks /create /s ws9 /u corp\\adm /p [REDACTED] /tn x /tr c:\\x.exe",
    ),
    (
        'wmic /node:ws9 /user:corp\\adm /password:"Tr0ub 4dor" process call create x',
        "wmic /node:ws9 /user:corp\\adm /password:[REDACTED] process call create x",
    ),
    ("cmdkey /add:fs01 /user:corp\\bob /pass:Secret1", "cmdkey /add:fs01 /user:corp\\bob /pass:[REDACTED]"),
    ("tool.exe --password=abc123 --host x", "tool.exe --password=[REDACTED] --host x"),
    ("backup.exe -Password 'It is me' -Target fs01", "backup.exe -Password [REDACTED] -Target fs01"),
    ("wmiexec.py -hashes aad3b435:8846f7ea admin@10.0.0.9", "wmiexec.py -hashes [REDACTED] admin@10.0.0.9"),
    (
        "crackmapexec smb 10.0.0.0/24 -u admin -H 8846f7eaee8fb117ad06bdd830b7586c",
        "crackmapexec smb 10.0.0.0/24 -u admin -H [REDACTED]",
    ),
    ("psexec.py corp/admin:Winter2026@10.0.0.9 cmd", "psexec.py corp/admin:[REDACTED]@10.0.0.9 cmd"),
    (
        'mimikatz.exe "sekurlsa::pth /user:adm /domain:corp /ntlm:8846f7eaee8fb117ad06bdd830b7586c" exit',
        'mimikatz.exe "sekurlsa::pth /user:adm /domain:corp /ntlm:[REDACTED]" exit',
    ),
    (
        "powershell $p = ConvertTo-SecureString 'Winter2026!' -AsPlainText -Force",
        "powershell $p = ConvertTo-SecureString [REDACTED] -AsPlainText -Force",
    ),
    # Ordinary command lines stay as they are.
    ("C:\\Windows\\System32\\svchost.exe -k netsvcs -p", "C:\\Windows\\System32\\svchost.exe -k netsvcs -p"),
    ("net use Z: \\\\fs01\\share", "net use Z: \\\\fs01\\share"),
    ("robocopy \\\\fs01\\share C:\\data /mir", "robocopy \\\\fs01\\share C:\\data /mir"),
]


def test_credentials_redacted_table(spark: SparkSession) -> None:
    frame = spark.createDataFrame(REDACTION_CASES, "command_line string, expected string")
    rows = frame.select("command_line", "expected", redact_command_line(F.col("command_line")).alias("got")).collect()
    for row in rows:
        assert row["got"] == row["expected"], row["command_line"]


TIME_CASES = [
    ("2026-11-02 10:15:00.250", 1793614500250000),
    ("2026-11-02T10:15:00.250Z", 1793614500250000),
    ("2026-11-02T12:15:00.250+02:00", 1793614500250000),
    ("2026-11-02T05:15:00.250-0500", 1793614500250000),
    ("2026-11-02 10:15:00.250000+00:00", 1793614500250000),
    ("1793614500.25", 1793614500250000),
    ("1793614500250", 1793614500250000),
    ("1793614500", 1793614500000000),
    # What Spark's JSON reader makes of the number 1793614500.25.
    ("1.79361450025E9", 1793614500250000),
    ("2026-11-02T23:59:59.999Z", 1793663999999000),
]


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati"])
def test_event_time_independent_of_session_zone(spark: SparkSession, zone: str) -> None:
    frame = spark.createDataFrame([(text,) for text, _ in TIME_CASES], "text string")
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", zone)
    try:
        parsed = parse_event_time(F.col("text"))
        rows = frame.select("text", F.unix_micros(parsed).alias("micros"), utc_date(parsed).alias("day")).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous or "UTC")
    expected = dict(TIME_CASES)
    for row in rows:
        assert row["micros"] == expected[row["text"]], row["text"]
        assert str(row["day"]) == "2026-11-02", row["text"]


def test_event_time_overflowing_number_is_null(spark: SparkSession) -> None:
    # 1.0E308 once failed the whole ingest with CAST_OVERFLOW instead of quarantining the row.
    frame = spark.createDataFrame([("1.0E308",), ("99999999999999999999",), ("1793614500",)], "text string")
    rows = frame.select("text", F.unix_micros(parse_event_time(F.col("text"))).alias("micros")).collect()
    parsed = {row["text"]: row["micros"] for row in rows}
    assert parsed["1.0E308"] is None
    assert parsed["99999999999999999999"] is None
    assert parsed["1793614500"] == 1793614500000000


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _sysmon(record: int, **fields: object) -> str:
    line = {
        "EventID": 3,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "WS1.corp.local",
        "EventRecordID": record,
        "UtcTime": "2026-11-02 10:15:00.250",
        "EventTime": "2026-11-02 06:15:00",
        "Image": "System",
        "ProcessId": "4",
        "Protocol": "tcp",
        "Initiated": "true",
        "SourceIp": "10.0.0.5",
        "SourcePort": "50000",
        "DestinationIp": "10.0.0.9",
        "DestinationPort": "445",
    }
    return json.dumps(line | fields)


def test_windows_boundaries(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    lines = [
        _sysmon(1),
        _sysmon(2, DestinationIp="fe80:0:0:0:3816:b2ee:1b9b:324b%12", SourceIp="fe80::1"),
        _sysmon(3, DestinationIp="0:0:0:0:0:ffff:a00:9", DestinationPort="139"),
        _sysmon(4, DestinationIp="FD00:0000:0000:0000:0000:0000:0000:000A"),
        _sysmon(5, Initiated="maybe"),
        _sysmon(6, Image=None, ProcessId=None),
        _sysmon(7, Image="-", ProcessId="-"),
        _sysmon(1),
        json.dumps(
            {
                "EventID": 5156,
                "Computer": "WS1",
                "EventRecordID": 9,
                "TimeCreated": "2026-11-02 10:15:00+00:00",
                "Direction": "%%14594",
                "SourceAddress": "10.0.0.5",
                "DestAddress": "10.0.0.9",
                "DestPort": "445",
            }
        ),
        json.dumps(
            {
                "EventID": 5145,
                "Computer": "FS1.corp.local",
                "EventRecordID": 10,
                "TimeCreated": "2026-11-02 10:15:01.000000+00:00",
                "IpAddress": "::ffff:10.0.0.5",
                "IpPort": "50000",
                "SubjectUserName": "bob",
                "SubjectDomainName": "CORP",
                "ShareName": "\\\\*\\C$",
            }
        ),
    ]
    result = run_ingest(spark, config, [_write(tmp_path / "win.jsonl", lines)], "auto")
    rows = {row["source_row"]: row for row in Tables(config).network_events.read(spark).collect()}
    quarantined = {row["source_row"]: row["reason"] for row in Tables(config).quarantined_events.read(spark).collect()}

    assert rows[1]["event_time"] == datetime(2026, 11, 2, 10, 15, 0, 250000)
    assert (rows[2]["remote_ip"], rows[2]["local_ip"]) == ("fe80::3816:b2ee:1b9b:324b", "fe80::1")
    assert (rows[3]["remote_ip"], rows[3]["remote_port"]) == ("10.0.0.9", 139)
    assert rows[4]["remote_ip"] == "fd00::a"
    assert quarantined[5] == "unknown_direction"
    assert (rows[6]["actor_process_name"], rows[6]["actor_process_pid"]) == (None, None)
    assert (rows[7]["actor_process_name"], rows[7]["actor_process_pid"]) == (None, None)
    assert 8 not in rows
    assert quarantined[9] == "unknown_direction"
    share = rows[10]
    assert (share["host_id"], share["direction"], share["remote_ip"], share["local_port"]) == (
        "fs1.corp.local",
        "inbound",
        "10.0.0.5",
        445,
    )
    assert (share["source_format"], share["user_name"]) == ("windows_share_access", "CORP\\bob")
    assert (result.rows_read, result.rows_written, result.rows_quarantined, result.duplicates_removed) == (10, 7, 2, 1)


def test_unreadable_files_named_and_others_load(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.jsonl", [_sysmon(1)])
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"EventID": 3, "User": "CORP\\\\jos\xe9"}\n')
    wide = tmp_path / "wide.jsonl"
    wide.write_bytes(_sysmon(3).encode("utf-16"))
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(((_sysmon(4) + "\n") * 50).encode())[:-20])
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + _sysmon(5).encode("utf-8") + b"\n")

    result = run_ingest(spark, config, [str(tmp_path)], "auto")
    errors = {Path(item.source_file).name: item.error for item in result.unreadable_files}
    assert set(errors) == {"latin.jsonl", "wide.jsonl", "cut.jsonl.gz"}
    assert errors["latin.jsonl"].startswith("not UTF-8 at byte ")
    assert "iconv" in errors["wide.jsonl"]
    assert "gzip -t" in errors["cut.jsonl.gz"]
    assert result.rows_written == 2
    assert good
    runs = Tables(config).ingest_runs.read(spark).where(F.col("source_format") == "unreadable").collect()
    assert sorted(Path(row["source_file"]).name for row in runs) == ["cut.jsonl.gz", "latin.jsonl", "wide.jsonl"]


def test_only_unreadable_input_raises(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"a": "\xe9"}\n')
    with pytest.raises(InputFileError, match=r"latin\.jsonl: not UTF-8 at byte 7"):
        run_ingest(spark, config, [str(latin)], "auto")


def test_tabular_files_bad_rows_quarantined(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    csv_path = _write(
        tmp_path / "xdr.csv",
        [
            "agent_id,agent_hostname,event_type,event_sub_type,event_timestamp,action_local_ip,"
            "action_remote_ip,action_remote_port,actor_process_command_line,agent_id",
            'a1,WS1,NETWORK,NETWORK_STREAM_CONNECT,1793614500250,10.0.0.5,10.0.0.9,445,"cmd /c ""net use""",x',
            "a1,WS1,NETWORK,NETWORK_STREAM_CONNECT,1793614500250,10.0.0.5",
            "a1,WS1,PROCESS,PROCESS_START,1793614500250,10.0.0.5,10.0.0.9,445,x,y",
            "a1,WS1,NETWORK,ENUM.NETWORK_STREAM_ACCEPT,1793614500250,10.0.0.5,10.0.0.9,50000,,y",
        ],
    )
    tsv_path = _write(
        tmp_path / "conn.log",
        [
            "#separator \\x09",
            "#path\tconn",
            "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tconn_state",
            "1793614500.250000\tC1\t10.0.0.5\t50000\t10.0.0.9\t445\ttcp\tS0",
            "1793614500.250000\tC2\t10.0.0.5\t50001",
            "1793614500.250000\tC3\t10.0.0.5\t50002\t10.0.0.9\t445\ttcp\tOTH",
        ],
    )
    result = run_ingest(spark, config, [csv_path, tsv_path], "auto")
    quarantined = {
        (Path(row["source_file"]).suffix, row["source_row"], row["reason"])
        for row in Tables(config).quarantined_events.read(spark).collect()
    }
    written = {
        (row["source_format"], row["source_row"]): row for row in Tables(config).network_events.read(spark).collect()
    }
    assert quarantined == {
        (".csv", 3, "field_count_mismatch"),
        (".csv", 4, "unsupported_event_type:PROCESS"),
        (".log", 5, "field_count_mismatch"),
    }
    assert written[("cortex_xdr", 2)]["actor_process_command_line"] == 'cmd /c "net use"'
    assert written[("cortex_xdr", 5)]["direction"] == "inbound"
    assert written[("zeek_conn", 4)]["outcome"] == "failure"
    assert written[("zeek_conn", 6)]["outcome"] == "unknown"
    # Header lines are not rows, so rows read counts data lines only.
    assert result.rows_read == 4 + 3


def test_zeek_conn_wins_over_smb_evidence(spark: SparkSession, config: Config, tmp_path: Path) -> None:
    conn = {
        "ts": 1793614500.25,
        "uid": "C1",
        "id.orig_h": "10.0.0.5",
        "id.orig_p": 50000,
        "id.resp_h": "10.0.0.9",
        "id.resp_p": 445,
        "proto": "tcp",
        "conn_state": "SF",
    }
    mapping = {
        "_path": "smb_mapping",
        "ts": "2026-11-02T10:15:01Z",
        "uid": "C1",
        "id.orig_h": "10.0.0.5",
        "id.orig_p": 50000,
        "id.resp_h": "10.0.0.9",
        "id.resp_p": 445,
        "path": "\\\\FS1\\IPC$",
    }
    ntlm = {
        "_path": "ntlm",
        "ts": "2026-11-02T10:15:01Z",
        "uid": "C2",
        "id.orig_h": "10.0.0.5",
        "id.orig_p": 50001,
        "id.resp_h": "10.0.0.10",
        "id.resp_p": 445,
        "username": "admin:Winter2026",
        "domainname": "CORP",
        "success": False,
    }
    dns = {
        "_path": "dns",
        "ts": 1793614500.25,
        "uid": "C3",
        "id.orig_h": "10.0.0.5",
        "id.orig_p": 5353,
        "id.resp_h": "10.0.0.1",
        "id.resp_p": 53,
    }
    # The evidence file sorts before conn.log, so only the priority keeps the conn row.
    first = _write(tmp_path / "a_smb.log", [json.dumps(mapping), json.dumps(ntlm), json.dumps(dns)])
    second = _write(tmp_path / "conn.log", [json.dumps(conn)])
    result = run_ingest(spark, config, [first, second], "zeek")
    rows = {row["remote_ip"]: row for row in Tables(config).network_events.read(spark).collect()}
    assert rows["10.0.0.9"]["source_format"] == "zeek_conn"
    assert (rows["10.0.0.10"]["outcome"], rows["10.0.0.10"]["user_name"]) == ("failure", "CORP\\admin:[REDACTED]")
    assert result.quarantine_reasons == {"unsupported_zeek_log": 1}
    assert result.duplicates_removed == 1
