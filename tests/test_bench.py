"""The benchmark's generated fleet and its naive baselines answer the same question the pipeline does."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from benchmarks.fleet import BENCH_END, BenchFleet, attacker_hosts, history_events, scored_hour_events, write_parquet
from benchmarks.naive import naive_duckdb, naive_spark
from benchmarks.report import growth_exponent

FLEET = BenchFleet(workstations=60, days=3, events_per_host_day=12, attackers=2, attack_destinations=9)


@pytest.fixture(scope="module")
def raw_dirs(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("bench")
    write_parquet(history_events(spark, FLEET), folder / "history", 2)
    write_parquet(scored_hour_events(spark, FLEET, BENCH_END), folder / "hour", 1)
    return [str(folder / "history"), str(folder / "hour")]


def query_args() -> dict:
    end = (BENCH_END + timedelta(hours=1)).replace(tzinfo=None)
    return {"window_end": end, "window_hours": 5, "training_days": 30, "min_new": 5}


def test_history_has_requested_size_and_span(spark: SparkSession, raw_dirs: list[str]) -> None:
    history = spark.read.parquet(raw_dirs[0])
    summary = history.selectExpr("count(*) AS n", "min(event_time) AS first", "max(event_time) AS last").first()
    assert summary is not None
    assert summary["n"] == FLEET.history_events == 60 * 3 * 12
    assert summary["first"] >= "2026-11-27T00:00:00Z"
    assert summary["last"] < "2026-11-30T00:00:00Z"


def test_naive_spark_and_duckdb_find_the_injected_sweeps(spark: SparkSession, raw_dirs: list[str]) -> None:
    expected = [(host, FLEET.attack_destinations) for host in attacker_hosts(FLEET)]
    assert naive_spark(spark, raw_dirs, query_args()) == expected
    assert naive_duckdb(raw_dirs, query_args(), threads=2) == expected


def test_growth_exponent_of_linear_and_quadratic_series() -> None:
    assert growth_exponent([1e6, 2e6, 4e6], [10.0, 20.0, 40.0]) == pytest.approx(1.0)
    assert growth_exponent([1e6, 2e6, 4e6], [10.0, 40.0, 160.0]) == pytest.approx(2.0)


def test_bench_page_lists_targets(tmp_path: Path) -> None:
    from benchmarks.report import write_page

    def run(workstations: int, days: int, events: int, scale: float) -> dict:
        steps = {
            "generate": 1.0, "ingest": 10 * scale, "stats_build": 6 * scale, "floor": 5 * scale, "fit": 3.0,
            "hourly_ingest": 1.0, "hourly_stats": 1.0, "hourly_score": 1.0, "naive_spark": 40 * scale,
            "naive_duckdb": 8 * scale,
        }  # fmt: skip
        return {
            "name": f"ws{workstations}-d{days}",
            "fleet": {"workstations": workstations, "days": days},
            "history_events": events,
            "steps": [
                {"step": name, "wall_s": wall, "cpu_s": wall, "peak_rss_mb": 900.0} for name, wall in steps.items()
            ],
            "attackers": ["bench-0"],
            "pipeline_alerts": ["bench-0"],
            "naive_spark_hosts": ["bench-0"],
            "naive_duckdb_hosts": ["bench-0"],
        }

    results = {
        "machine": {"cpu_model": "test", "logical_cores": 2, "memory_gib": 24, "os": "linux", "python": "3.11",
                    "java": "17"},
        "spark_cores": 2,
        "command": "make bench",
        "runs": [run(100, 30, 1_000, 1.0), run(200, 30, 2_000, 2.0), run(400, 30, 4_000, 4.0), run(200, 7, 500, 1.0)],
    }  # fmt: skip
    page = tmp_path / "benchmarks.md"
    write_page(results, page)
    text = page.read_text(encoding="utf-8")
    # Largest fleet: naive 160 s against a 3 s hourly cycle.
    assert "| hourly cycle vs naive Spark SQL at 30 days, largest fleet | >= 10x faster | 53.3x | yes |" in text
    assert "| stats build over the scan-and-group-by floor | <= 1.5x | 1.20x | yes |" in text
    assert "| growth exponent of ingest in events | <= 1.1 | 1.00 | yes |" in text
    # Naive 0.04 s per event against a constant 3 s cycle: 10x from 750 events, 75 workstations at 10 events each.
    assert "10x faster than the naive query at about 750 events of 30-day history, about 75 workstations" in text
    assert "- Stats build: 0.0 s fixed plus 1.2x the floor's cost per event" in text
    assert (tmp_path / "img" / "benchmarks.png").stat().st_size > 10_000


def test_sizing_scales_per_event_cost() -> None:
    from benchmarks.report import sizing

    def run(workstations: int, events: int) -> dict:
        # 10 s fixed per step, 1 ms per event for ingest and for stats, on 2 cores.
        steps = {"ingest": 10 + events / 1000, "stats_build": 10 + events / 1000, "hourly_ingest": 4.0,
                 "hourly_stats": 3.0, "hourly_score": 3.0}  # fmt: skip
        return {
            "name": f"ws{workstations}-d30",
            "fleet": {"workstations": workstations, "days": 30},
            "history_events": events,
            "events_table_bytes": events * 40,
            "steps": [{"step": name, "wall_s": wall} for name, wall in steps.items()],
        }

    lines = sizing([run(100, 1_000), run(200, 2_000), run(400, 4_000)], cores=2)
    # 2 ms of wall on 2 cores is 4,000 core-seconds per million events.
    assert lines[0] == (
        "- Measured: ingest plus stats cost 4,000.0 core-seconds per million events here; "
        "one hourly cycle has 10.0 s of fixed cost."
    )
    # Peak hour: 8.3 million x 2.5 = 20.8 million events, 83,333 core-seconds (23.1 core-hours).
    assert "a peak hour of 2.5x that, 20.8 million events (23.1 core-hours)" in lines[1]
    # 83,333 / (890 s x 0.7) = 134 cores: 17 workers of 8 cores. Peak: 10 s + 83,333 / (136 x 0.7) = 14.8 min.
    assert lines[2] == (
        "- Cluster: 136 cores in workers of 8 (17 in all). The peak hour takes about 14.8 minutes "
        "and an average hour about 6.0 minutes, at 70% of the cores busy."
    )
    assert lines[3] == "- Storage: the events table takes 40 bytes per event, about 8 GB a day before compaction."


def test_spark_cores_of_local_master() -> None:
    from benchmarks.bench import spark_cores

    assert spark_cores("local[2]", 4) == 2
    assert spark_cores("spark://127.0.0.1:7077", 4) == 4
