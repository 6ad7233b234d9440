"""SMB filter, destination identity, hourly aggregates, novelty and windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import DetectorConfig
from smb_fanout.stats.contacts import host_addresses, hourly_contacts, resolve_destinations, smb_contacts
from smb_fanout.stats.novelty import add_novelty, host_windows, profile_updates, seen_before

EVENT_DDL = (
    "host_id string, host_name string, event_time timestamp, local_ip string, remote_ip string, "
    "remote_port int, direction string, protocol string, outcome string, actor_process_name string, "
    "actor_process_path string, actor_process_command_line string, causality_process_name string, "
    "causality_process_path string, actor_process_sha256 string"
)
T0 = datetime(2026, 11, 2, 10, 0)


def events(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    """Rows of (host_id, minutes after T0, local_ip, remote_ip, port, direction, outcome)."""
    full = [
        (
            host,
            host.upper(),
            T0 + timedelta(minutes=minutes),
            local,
            remote,
            port,
            direction,
            "tcp",
            outcome,
            "System",
            None,
            None,
            "explorer.exe",
            None,
            None,
        )
        for host, minutes, local, remote, port, direction, outcome in rows
    ]
    return spark.createDataFrame(full, EVENT_DDL)


def test_smb_filter_keeps_only_contacts(spark: SparkSession) -> None:
    rows = [
        ("a", 0, "10.0.0.5", "10.0.0.9", 445, "outbound", "success"),  # kept
        ("a", 1, "10.0.0.5", "10.0.0.10", 139, "outbound", "failure"),  # kept: failed attempts count
        ("a", 2, "10.0.0.5", "10.0.0.11", 443, "outbound", "success"),  # not an SMB port
        ("a", 3, "10.0.0.5", "10.0.0.12", 445, "inbound", "success"),  # inbound
        ("a", 4, "10.0.0.5", "8.8.8.8", 445, "outbound", "success"),  # not internal
        ("a", 5, "10.0.0.5", "127.0.0.1", 445, "outbound", "success"),  # loopback
        ("a", 6, "fe80::1", "fe80::2", 445, "outbound", "success"),  # link-local
        ("a", 7, "10.0.0.5", "10.0.0.5", 445, "outbound", "success"),  # itself
        ("a", 8, "10.0.0.5", "172.16.4.4", 445, "outbound", "success"),  # kept
        ("a", 9, "fd00::5", "fd00::9", 445, "outbound", "success"),  # kept: unique-local IPv6
    ]
    kept = smb_contacts(events(spark, rows), DetectorConfig())
    assert sorted(row["remote_ip"] for row in kept.collect()) == ["10.0.0.10", "10.0.0.9", "172.16.4.4", "fd00::9"]


def test_destination_resolved_to_holder(spark: SparkSession) -> None:
    # Host "b" reports 10.0.0.9 in the morning, host "c" takes it over at 11:00 (DHCP churn).
    rows = [
        ("b", -60, "10.0.0.9", "10.0.0.1", 53, "outbound", "success"),
        ("c", 60, "10.0.0.9", "10.0.0.1", 53, "outbound", "success"),
        ("a", 0, "10.0.0.5", "10.0.0.9", 445, "outbound", "success"),
        ("a", 90, "10.0.0.5", "10.0.0.9", 445, "outbound", "success"),
        ("a", 100, "10.0.0.5", "10.0.0.77", 445, "outbound", "success"),
    ]
    frame = events(spark, rows)
    resolved = resolve_destinations(smb_contacts(frame, DetectorConfig()), host_addresses(frame))
    result = sorted(
        (row["event_time"], row["destination_id"], row["destination_resolved"]) for row in resolved.collect()
    )
    assert result == [
        (T0, "b", True),
        (T0 + timedelta(minutes=90), "c", True),
        (T0 + timedelta(minutes=100), "ip:10.0.0.77", False),
    ]


def test_contact_to_own_other_address_removed(spark: SparkSession) -> None:
    # A multi-homed host reaching its second address is not a destination.
    rows = [
        ("a", 0, "10.0.1.5", "10.0.0.1", 53, "outbound", "success"),
        ("a", 5, "10.0.0.5", "10.0.1.5", 445, "outbound", "success"),
    ]
    frame = events(spark, rows)
    resolved = resolve_destinations(smb_contacts(frame, DetectorConfig()), host_addresses(frame))
    assert resolved.collect() == []


def test_hourly_aggregates(spark: SparkSession) -> None:
    rows = [
        ("a", 1, "10.0.0.5", "10.0.0.9", 445, "outbound", "success"),
        ("a", 2, "10.0.0.5", "10.0.0.9", 445, "outbound", "failure"),
        ("a", 3, "10.0.0.5", "10.0.0.9", 445, "outbound", "blocked"),
        ("a", 61, "10.0.0.5", "10.0.0.9", 445, "outbound", "success"),
    ]
    frame = events(spark, rows)
    hourly = hourly_contacts(resolve_destinations(smb_contacts(frame, DetectorConfig()), host_addresses(frame)))
    result = [
        (
            row["hour"],
            row["attempts"],
            row["failures"],
            row["first_time"],
            row["last_time"],
            row["actor_processes"][0]["count"],
        )
        for row in hourly.orderBy("hour").collect()
    ]
    assert result == [
        (T0, 3, 2, T0 + timedelta(minutes=1), T0 + timedelta(minutes=3), 3),
        (T0 + timedelta(hours=1), 1, 0, T0 + timedelta(minutes=61), T0 + timedelta(minutes=61), 1),
    ]


def test_actor_processes_keep_their_image_hash(spark: SparkSession) -> None:
    rows = [("a", minute, "10.0.0.5", "10.0.0.9", 445, "outbound", "success") for minute in (1, 2, 3)]
    tool_hash = "AB" * 32
    frame = (
        events(spark, rows)
        .withColumn("actor_process_name", F.when(F.minute("event_time") > 1, "tool.exe").otherwise("System"))
        .withColumn("actor_process_sha256", F.when(F.minute("event_time") == 3, tool_hash))
    )
    hourly = hourly_contacts(resolve_destinations(smb_contacts(frame, DetectorConfig()), host_addresses(frame)))
    (row,) = hourly.collect()
    actors = [(p["name"], p["count"], p["sha256"]) for p in row["actor_processes"]]
    # The same image name with and without a reported hash stays two entries.
    assert actors == [("System", 1, None), ("tool.exe", 1, None), ("tool.exe", 1, tool_hash)]
    assert [(p["name"], p["sha256"]) for p in row["causality_processes"]] == [("explorer.exe", None)]


def test_hourly_contacts_scan_the_events_once(spark: SparkSession, tmp_path: Path) -> None:
    rows = [("a", minute, "10.0.0.5", f"10.0.0.{minute + 10}", 445, "outbound", "success") for minute in range(8)]
    frame = events(spark, rows)
    resolved = resolve_destinations(smb_contacts(frame, DetectorConfig()), host_addresses(frame))
    resolved.write.parquet(str(tmp_path / "resolved"))
    hourly = hourly_contacts(spark.read.parquet(str(tmp_path / "resolved")))

    assert len(hourly.collect()) == 8

    # One scan and two shuffles: the events by key and process pair, then the pairs by key.
    plan = hourly._jdf.queryExecution().executedPlan().toString().split("== Initial Plan ==")[0]
    assert (plan.count("FileScan parquet"), plan.count("Exchange hashpartitioning")) == (1, 2), plan


HOURLY_DDL = (
    "host_id string, host_name string, destination_id string, destination_ip string, destination_resolved boolean, "
    "hour timestamp, attempts long, failures long, first_time timestamp, "
    "actor_processes array<struct<name:string,path:string,count:long,sha256:string>>, "
    "causality_processes array<struct<name:string,path:string,count:long,sha256:string>>, command_lines array<string>"
)
PROFILE_DDL = (
    "host_id string, destination_id string, first_seen timestamp, last_seen timestamp, "
    "seen_before_batch timestamp, batch_start timestamp, recent_hours array<timestamp>, settled_last_seen timestamp"
)


def hourly_rows(spark: SparkSession, rows: list[tuple[str, str, datetime]]) -> DataFrame:
    full = [
        (host, host.upper(), dest, dest, True, hour, 2, 1, hour, [("System", None, 2, None)], [], [])
        for host, dest, hour in rows
    ]
    return spark.createDataFrame(full, HOURLY_DDL)


def test_destination_seen_31_days_ago_is_new(spark: SparkSession) -> None:
    profile = spark.createDataFrame(
        [
            (
                "a",
                "old",
                T0 - timedelta(days=60),
                T0 - timedelta(days=31),
                None,
                T0 - timedelta(days=31),
                [],
                T0 - timedelta(days=31),
            ),
            (
                "a",
                "recent",
                T0 - timedelta(days=60),
                T0 - timedelta(days=29),
                None,
                T0 - timedelta(days=29),
                [T0 - timedelta(days=29)],
                T0 - timedelta(days=40),
            ),
        ],
        PROFILE_DDL,
    )
    batch = hourly_rows(spark, [("a", "old", T0), ("a", "recent", T0), ("a", "never", T0)])
    flagged = add_novelty(batch, seen_before(profile, T0), training_days=30)
    assert {row["destination_id"]: row["is_new"] for row in flagged.collect()} == {
        "old": True,
        "recent": False,
        "never": True,
    }


def test_repeat_inside_batch_not_new(spark: SparkSession) -> None:
    empty = spark.createDataFrame([], PROFILE_DDL)
    batch = hourly_rows(spark, [("a", "x", T0), ("a", "x", T0 + timedelta(hours=3))])
    flagged = add_novelty(batch, seen_before(empty, T0), training_days=30).orderBy("hour").collect()
    assert [(row["is_new"], row["previous_seen"]) for row in flagged] == [(True, None), (False, T0)]


def test_rerun_sees_profile_before_batch(spark: SparkSession) -> None:
    # The profile already contains this batch (a crashed or repeated run): novelty must not change.
    profile = spark.createDataFrame([("a", "x", T0, T0, None, T0, [T0], None)], PROFILE_DDL)
    batch = hourly_rows(spark, [("a", "x", T0)])
    history = seen_before(profile, T0)
    flagged = add_novelty(batch, history, training_days=30).collect()
    updated = profile_updates(batch, history, T0, T0).collect()
    assert [row["is_new"] for row in flagged] == [True]
    assert [(row["first_seen"], row["last_seen"], row["seen_before_batch"]) for row in updated] == [(T0, T0, None)]
    assert updated[0]["recent_hours"] == [T0]


def test_earlier_batch_start_sees_older_history(spark: SparkSession) -> None:
    # Late events rewind the batch to T0 - 2h, before the last batch's start:
    # the history must be the contact at T0 - 3h, not the later ones.
    hours = [T0 - timedelta(hours=3), T0, T0 + timedelta(hours=1)]
    profile = spark.createDataFrame(
        [("a", "x", T0 - timedelta(days=5), hours[-1], hours[0], T0, hours, T0 - timedelta(days=5))], PROFILE_DDL
    )
    start = T0 - timedelta(hours=2)
    history = seen_before(profile, start)
    assert [row["profile_last_seen"] for row in history.collect()] == [hours[0]]
    batch = hourly_rows(spark, [("a", "x", start), ("a", "x", T0)])
    updated = profile_updates(batch, history, start, T0 - timedelta(hours=1)).collect()
    assert [(row["last_seen"], row["recent_hours"], row["settled_last_seen"]) for row in updated] == [(T0, [T0], start)]


def test_window_counts_new_destinations(spark: SparkSession) -> None:
    yesterday = T0 - timedelta(days=1)
    profile = spark.createDataFrame(
        [("a", "known", yesterday, yesterday, None, yesterday, [yesterday], None)], PROFILE_DDL
    )
    batch = hourly_rows(
        spark,
        [
            ("a", "known", T0),
            ("a", "n1", T0),
            ("a", "n2", T0 + timedelta(hours=1)),
            ("a", "n1", T0 + timedelta(hours=2)),
        ],
    )
    flagged = add_novelty(batch, seen_before(profile, T0), training_days=30)
    windows = host_windows(flagged, 5, T0 + timedelta(hours=3), T0 + timedelta(hours=3)).collect()
    assert len(windows) == 1
    window = windows[0]
    assert window["window_start"] == T0 - timedelta(hours=2)
    assert window["distinct_destinations"] == 3
    assert window["new_destination_count"] == 2
    assert [d["destination_id"] for d in window["new_destinations"]] == ["n1", "n2"]
    assert window["new_attempts"] == 6
    assert window["attempts"] == 8
    assert window["failure_ratio"] == 0.5


def test_windows_slide_hourly(spark: SparkSession) -> None:
    empty = spark.createDataFrame([], PROFILE_DDL)
    batch = hourly_rows(spark, [("a", "n1", T0)])
    flagged = add_novelty(batch, seen_before(empty, T0), training_days=30)
    ends = [
        row["window_end"]
        for row in host_windows(flagged, 5, T0, T0 + timedelta(hours=10)).orderBy("window_end").collect()
    ]
    assert ends == [T0 + timedelta(hours=k) for k in range(1, 6)]
