"""Hour after hour: late events, reruns, crashes, time zones, a fit during a score, maintenance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smb_fanout import checkpoints
from smb_fanout.config import Config
from smb_fanout.health import DEGRADED
from smb_fanout.ingest.job import run_ingest
from smb_fanout.maintain import run_maintain
from smb_fanout.registry import champion
from smb_fanout.score.job import run_score
from smb_fanout.stats.job import run_stats
from tests.conftest import PROJECT_ROOT
from tests.ops_driver import ATTACKER, CUT, ops_config, run_schedule, write_deliveries

pytestmark = pytest.mark.integration

NAIVE_CUT = CUT.replace(tzinfo=None)

# Columns that differ between two correct runs: wall-clock times, generated
# run ids, and table versions that count no-op commits of a rerun.
VOLATILE = {
    "detected_at",
    "updated_at",
    "ingested_at",
    "quarantined_at",
    "fitted_at",
    "model_run_id",
    "model_version",
    "ingest_run_id",
    "content_hash",
    "events_version",
    "windows_version",
    "input_versions",
}
COMPARED = (
    "network_events",
    "quarantined_events",
    "host_addresses",
    "smb_contacts_hourly",
    "smb_profile",
    "smb_host_windows",
    "smb_stats_state",
    "smb_thresholds",
    "smb_process_rarity",
    "smb_detections",
    "smb_alerts",
    "smb_score_state",
)


def snapshot(spark: SparkSession, config: Config) -> dict[str, list[str]]:
    """Every compared table as sorted JSON rows, without volatile columns; model tables for the champion only."""
    from smb_fanout.tables import Tables

    model = champion(config)
    tables: dict[str, list[str]] = {}
    for key in COMPARED:
        frame = Tables(config).ref(key).read(spark)
        if "model_run_id" in frame.columns and key in {"smb_thresholds", "smb_process_rarity"}:
            frame = frame.where(F.col("model_run_id") == model.run_id)
        columns = [name for name in frame.columns if name not in VOLATILE]
        rows = [
            json.dumps(row.asDict(recursive=True), default=str, sort_keys=True)
            for row in frame.select(columns).collect()
        ]
        tables[key] = sorted(rows)
    return tables


def runs(spark: SparkSession, config: Config, job: str) -> list[dict[str, Any]]:
    from smb_fanout.tables import Tables

    frame = Tables(config).detector_runs.read(spark).where(F.col("job") == job).orderBy("started_at")
    return [row.asDict() for row in frame.collect()]


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_deliveries(tmp_path_factory.mktemp("deliveries"))


@pytest.fixture(scope="module")
def reference(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, deliveries: list[Path]
) -> tuple[Config, dict[str, list[str]], dict[str, list[str]]]:
    """The uninterrupted schedule in UTC, its tables, and its tables after the last hour is run again."""
    config = ops_config(tmp_path_factory.mktemp("reference"))
    run_schedule(spark, config, deliveries)
    before = snapshot(spark, config)
    run_ingest(spark, config, [str(deliveries[-1])], "canonical")
    run_stats(spark, config)
    run_score(spark, config)
    return config, before, snapshot(spark, config)


def test_late_events_open_one_alert(spark: SparkSession, reference: tuple) -> None:
    config = reference[0]
    from smb_fanout.tables import Tables

    alerts = [row.asDict(recursive=True) for row in Tables(config).smb_alerts.read(spark).collect()]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["host_id"] == ATTACKER
    assert alert["new_destination_count"] == 6
    assert alert["first_detection_window_end"] == NAIVE_CUT + timedelta(hours=1)
    assert alert["opened_through"] == NAIVE_CUT + timedelta(hours=2)
    assert alert["detection_delay_s"] == 3600


def test_late_events_counted_per_run(spark: SparkSession, reference: tuple) -> None:
    stats = runs(spark, reference[0], "stats")
    assert [run["rows_late"] for run in stats[:3]] == [0, 0, 4]
    assert [run["rows_too_late"] for run in stats[:3]] == [0, 0, 1]
    assert [run["rows_read"] for run in stats[:3]] == [924, 13, 16]
    assert stats[2]["status"] == DEGRADED
    assert "more than 12 hours late" in stats[2]["status_reason"]


def test_only_changed_windows_rescored(spark: SparkSession, reference: tuple) -> None:
    # The late events change the attacker's window ending 13:00, and every
    # workstation has a new window ending 14:00.
    score = runs(spark, reference[0], "score")
    assert score[2]["rows_read"] == 11
    assert score[2]["hosts_scored"] == 10
    assert score[2]["alerts_opened"] == 1
    assert [run["alerts_opened"] for run in score[:2]] == [0, 0]


def test_alert_budget_degrades_run(spark: SparkSession, reference: tuple) -> None:
    score = runs(spark, reference[0], "score")
    assert score[2]["status"] == DEGRADED
    assert "above the budget of 0" in score[2]["status_reason"]
    assert score[2]["model_version"] == champion(reference[0]).version


def test_too_late_event_not_aggregated(spark: SparkSession, reference: tuple) -> None:
    from smb_fanout.tables import Tables

    config = reference[0]
    events = Tables(config).network_events.read(spark).where(F.col("event_id") == "too-late").count()
    contacts = Tables(config).smb_contacts_hourly.read(spark).where(F.col("destination_id") == "ip:10.0.0.99")
    assert events == 1
    assert contacts.collect() == []


def test_address_first_seen_survives_batches(spark: SparkSession, reference: tuple) -> None:
    from smb_fanout.tables import Tables

    rows = (
        Tables(reference[0])
        .host_addresses.read(spark)
        .where((F.col("host_id") == ATTACKER) & (F.col("day") == NAIVE_CUT.date()))
        .collect()
    )
    assert [(row["first_seen"], row["last_seen"]) for row in rows] == [
        (NAIVE_CUT - timedelta(hours=12) + timedelta(minutes=1), NAIVE_CUT + timedelta(hours=1, minutes=1))
    ]


def test_rerun_leaves_tables_identical(spark: SparkSession, reference: tuple) -> None:
    config, before, after = reference
    assert after == before
    stats = runs(spark, config, "stats")
    assert stats[-1]["status"] == DEGRADED
    assert stats[-1]["status_reason"].startswith("no new events")
    assert runs(spark, config, "ingest")[-1]["rows_written"] == 0


def _driver(root: Path, deliveries: Path, time_zone: str = "UTC", kill_at: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), MLFLOW_DISABLE_TELEMETRY="true")
    env.pop(checkpoints.KILL_AT_VARIABLE, None)
    if kill_at is not None:
        env[checkpoints.KILL_AT_VARIABLE] = kill_at
    command = [sys.executable, "-m", "tests.ops_driver", str(root), str(deliveries), time_zone]
    return subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen, expected: int) -> None:
    output, _ = process.communicate(timeout=900)
    assert process.returncode == expected, output.decode(errors="replace")[-3000:]


@contextmanager
def _time_zone(spark: SparkSession, zone: str) -> Iterator[None]:
    """Run the block with the JVM default, the Spark session and this process in `zone`."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    previous_jvm = jvm.java.util.TimeZone.getDefault()
    previous_session = spark.conf.get("spark.sql.session.timeZone") or "UTC"
    jvm.java.util.TimeZone.setDefault(jvm.java.util.TimeZone.getTimeZone(zone))
    spark.conf.set("spark.sql.session.timeZone", zone)
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        jvm.java.util.TimeZone.setDefault(previous_jvm)
        spark.conf.set("spark.sql.session.timeZone", previous_session)
        os.environ["TZ"] = "UTC"
        time.tzset()


