"""Real public logs: each dataset ingests completely and matches the counts published with it.

WRCCDC runs everywhere from the copy in `tests/fixtures/wrccdc-2018`. The
other datasets are read in place from the shared real-data folder, and their
tests skip when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import Config, load_config
from smb_fanout.ingest.job import IngestResult, run_ingest
from smb_fanout.tables import Tables
from tests.conftest import FIXTURES, real_data

WRCCDC_FANOUT = {
    "ip:10.164.94.120": 13,
    "ip:10.128.0.214": 8,
    "ip:10.128.0.233": 5,
    "ip:10.150.0.20": 5,
    "ip:10.128.0.207": 1,
}


def _ingest(spark: SparkSession, root: Path, paths: list[str], input_format: str) -> tuple[IngestResult, DataFrame]:
    config: Config = load_config("local", [f"storage.local_root={root}"])
    result = run_ingest(spark, config, paths, input_format)
    return result, Tables(config).network_events.read(spark)


def _smb_fanout(events: DataFrame) -> dict[str, int]:
    """Distinct SMB destinations per source host, outbound, without loopback and link-local addresses."""
    smb = events.where(
        (F.col("direction") == "outbound")
        & F.col("remote_port").isin(445, 139)
        & ~F.col("remote_ip").startswith("127.")
        & ~F.col("remote_ip").startswith("fe80:")
        & (F.col("remote_ip") != "::1")
        & (F.col("remote_ip") != F.coalesce(F.col("local_ip"), F.lit("")))
    )
    rows = smb.groupBy("host_id").agg(F.countDistinct("remote_ip").alias("destinations")).collect()
    return {row["host_id"]: row["destinations"] for row in rows}


def test_wrccdc_shipped_trace(spark: SparkSession, tmp_path: Path) -> None:
    result, events = _ingest(spark, tmp_path, [str(FIXTURES / "wrccdc-2018")], "auto")
    assert _smb_fanout(events) == WRCCDC_FANOUT
    assert result.rows_read == 393 + 422
    assert result.rows_quarantined == 0
    assert (result.rows_written, result.duplicates_removed) == (425, 390)
    # One event per TCP connection: the tree connects and NTLM logins of a
    # connection are duplicates of its first record.
    assert events.select("source_format").distinct().collect()[0][0] == "zeek_smb"
    assert events.where(F.col("user_name").contains(":") & ~F.col("user_name").endswith(":[REDACTED]")).count() == 0


@pytest.mark.parametrize("encoding", ["zeek-json", "zeek-tsv"])
def test_wrccdc_all_logs(spark: SparkSession, tmp_path: Path, encoding: str) -> None:
    folder = real_data("wrccdc-2018-zeek-smb", encoding)
    result, events = _ingest(spark, tmp_path, [str(folder)], "auto")
    assert _smb_fanout(events) == WRCCDC_FANOUT
    assert result.rows_read == 917
    assert result.quarantine_reasons == {"unsupported_zeek_log": 11}
    assert (result.rows_written, result.duplicates_removed) == (425, 481)


def test_apt29_day1(spark: SparkSession, tmp_path: Path) -> None:
    folder = real_data("otrf-apt29-day1-zeek")
    result, events = _ingest(spark, tmp_path, [str(folder)], "auto")
    assert set(result.quarantine_reasons) == {"unsupported_zeek_log"}
    smb = events.where((F.col("direction") == "outbound") & F.col("remote_port").isin(445, 139))
    per_destination = {
        (row["host_id"], row["remote_ip"]): (row["attempts"], row["failures"])
        for row in smb.groupBy("host_id", "remote_ip")
        .agg(F.count(F.lit(1)).alias("attempts"), F.sum((F.col("outcome") == "failure").cast("int")).alias("failures"))
        .collect()
    }
    assert {key for key in per_destination if key[0] == "ip:10.0.1.4"} == {
        ("ip:10.0.1.4", "10.0.0.4"),
        ("ip:10.0.1.4", "192.168.0.4"),
        ("ip:10.0.1.4", "10.0.1.6"),
    }
    assert {key for key in per_destination if key[0] == "ip:10.0.1.6"} == {("ip:10.0.1.6", "10.0.0.4")}
    attempts, failures = per_destination[("ip:10.0.1.4", "192.168.0.4")]
    assert attempts == failures
    assert per_destination[("ip:10.0.1.4", "10.0.1.6")][0] == 15


def test_evtx_attack_samples(spark: SparkSession, tmp_path: Path) -> None:
    folder = real_data("evtx-attack-samples-smb", "events")
    result, events = _ingest(spark, tmp_path, [str(folder)], "auto")
    assert result.rows_read == 1421
    assert result.rows_read == result.rows_written + result.rows_quarantined + result.duplicates_removed
    assert set(result.quarantine_reasons) == {"unsupported_event_id"}
    shares = events.where(F.col("source_format") == "windows_share_access")
    assert shares.count() == 6 + 958
    assert shares.where(F.col("direction") != "inbound").count() == 0
    outbound = events.where(
        (F.col("direction") == "outbound")
        & F.col("remote_port").isin(445, 139)
        & ~F.col("remote_ip").startswith("127.")
        & F.col("local_ip").rlike(r"^\d+\.")
    )
    sources = {row["local_ip"] for row in outbound.select("local_ip").distinct().collect()}
    assert sources == {"10.0.2.15", "10.0.2.17", "10.59.4.20", "192.168.56.101"}
    assert _smb_fanout(events)["alice.insecurebank.local"] == 7


def test_mordor_shire(spark: SparkSession, tmp_path: Path) -> None:
    folder = real_data("otrf-mordor-shire", "events")
    result, events = _ingest(spark, tmp_path, [str(folder)], "auto")
    assert result.rows_read == 10_083
    assert set(result.quarantine_reasons) == {"unsupported_event_id"}
    # Sysmon 1, Security 4688, 4624, 4625 and 4648 are not network events.
    assert result.rows_quarantined == 623 + 954 + 731 + 7 + 22
    on_445 = F.when(F.col("direction") == "outbound", F.col("remote_port")).otherwise(F.col("local_port")) == 445
    smb = events.where(on_445 & (F.col("source_format") == "windows"))
    by_direction = {row["direction"]: row["count"] for row in smb.groupBy("direction").count().collect()}
    assert by_direction == {"outbound": 75 + 170, "inbound": 67 + 106}
    fanout = _smb_fanout(events)
    assert fanout["workstation5.theshire.local"] == 3
    assert fanout["workstation6.theshire.local"] == 1
    server_seen = events.where((F.col("direction") == "inbound") & (F.col("remote_ip") == "172.18.38.6"))
    assert server_seen.where(F.col("host_id") == "mordordc.theshire.local").count() > 0
