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


# Steps whose wall time is fitted against events for the fixed and per-event costs.
FITTED = ("ingest", "stats_build", "floor", "hourly", "naive_spark")


def _format_count(value: float) -> str:
    return f"{value / 1e6:,.1f} million" if value >= 1e6 else f"{value:,.0f}"


def _line(events: list[float], seconds: list[float]) -> tuple[float, float]:
    """Fit a straight line and return its slope (seconds per event) and intercept (fixed seconds)."""
    slope, intercept = np.polyfit(events, seconds, 1)
    # Rounded so that a fit's tiny negative intercept does not print as -0.0.
    return float(slope), round(float(intercept), 1) + 0.0


def marginal_costs(runs: list[dict[str, Any]]) -> list[str]:
    """Return sentences on fixed and per-event costs, from straight-line fits over the 30-day fleets.

    At small fleets the fixed cost of each job hides the per-event cost that
    the targets are about, so the fits show where the ratios head as fleets grow.
    """
    by_size, _ = split_runs(runs)
    events = [float(run["history_events"]) for run in by_size]
    per_workstation = events[-1] / by_size[-1]["fleet"]["workstations"]
    fits = {name: _line(events, [walls(run)[name] for run in by_size]) for name in FITTED}
    (hourly_slope, hourly_fixed), (naive_slope, naive_fixed) = fits["hourly"], fits["naive_spark"]
    (stats_slope, stats_fixed), (floor_slope, _) = fits["stats_build"], fits["floor"]
    ingest_slope, ingest_fixed = fits["ingest"]
    lines = [
        f"- Ingest: {ingest_fixed:.1f} s fixed plus {ingest_slope * 1e6:.2f} s per million events; stats build: "
        f"{stats_fixed:.1f} s fixed plus {stats_slope * 1e6:.2f} s per million; floor: {floor_slope * 1e6:.2f} s "
        "per million.",
        f"- Hourly cycle: {hourly_fixed:.1f} s fixed plus {hourly_slope * 1e6:.2f} s per million events of "
        f"history; naive Spark SQL: {naive_fixed:.1f} s plus {naive_slope * 1e6:.2f} s per million.",
    ]
    gain = naive_slope - 10 * hourly_slope
    if gain > 0:
        reached = max(0.0, (10 * hourly_fixed - naive_fixed) / gain)
        lines.append(
            f"- On these lines the hourly cycle becomes 10x faster than the naive query at about "
            f"{_format_count(reached)} events of 30-day history, about {reached / per_workstation:,.0f} "
            "workstations at this benchmark's event rate."
        )
    else:
        lines.append("- On these lines the hourly cycle never becomes 10x faster than the naive query.")
    if floor_slope > 0:
        lines.append(
            f"- Stats build: {stats_fixed:.1f} s fixed plus {stats_slope / floor_slope:.1f}x the floor's cost per "
            "event, so its ratio to the floor tends to that multiple as fleets grow."
        )
    return lines


# The sizing page's fleet: 100,000 endpoints logging 200 million SMB events a day.
SIZING_EVENTS_PER_DAY = 200_000_000
# Assumption: office hours concentrate a day's traffic, so the busiest hour
# carries this multiple of the average hour.
SIZING_PEAK_FACTOR = 2.5
# Assumption: share of the cores' time a Spark job keeps busy on a cluster.
SIZING_EFFICIENCY = 0.7
# Seconds within which the hourly cycle should finish, leaving the rest of the hour for retries.
SIZING_BUDGET_S = 900
SIZING_CORES_PER_WORKER = 8


def sizing(runs: list[dict[str, Any]], cores: int) -> list[str]:
    """Return an estimate of cluster size and hourly run time for `SIZING_EVENTS_PER_DAY`, from the per-event fits.

    The hourly cycle ingests the hour's new events and adds them to the
    statistics, so its variable cost is the ingest and stats build cost per
    event. The fixed cost of one cycle does not shrink with more cores.
    """
    by_size, _ = split_runs(runs)
    events = [float(run["history_events"]) for run in by_size]
    ingest_slope, _ = _line(events, [walls(run)["ingest"] for run in by_size])
    stats_slope, _ = _line(events, [walls(run)["stats_build"] for run in by_size])
    _, hourly_fixed = _line(events, [walls(run)["hourly"] for run in by_size])
    core_seconds_per_event = (ingest_slope + stats_slope) * cores
    average_hour = SIZING_EVENTS_PER_DAY / 24
    peak_hour = average_hour * SIZING_PEAK_FACTOR
    peak_core_seconds = peak_hour * core_seconds_per_event
    budget = SIZING_BUDGET_S - max(hourly_fixed, 0.0)
    needed_cores = math.ceil(peak_core_seconds / (budget * SIZING_EFFICIENCY)) if budget > 0 else 0
    workers = max(1, math.ceil(needed_cores / SIZING_CORES_PER_WORKER))
    cluster_cores = workers * SIZING_CORES_PER_WORKER

    def run_time(hour_events: float) -> float:
        return max(hourly_fixed, 0.0) + hour_events * core_seconds_per_event / (cluster_cores * SIZING_EFFICIENCY)

    lines = [
        f"- Measured: ingest plus stats cost {core_seconds_per_event * 1e6:,.1f} core-seconds per million events "
        f"here; one hourly cycle has {hourly_fixed:.1f} s of fixed cost.",
        f"- Load: {SIZING_EVENTS_PER_DAY / 1e6:,.0f} million SMB events a day is {_format_count(average_hour)} "
        f"events in an average hour; the estimate plans for a peak hour of {SIZING_PEAK_FACTOR}x that, "
        f"{_format_count(peak_hour)} events ({peak_core_seconds / 3600:,.1f} core-hours).",
    ]
    if needed_cores:
        lines.append(
            f"- Cluster: {cluster_cores} cores in workers of {SIZING_CORES_PER_WORKER} ({workers} in all). The peak "
            f"hour takes about {run_time(peak_hour) / 60:,.1f} minutes and an average hour about "
            f"{run_time(average_hour) / 60:,.1f} minutes, at {SIZING_EFFICIENCY:.0%} of the cores busy."
        )
    else:
        lines.append(f"- Cluster: the fixed cost alone exceeds the {SIZING_BUDGET_S} s budget of one hourly cycle.")
    largest = by_size[-1]
    if largest.get("events_table_bytes"):
        per_event = largest["events_table_bytes"] / largest["history_events"]
        lines.append(
            f"- Storage: the events table takes {per_event:,.0f} bytes per event, about "
            f"{per_event * SIZING_EVENTS_PER_DAY / 1e9:,.0f} GB a day before compaction."
        )
    return lines


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
        "Fixed and per-event costs, from straight-line fits of wall time against events over the 30-day fleets:",
        "",
        *marginal_costs(runs),
        "",
        "## Sizing estimate",
        "",
        "An estimate, not a measurement: the per-event costs above, scaled to a fleet of 100,000 endpoints. "
        "`docs/sizing.md` gives the assumptions, partitioning and cluster settings.",
        "",
        *sizing(runs, results["spark_cores"]),
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
