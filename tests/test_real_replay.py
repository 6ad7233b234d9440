"""Real traces replayed over generated history: which real hosts alert at the default settings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import load_config
from smb_fanout.demo import DemoResult, run_replay, shift_files_to_days
from smb_fanout.ingest.job import run_ingest
from smb_fanout.stats.job import run_stats
from smb_fanout.tables import Tables
from tests.conftest import FIXTURES, real_data

pytestmark = pytest.mark.integration


def _replay(spark: SparkSession, root: Path, trace: Path, input_format: str) -> DemoResult:
    config = load_config("local", [f"storage.local_root={root}"])
    return run_replay(spark, config, [str(trace)], input_format, workstations=8)


def test_wrccdc_replay_alerts_on_wide_fanout(spark: SparkSession, tmp_path: Path) -> None:
    result = _replay(spark, tmp_path, FIXTURES / "wrccdc-2018", "zeek")
    counts = {alert["host_id"]: alert["new_destination_count"] for alert in result.alerts}
    assert counts["ip:10.164.94.120"] == 13
    assert counts["ip:10.128.0.214"] == 8
    assert "ip:10.128.0.207" not in counts


def test_apt29_day1_replay_does_not_alert(spark: SparkSession, tmp_path: Path) -> None:
    trace = real_data("otrf-apt29-day1-zeek")
    result = _replay(spark, tmp_path, trace, "zeek")
    assert result.alerts == []


def test_mordor_consecutive_days_known_after_first(spark: SparkSession, tmp_path: Path) -> None:
    config = load_config("local", [f"storage.local_root={tmp_path}"])
    captures = [
        FIXTURES / "mordor" / "covenant_copy_smb_CreateRequest_2020-09-22145302.jsonl",
        FIXTURES / "mordor" / "purplesharp_ad_playbook_I_smb_2020-10-22042947.jsonl",
    ]
    run_ingest(spark, config, [str(path) for path in captures], "auto", shift_files_to_days(date(2026, 3, 2)))
    run_stats(spark, config)
    contacts = (
        Tables(config)
        .smb_contacts_hourly.read(spark)
        .where(F.col("host_id") == "workstation5.theshire.local")
        .select("day", "destination_id", "is_new")
        .collect()
    )
    by_day: dict[str, dict[str, bool]] = {}
    for row in contacts:
        by_day.setdefault(str(row["day"]), {})[row["destination_id"]] = by_day.get(str(row["day"]), {}).get(
            row["destination_id"], False
        ) or bool(row["is_new"])
    assert sorted(by_day) == ["2026-03-02", "2026-03-03"]
    assert by_day["2026-03-02"]["workstation6.theshire.local"] is True
    assert by_day["2026-03-03"]["workstation6.theshire.local"] is False
    assert by_day["2026-03-03"]["workstation7.theshire.local"] is True
