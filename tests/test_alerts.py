"""Episodes, deduplication and deterministic alert ids."""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession

from smb_fanout import schemas
from smb_fanout.score.alerts import assign_episodes
from smb_fanout.score.detect import ABNORMAL, HIGHLY_RARE
from smb_fanout.score.job import build_alerts

T0 = datetime(2026, 11, 2, 10, 0)
ANCHOR_DDL = "host_id string, anchor_start timestamp"


def detections(spark: SparkSession, rows: list[tuple[str, int]]) -> DataFrame:
    return spark.createDataFrame(
        [(host, T0 + timedelta(hours=hours)) for host, hours in rows], "host_id string, window_end timestamp"
    )


def episode_starts(frame: DataFrame) -> list[tuple[str, datetime, datetime]]:
    return sorted((row["host_id"], row["window_end"], row["episode_start"]) for row in frame.collect())


def test_detections_within_day_share_episode(spark: SparkSession) -> None:
    found = detections(spark, [("a", 0), ("a", 1), ("a", 23), ("a", 24), ("a", 30), ("b", 5)])
    anchors = spark.createDataFrame([], ANCHOR_DDL)
    result = episode_starts(assign_episodes(found, anchors, 24))
    assert result == [
        ("a", T0, T0),
        ("a", T0 + timedelta(hours=1), T0),
        ("a", T0 + timedelta(hours=23), T0),
        ("a", T0 + timedelta(hours=24), T0 + timedelta(hours=24)),
        ("a", T0 + timedelta(hours=30), T0 + timedelta(hours=24)),
        ("b", T0 + timedelta(hours=5), T0 + timedelta(hours=5)),
    ]


def test_anchor_continues_stored_alert(spark: SparkSession) -> None:
    found = detections(spark, [("a", 10), ("a", 30)])
    anchors = spark.createDataFrame([("a", T0)], ANCHOR_DDL)
    result = episode_starts(assign_episodes(found, anchors, 24))
    assert result == [
        ("a", T0 + timedelta(hours=10), T0),
        ("a", T0 + timedelta(hours=30), T0 + timedelta(hours=30)),
    ]


def _destination(index: int, first_time: datetime) -> dict:
    return {
        "destination_id": f"ws-{index:02d}",
        "destination_ip": f"10.0.0.{index}",
        "resolved": True,
        "first_time": first_time,
        "attempts": 1,
        "failures": 0,
    }


def _detection(window_end: datetime, indexes: range, variation: str, severity: str, reasons: list[str]) -> dict:
    start = window_end - timedelta(hours=5)
    return {
        "host_id": "a",
        "host_name": "a.corp.local",
        "window_start": start,
        "window_end": window_end,
        "variation": variation,
        "severity": severity,
        "new_destination_count": len(indexes),
        "new_destinations": [_destination(i, start + timedelta(minutes=i)) for i in indexes],
        "threshold": 4.0,
        "fleet_tail_threshold": 9.0,
        "failure_ratio": 0.0,
        "severity_reasons": reasons,
        "variation_reason": "beyond the fleet's highly rare tail" if variation != ABNORMAL else "",
        "baseline_source": "host",
        "baseline_mean_new_destinations": 0.2,
        "baseline_max_new_destinations": 1,
        "baseline_windows_observed": 700,
        "model_name": "m",
        "model_version": "1",
        "model_run_id": "run-1",
        "peer_group": "fleet",
        "insufficient_history": False,
        "tail_probability": 1e-6,
        "common_destination_count": 0,
        "excluded_destination_count": 0,
        "fleet_change_destination_count": 0,
        "input_versions": {"smb_host_windows": 3},
        "predictive_mean": 0.2,
        "exclusion": None,
    }


def test_later_detection_escalates_open_alert(spark: SparkSession) -> None:
    """A Medium, highly rare detection 6 hours into a Low alert upgrades that alert instead of adding one."""
    first = _detection(T0, range(1, 6), ABNORMAL, "Low", [])
    later = _detection(
        T0 + timedelta(hours=6), range(4, 16), HIGHLY_RARE, "Medium", ["count at least 3 times the threshold"]
    )
    found = spark.createDataFrame([first, later], schemas.struct_type(schemas.SMB_DETECTIONS))
    episodes = assign_episodes(found, spark.createDataFrame([], ANCHOR_DDL), 24)

    hourly = spark.createDataFrame(
        [
            {
                "host_id": "a",
                "host_name": "a.corp.local",
                "destination_id": d["destination_id"],
                "destination_ip": d["destination_ip"],
                "destination_resolved": True,
                "hour": d["first_time"].replace(minute=0),
                "day": d["first_time"].date(),
                "attempts": 1,
                "failures": 0,
                "first_time": d["first_time"],
                "last_time": d["first_time"],
                "actor_processes": [{"name": "System", "path": None, "count": 1}],
                "causality_processes": [],
                "command_lines": [],
                "previous_seen": None,
                "is_new": True,
            }
            for row in (first, later)
            for d in row["new_destinations"]
        ],
        schemas.struct_type(schemas.SMB_CONTACTS_HOURLY),
    ).dropDuplicates(["host_id", "destination_id", "hour"])

    [alert] = build_alerts(episodes, hourly, T0 + timedelta(hours=7)).collect()
    assert (alert["variation"], alert["severity"]) == (HIGHLY_RARE, "Medium")
    assert alert["upgraded_at"] == T0 + timedelta(hours=6)
    assert alert["first_detection_window_end"] == T0
    assert alert["last_detection_window_end"] == T0 + timedelta(hours=6)
    assert (alert["detection_count"], alert["suppressed_count"]) == (2, 1)
    assert [d["destination_id"] for d in alert["new_destinations"]] == [f"ws-{i:02d}" for i in range(1, 16)]
    assert alert["new_destination_count"] == 15
    assert alert["severity_reasons"] == ["count at least 3 times the threshold"]
