"""Benchmark: smb-fanout's jobs against the naive hourly query (Spark SQL and DuckDB) and a scan-and-group-by floor.

Run it with `make bench` (`python -m benchmarks.bench`). It generates fleets of three sizes with 30 days of
history, and the middle size with 7, 14 and 30 days. For each fleet it ingests
and builds the statistics (timed against the floor on the same events), fits,
and runs one hourly cycle (ingest, stats and score of the next hour). The
naive query then runs on the same raw files. Results go to a JSON
file and to the page `docs/benchmarks.md` with its plots.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.fleet import BENCH_END, BenchFleet, attacker_hosts, history_events, scored_hour_events, write_parquet
from benchmarks.measure import Measurement, machine, measure
from benchmarks.naive import floor_spark, naive_duckdb, naive_spark
from benchmarks.report import write_page

ROOT = Path(__file__).resolve().parents[1]

console = Console()
app = typer.Typer(add_completion=False, help=__doc__)

# Steps timed for every fleet, in the order they run.
STEPS = ("generate", "ingest", "stats_build", "floor", "fit", "hourly_ingest", "hourly_stats", "hourly_score")


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated whole numbers, got {text!r}") from None


def spark_cores(master: str, default_parallelism: int) -> int:
    """Return the cores that run tasks: N of a `local[N]` master, else Spark's default parallelism.

    Locally the default parallelism is set to the shuffle partitions, which
    can exceed the cores.
    """
    match = re.fullmatch(r"local\[(\d+|\*)\]", master)
    if match is None:
        return default_parallelism
    return (os.cpu_count() or 1) if match.group(1) == "*" else int(match.group(1))


def _folder_bytes(folder: Path) -> int:
    """Return the size of the Parquet files under `folder`, Delta log excluded."""
    return sum(path.stat().st_size for path in folder.rglob("*.parquet") if "_delta_log" not in path.parts)


def run_fleet(spark: Any, fleet: BenchFleet, work: Path, cores: int) -> dict[str, Any]:
    """Generate one fleet, run every step on it and return the measurements."""
    from smb_fanout.config import load_config
    from smb_fanout.fit.job import run_fit
    from smb_fanout.ingest.job import run_ingest
    from smb_fanout.score.job import run_score
    from smb_fanout.stats.job import run_stats
    from smb_fanout.tables import Tables

    name = f"ws{fleet.workstations}-d{fleet.days}"
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    config = load_config(
        "local", [f"storage.local_root={folder / 'state'}", f"spark.jars_dir={ROOT / '.smb-fanout' / 'jars'}"]
    )
    history_dir, hour_dir = folder / "raw" / "history", folder / "raw" / "hour"
    hour_start = BENCH_END
    hour_end = hour_start + timedelta(hours=1)
    files = max(2, fleet.history_events // 1_000_000)
    console.log(f"{name}: generate")
    with measure("generate") as generated:
        write_parquet(history_events(spark, fleet), history_dir, files)
        write_parquet(scored_hour_events(spark, fleet, hour_start), hour_dir, 1)
    steps: list[Measurement] = [generated]
    detector = config.detector
    query_args = {
        "window_end": hour_end.replace(tzinfo=None),
        "window_hours": detector.window_hours,
        "training_days": detector.training_days,
        "min_new": detector.min_new_destinations,
    }
    results: dict[str, Any] = {}
    for label, action in (
        ("ingest", lambda: run_ingest(spark, config, [str(history_dir)], "canonical")),
        ("stats_build", lambda: run_stats(spark, config)),
        ("floor", lambda: floor_spark(spark, Tables(config).network_events.sql_name)),
        ("fit", lambda: run_fit(spark, config, training_end=hour_start.replace(tzinfo=None))),
        ("hourly_ingest", lambda: run_ingest(spark, config, [str(hour_dir)], "canonical")),
        ("hourly_stats", lambda: run_stats(spark, config)),
        (
            "hourly_score",
            lambda: run_score(
                spark, config, window_from=hour_start.replace(tzinfo=None), window_to=hour_end.replace(tzinfo=None)
            ),
        ),
        ("naive_spark", lambda: naive_spark(spark, [str(history_dir), str(hour_dir)], query_args)),
        ("naive_duckdb", lambda: naive_duckdb([str(history_dir), str(hour_dir)], query_args, cores)),
    ):
        console.log(f"{name}: {label}")
        with measure(label) as measured:
            results[label] = action()
        steps.append(measured)
    alerted = sorted(
        row["host_id"]
        for row in Tables(config)
        .smb_alerts.read(spark)
        .where(f"window_end = TIMESTAMP '{hour_end:%Y-%m-%d %H:%M:%S}'")
        .select("host_id")
        .collect()
    )
    ingest = results["ingest"]
    events_path = Tables(config).network_events.path
    return {
        "name": name,
        "fleet": asdict(fleet),
        "history_events": ingest.rows_read,
        "events_written": ingest.rows_written,
        "events_table_bytes": _folder_bytes(events_path) if events_path is not None else 0,
        "steps": [asdict(measured) for measured in steps],
        "attackers": attacker_hosts(fleet),
        "pipeline_alerts": alerted,
        "naive_spark_hosts": [host for host, _ in results["naive_spark"]],
        "naive_duckdb_hosts": [host for host, _ in results["naive_duckdb"]],
    }


@app.command()
def main(
    sizes: Annotated[
        str,
        typer.Option(help="Workstation counts of the fleets with 30 days of history, comma-separated (two or more)."),
    ] = "1200,2400,11200",
    history_days: Annotated[str, typer.Option(help="History lengths in days for the middle fleet.")] = "7,14,30",
    events_per_host_day: Annotated[int, typer.Option(help="Events each workstation logs per day.")] = 60,
    work_dir: Annotated[Path, typer.Option(help="Folder for generated events and tables (emptied per fleet).")] = (
        ROOT / ".smb-fanout" / "bench"
    ),
    page: Annotated[Path, typer.Option(help="Markdown results page to write.")] = ROOT / "docs" / "benchmarks.md",
    results_path: Annotated[Path, typer.Option("--results", help="JSON file for the raw numbers.")] = (
        ROOT / "benchmarks" / "results.json"
    ),
    driver_memory: Annotated[str, typer.Option(help="Spark driver memory, for example 12g.")] = "12g",
) -> None:
    """Run the benchmark matrix and write the results page."""
    from smb_fanout.config import load_config
    from smb_fanout.spark import get_spark

    size_list, day_list = _ints(sizes), _ints(history_days)
    if len(size_list) < 2 or not day_list:
        raise typer.BadParameter("give at least two sizes and one history length")
    config = load_config(
        "local",
        [
            f"storage.local_root={work_dir}",
            f"spark.jars_dir={ROOT / '.smb-fanout' / 'jars'}",
            f"spark.driver_memory={driver_memory}",
        ],
    )
    spark = get_spark(config, app_name="smb-fanout-bench")
    cores = spark_cores(spark.sparkContext.master or "", spark.sparkContext.defaultParallelism)
    middle = size_list[len(size_list) // 2]
    plan = [BenchFleet(workstations=size, days=30, events_per_host_day=events_per_host_day) for size in size_list]
    plan += [
        BenchFleet(workstations=middle, days=days, events_per_host_day=events_per_host_day)
        for days in day_list
        if days != 30
    ]
    runs = [run_fleet(spark, fleet, work_dir, cores) for fleet in plan]
    results = {
        "machine": machine(),
        "spark_cores": cores,
        "command": " ".join(["make bench", *sys.argv[1:]]),
        "runs": runs,
    }
    results_path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    write_page(results, page)
    table = Table("fleet", "events", *STEPS, "naive_spark", "naive_duckdb", title="wall seconds")
    for run in runs:
        walls = {step["step"]: step["wall_s"] for step in run["steps"]}
        table.add_row(
            run["name"],
            f"{run['history_events']:,}",
            *[f"{walls.get(name, 0):.1f}" for name in (*STEPS, "naive_spark", "naive_duckdb")],
        )
    console.print(table)
    console.print(f"results: {results_path}\npage: {page}")


if __name__ == "__main__":
    app()