# Every step of the scheduled jobs, in the order a schedule reaches them. The
# first delivery reaches all but the last two; the third reaches those.
CRASH_STEPS = (
    "ingest.events_merged",
    "ingest.quarantine_merged",
    "stats.hourly_merged",
    "stats.profile_merged",
    "stats.windows_merged",
    "fit.thresholds_merged",
    "fit.rarity_merged",
    "fit.version_registered",
    "score.model_resolved",
    "score.state_written",
    "score.detections_merged",
    "score.alerts_merged",
)


class Crash(BaseException):
    """Raised at a step to stop a job in this process; not an Exception, so no handler in the jobs catches it."""


def _crash_at(step: str) -> Callable[[], None]:
    def crash() -> None:
        raise Crash(step)

    return checkpoints.on_step(step, crash)


def test_killed_tokyo_driver_recovers(
    spark: SparkSession, reference: tuple, deliveries: list[Path], tmp_path: Path
) -> None:
    # SIGKILL runs no handler: the driver stops right after the first MERGE commit.
    # Its JVM starts in Tokyo time, and the rerun here finishes in UTC.
    root = tmp_path / "killed"
    _finish(_driver(root, deliveries[0].parent, "Asia/Tokyo", kill_at="ingest.events_merged"), -signal.SIGKILL)
    assert not (root / "finished" / "0").exists()
    config = ops_config(root)
    run_schedule(spark, config, deliveries)
    assert snapshot(spark, config) == reference[1]


