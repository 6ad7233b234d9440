"""Episodes, deduplication and deterministic alert ids."""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession

from smb_fanout.score.alerts import assign_episodes

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
