"""The benchmark results page: machine, command, tables, plots, growth exponents and the targets' ratios."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

HOURLY = ("hourly_ingest", "hourly_stats", "hourly_score")
SHOWN = ("ingest", "stats_build", "floor", "fit", "hourly", "naive_spark", "naive_duckdb")


def walls(run: dict[str, Any]) -> dict[str, float]:
    """Wall seconds per step, plus `hourly`: one whole hourly cycle (ingest, stats and score of one hour)."""
    by_step = {step["step"]: float(step["wall_s"]) for step in run["steps"]}
    by_step["hourly"] = sum(by_step[name] for name in HOURLY)
    return by_step


def growth_exponent(events: list[float], seconds: list[float]) -> float:
    """Slope of log(time) against log(events): 1.0 is linear growth."""
    slope, _ = np.polyfit(np.log(events), np.log(seconds), 1)
    return float(slope)


def split_runs(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Runs with 30 days of history by size, and runs of the middle size by history length."""
    by_size = sorted((run for run in runs if run["fleet"]["days"] == 30), key=lambda run: run["history_events"])
    middle = by_size[len(by_size) // 2]["fleet"]["workstations"]
    by_days = sorted(
        (run for run in runs if run["fleet"]["workstations"] == middle), key=lambda run: run["fleet"]["days"]
    )
    return by_size, by_days


def targets(runs: list[dict[str, Any]]) -> list[tuple[str, str, str, bool]]:
    """Return each target as (target, limit, measured, met)."""
    by_size, by_days = split_runs(runs)
    largest = walls(by_size[-1])
    naive_ratio = largest["naive_spark"] / largest["hourly"]
    hourly = [walls(run)["hourly"] for run in by_days]
    flatness = max(hourly) / min(hourly) - 1
    stats_ratio = max(walls(run)["stats_build"] / walls(run)["floor"] for run in by_size)
    events = [float(run["history_events"]) for run in by_size]
    exponents = {
        name: growth_exponent(events, [walls(run)[name] for run in by_size]) for name in ("ingest", "stats_build")
    }
    return [
        ("hourly cycle vs naive Spark SQL at 30 days, largest fleet", ">= 10x faster", f"{naive_ratio:.1f}x",
         naive_ratio >= 10),
        ("hourly cycle from 7 to 30 days of history", "within 20 %", f"{flatness:+.0%} (max over min)",
         flatness <= 0.2),
        ("stats build over the scan-and-group-by floor", "<= 1.5x", f"{stats_ratio:.2f}x", stats_ratio <= 1.5),
        *[
            (f"growth exponent of {name} in events", "<= 1.1", f"{value:.2f}", value <= 1.1)
            for name, value in exponents.items()
        ],
    ]  # fmt: skip


def _plot(runs: list[dict[str, Any]], folder: Path) -> list[str]:
    by_size, by_days = split_runs(runs)
    folder.mkdir(parents=True, exist_ok=True)
    figure, (by_events_axis, by_days_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    events = [run["history_events"] for run in by_size]
    for name in SHOWN:
        by_events_axis.plot(events, [walls(run)[name] for run in by_size], marker="o", label=name)
        by_days_axis.plot(
            [run["fleet"]["days"] for run in by_days], [walls(run)[name] for run in by_days], marker="o", label=name
        )
    by_events_axis.set(xscale="log", yscale="log", xlabel="events in 30 days of history", ylabel="wall seconds")
    by_events_axis.set_title("Time against events (30 days of history)")
    by_days_axis.set(xlabel="days of history", ylabel="wall seconds", yscale="log")
    by_days_axis.set_title(f"Time against history ({by_days[0]['fleet']['workstations']} workstations)")
    by_days_axis.legend(fontsize=8)
    figure.tight_layout()
    name = "benchmarks.png"
    figure.savefig(folder / name, dpi=110)
    plt.close(figure)
    return [name]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def write_page(results: dict[str, Any], page: Path) -> None:
    """Write the Markdown results page and its plot next to it (under img/)."""
    runs = results["runs"]
    images = _plot(runs, page.parent / "img")
    host = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/bench.py`); the raw numbers are in `benchmarks/results.json`.",
        "",
        "## Machine and command",
        "",
        f"- CPU: {host['cpu_model']}, {host['logical_cores']} logical cores; memory {host['memory_gib']} GiB",
        f"- {host['os']}; Python {host['python']}; {host['java']}; Spark local mode with "
        f"{results['spark_cores']} cores",
        f"- Command: `{results['command']}`",
        "",
        "## Targets",
        "",
        _row(["target", "limit", "measured", "met"]),
        _row(["---"] * 4),
        *[_row([target, limit, measured, "yes" if met else "no"]) for target, limit, measured, met in targets(runs)],
        "",
        "## Wall seconds per step",
        "",
        "`hourly` is one whole hourly cycle: ingest, stats and score of the next hour. `naive_*` is the naive "
        "hourly query on the raw Parquet files; `floor` scans and groups the stored events.",
        "",
        _row(["fleet", "events", "generate", *SHOWN]),
        _row(["---"] * (3 + len(SHOWN))),
        *[
            _row(
                [run["name"], f"{run['history_events']:,}", f"{walls(run)['generate']:.1f}"]
                + [f"{walls(run)[name]:.1f}" for name in SHOWN]
            )
            for run in runs
        ],
        "",
        "## Throughput, CPU and memory",
        "",
        _row(["fleet", "step", "wall s", "CPU s", "events/s/core", "peak RSS MiB"]),
        _row(["---"] * 6),
    ]
    cores = results["spark_cores"]
    for run in runs:
        for step in run["steps"]:
            if step["step"] in {"ingest", "stats_build", "floor"}:
                rate = run["history_events"] / step["wall_s"] / cores if step["wall_s"] else math.nan
                lines.append(
                    _row(
                        [run["name"], step["step"], f"{step['wall_s']:.1f}", f"{step['cpu_s']:.1f}", f"{rate:,.0f}",
                         f"{step['peak_rss_mb']:,.0f}"]
                    )
                )  # fmt: skip
    lines += [
        "",
        "## Same answer",
        "",
        _row(["fleet", "injected attackers", "pipeline alerts", "naive Spark SQL", "naive DuckDB"]),
        _row(["---"] * 5),
        *[
            _row(
                [
                    run["name"],
                    ", ".join(run["attackers"]),
                    ", ".join(run["pipeline_alerts"]) or "none",
                    ", ".join(run["naive_spark_hosts"]) or "none",
                    ", ".join(run["naive_duckdb_hosts"]) or "none",
                ]
            )
            for run in runs
        ],
        "",
        "## Plots",
        "",
        *[f"![benchmark plot](img/{image})" for image in images],
        "",
    ]
    page.write_text("\n".join(lines), encoding="utf-8")