def test_step_crashes_recover_in_new_york(
    spark: SparkSession, reference: tuple, deliveries: list[Path], tmp_path: Path
) -> None:
    # New York time crosses the end of daylight saving time on 2026-11-01.
    config = ops_config(tmp_path / "crashed")
    crashed: list[str] = []
    with _time_zone(spark, "America/New_York"):
        for step in CRASH_STEPS:
            remove = _crash_at(step)
            try:
                run_schedule(spark, config, deliveries)
            except Crash as crash:
                crashed.append(str(crash))
            finally:
                remove()
        run_schedule(spark, config, deliveries)
    assert crashed == list(CRASH_STEPS)
    assert snapshot(spark, config) == reference[1]


def test_maintain_bounds_files(spark: SparkSession, reference: tuple) -> None:
    from smb_fanout.tables import Tables

    config = reference[0]
    maintained = config.model_copy(
        update={"operations": config.operations.model_copy(update={"vacuum_retention_hours": 0})}
    )
    # A maintain run stopped after its first OPTIMIZE, then one stopped after its first VACUUM.
    for step in ("maintain.optimized", "maintain.vacuumed"):
        remove = _crash_at(step)
        with pytest.raises(Crash):
            run_maintain(spark, maintained)
        remove()
    results = {result.table: result for result in run_maintain(spark, maintained)}
    hourly = Tables(config).smb_contacts_hourly
    # Each of the schedule's job runs added files to detector_runs.
    assert results[Tables(config).detector_runs.sql_name].files_before >= 10
    assert all(result.files_after <= 2 for result in results.values())
    assert hourly.path is not None
    assert len(list(hourly.path.glob("*.parquet"))) == results[hourly.sql_name].files_after
    detail = hourly.delta(spark).detail().select("clusteringColumns").first()
    assert detail is not None
    assert detail["clusteringColumns"] == ["host_id", "hour"]
    assert snapshot(spark, config) == reference[2]


def test_full_vacuum_deletes_orphan_files(spark: SparkSession, reference: tuple) -> None:
    from smb_fanout.tables import Tables

    config = reference[0]
    alerts = Tables(config).smb_alerts
    assert alerts.path is not None
    # A data file that no commit refers to, as a writer killed before its commit leaves.
    orphan = alerts.path / "part-00000-orphan.snappy.parquet"
    orphan.write_bytes(b"PAR1")
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    operations = config.operations.model_copy(update={"vacuum_retention_hours": 0})
    lite = config.model_copy(update={"operations": operations})
    run_maintain(spark, lite, tables=["smb_alerts"])
    assert orphan.exists()
    full = config.model_copy(update={"operations": operations.model_copy(update={"vacuum_mode": "full"})})
    run_maintain(spark, full, tables=["smb_alerts"])
    assert not orphan.exists()
    assert snapshot(spark, config) == reference[2]


def test_maintain_rejects_unknown_table(spark: SparkSession, reference: tuple) -> None:
    from smb_fanout.maintain import UnknownTableError

    with pytest.raises(UnknownTableError, match="unknown table smb_alert: use one of network_events"):
        run_maintain(spark, reference[0], tables=["smb_alert"])


def test_fit_during_score_keeps_version(spark: SparkSession, reference: tuple) -> None:
    from smb_fanout.fit.job import run_fit
    from smb_fanout.tables import Tables

    config = reference[0]
    before = champion(config)
    remove = checkpoints.on_step("score.model_resolved", lambda: run_fit(spark, config, training_end=NAIVE_CUT))
    try:
        result = run_score(spark, config, NAIVE_CUT, NAIVE_CUT + timedelta(hours=2))
    finally:
        remove()
    assert champion(config).version != before.version
    assert result.model.version == before.version
    detections = Tables(config).smb_detections.read(spark).select("model_version", "model_run_id").distinct()
    assert [tuple(row) for row in detections.collect()] == [(before.version, before.run_id)]
    assert runs(spark, config, "score")[-1]["model_version"] == before.version
