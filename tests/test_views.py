"""SQL views over the alert and health tables, on real Delta tables."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import Config, load_config
from smb_fanout.tables import Tables, append
from smb_fanout.views import DETECTOR_HEALTH, VIEWS, create_views, view_name
from tests.alert_rows import write_tables

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "smb_fanout.lvdash.json"

DETECTOR_RUNS_DDL = (
    "run_id STRING, job STRING, started_at TIMESTAMP, finished_at TIMESTAMP, status STRING, rows_read BIGINT, "
    "rows_written BIGINT, rows_quarantined BIGINT, hosts_scored BIGINT, alerts_opened BIGINT, "
    "alerts_updated BIGINT, duration_s DOUBLE, model_version STRING"
)


def write_runs(spark: SparkSession, config: Config) -> None:
    day1, day2 = datetime(2026, 12, 1), datetime(2026, 12, 2)
    hour = timedelta(hours=1)
    runs = [
        ("r1", "score", day1 + hour, day1 + 2 * hour, "succeeded", 0, 0, 0, 40, 1, 0, 240.0, "3"),
        ("r2", "score", day1 + 2 * hour, day1 + 3 * hour, "failed", 0, 0, 0, 0, 0, 0, 120.0, "3"),
        ("r3", "ingest", day1, day1 + hour, "succeeded", 90, 80, 10, 0, 0, 0, 60.0, None),
        ("r4", "score", day2 + hour, day2 + 2 * hour, "succeeded", 0, 0, 0, 41, 0, 2, 180.0, "4"),
    ]
    frame = spark.createDataFrame(runs, DETECTOR_RUNS_DDL).select(
        "*",
        F.lit(None).alias("rows_late"),
        F.lit(None).alias("rows_too_late"),
        F.lit(None).alias("status_reason"),
        F.lit(None).alias("detections_excluded"),
        F.lit(None).alias("expired_exclusions"),
    )
    append(frame, Tables(config).detector_runs)


@pytest.fixture(scope="module")
def views_config(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Config:
    config = load_config("local", [f"storage.local_root={tmp_path_factory.mktemp('views')}"])
    write_tables(spark, config)
    write_runs(spark, config)
    assert create_views(spark, config).created == [view.name for view in VIEWS]
    return config


def rows(spark: SparkSession, config: Config, name: str, order: str) -> list[dict]:
    view = next(v for v in VIEWS if v.name == name)
    return [r.asDict(recursive=True) for r in spark.table(view_name(config, view)).orderBy(*order.split()).collect()]


def test_views_work_before_the_first_run(spark: SparkSession, tmp_path: Path) -> None:
    """On a new deployment the views exist over empty tables, so the dashboard shows no rows, not errors."""
    config = load_config("local", [f"storage.local_root={tmp_path}"])
    result = create_views(spark, config)
    assert result.created == [
        "smb_alerts_daily",
        "smb_top_hosts",
        "smb_alert_list",
        "smb_alert_new_destinations",
        "smb_detector_health",
    ]
    for view in VIEWS:
        assert spark.table(view_name(config, view)).collect() == []


def test_alerts_daily_by_severity(spark: SparkSession, views_config: Config) -> None:
    got = rows(spark, views_config, "smb_alerts_daily", "day severity")
    assert [(r["day"], r["severity"], r["alerts"], r["hosts"], r["new_destinations"]) for r in got] == [
        (date(2026, 11, 21), "Low", 1, 1, 6),
        (date(2026, 11, 22), "Low", 2, 2, 12),
        (date(2026, 11, 23), "Medium", 1, 1, 20),
    ]
    assert got[2]["variation"] == "Highly rare SMB activity to multiple hosts"


def test_top_hosts_counts(spark: SparkSession, views_config: Config) -> None:
    got = {r["host_id"]: r for r in rows(spark, views_config, "smb_top_hosts", "host_id")}
    assert sorted(got) == ["ws-01", "ws-02", "ws-03"]
    assert got["ws-01"]["alerts"] == 2
    assert got["ws-01"]["max_new_destinations"] == 7
    assert got["ws-01"]["total_new_destinations"] == 13
    assert got["ws-01"]["host_name"] == "ws-01.corp.local"
    assert got["ws-03"]["medium_alerts"] == 1
    assert got["ws-03"]["highly_rare_alerts"] == 1
    assert got["ws-02"]["highly_rare_alerts"] == 0


def test_new_destinations_exploded(spark: SparkSession, views_config: Config) -> None:
    got = rows(spark, views_config, "smb_alert_new_destinations", "alert_id destination_id")
    assert len(got) == 6 + 7 + 5 + 20
    first = got[0]
    assert first["alert_id"] == "a1"
    assert first["destination_id"] == "host-001"
    assert first["destination_ip"] == "10.0.0.1"
    assert first["first_time"] == datetime(2026, 11, 21, 5, 10)
    assert first["attempts"] == 3
    assert {r["destination_id"] for r in got if r["alert_id"] == "a4"} == {f"host-{i:03d}" for i in range(1, 21)}


def test_health_view_per_day_and_job(spark: SparkSession, views_config: Config) -> None:
    config = views_config
    got = [r.asDict() for r in spark.table(view_name(config, DETECTOR_HEALTH)).orderBy("day", "job").collect()]
    assert [(r["day"], r["job"], r["runs"], r["failed_runs"]) for r in got] == [
        (date(2026, 12, 1), "ingest", 1, 0),
        (date(2026, 12, 1), "score", 2, 1),
        (date(2026, 12, 2), "score", 1, 0),
    ]
    assert got[0]["rows_quarantined"] == 10
    assert got[1]["mean_duration_s"] == 180.0
    assert got[1]["max_duration_s"] == 240.0
    assert got[1]["last_model_version"] == "3"
    assert got[2]["alerts_updated"] == 2


def test_catalog_views_qualified() -> None:
    config = load_config("dev", ["storage.catalog=sec", "storage.schema=smb"])
    assert view_name(config, VIEWS[0]) == "`sec`.`smb`.`smb_alerts_daily`"
    assert Tables(config).detector_runs.name == "`sec`.`smb`.`detector_runs`"


def test_dashboard_reads_only_views(spark: SparkSession, views_config: Config) -> None:
    """Every dashboard dataset reads one view, and every widget field is a column of that view."""
    config = views_config
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    names = {view.name for view in VIEWS}
    columns = {}
    for dataset in dashboard["datasets"]:
        query = " ".join(dataset["queryLines"])
        read = [name for name in names if f"FROM {name}" in query]
        assert len(read) == 1, f"dataset {dataset['name']} must read one view: {query}"
        view = next(v for v in VIEWS if v.name == read[0])
        local_query = query.replace(f"FROM {view.name}", f"FROM {view_name(config, view)}")
        columns[dataset["name"]] = set(spark.sql(local_query).columns)
    widgets = [layout["widget"] for page in dashboard["pages"] for layout in page["layout"]]
    assert len(widgets) >= 5
    for widget in widgets:
        for query in widget.get("queries", []):
            dataset = query["query"]["datasetName"]
            for field in query["query"]["fields"]:
                used = field["expression"].split("`")[1]
                assert used in columns[dataset], f"widget {widget['name']} uses {used}, not a column of {dataset}"
