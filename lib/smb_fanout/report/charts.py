"""Plotly figures of the HTML report, built from the bounded summaries in `data`."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from itertools import accumulate
from typing import Any

import plotly.graph_objects as go

from smb_fanout.report.data import THRESHOLD_BINS

HISTORY_DAYS_SHOWN = 3
SERIES_COLORS = {
    ("Low", False): "#9ecae1",
    ("Low", True): "#3182bd",
    ("Medium", False): "#fdae6b",
    ("Medium", True): "#e6550d",
}


def _series_name(severity: str, highly_rare: bool) -> str:
    return f"{severity}, {'highly rare' if highly_rare else 'abnormal'}"


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        template="plotly_white",
        height=380,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 16})
    return fig


def alerts_over_time(daily: list[dict[str, Any]]) -> go.Figure:
    """Stacked bars of alerts per UTC day, one series per severity and variation."""
    series: dict[tuple[str, bool], dict[Any, int]] = defaultdict(dict)
    for row in daily:
        key = (row["severity"], row["variation"].startswith("Highly rare"))
        series[key][row["day"]] = series[key].get(row["day"], 0) + int(row["alerts"])
    fig = go.Figure()
    for key in sorted(series):
        days = sorted(series[key])
        fig.add_bar(
            x=days,
            y=[series[key][day] for day in days],
            name=_series_name(*key),
            marker_color=SERIES_COLORS.get(key),
        )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(tickformat="%Y-%m-%d", dtick=24 * 3600 * 1000)
    if not daily:
        _empty(fig, "No alerts in this period")
    return _layout(fig, "Alerts per day (UTC day of first detection)", "day", "alerts")


def severity_mix(daily: list[dict[str, Any]]) -> go.Figure:
    """Share of alerts per severity and variation over the report's period."""
    totals: dict[tuple[str, bool], int] = defaultdict(int)
    for row in daily:
        totals[(row["severity"], row["variation"].startswith("Highly rare"))] += int(row["alerts"])
    keys = sorted(totals)
    fig = go.Figure(
        go.Pie(
            labels=[_series_name(*key) for key in keys],
            values=[totals[key] for key in keys],
            marker={"colors": [SERIES_COLORS.get(key) for key in keys]},
            sort=False,
            hole=0.4,
        )
    )
    if not totals:
        _empty(fig, "No alerts in this period")
    return _layout(fig, "Severity and variation mix", "", "")


def top_hosts(hosts: list[dict[str, Any]]) -> go.Figure:
    """Horizontal bars of alerts per host, the host with most alerts on top."""
    ordered = list(reversed(hosts))
    fig = go.Figure(
        go.Bar(
            x=[row["alerts"] for row in ordered],
            y=[row["host_name"] for row in ordered],
            orientation="h",
            customdata=[[row["max_new_destinations"], row["medium_alerts"]] for row in ordered],
            hovertemplate="%{y}: %{x} alerts, up to %{customdata[0]} new destinations, "
            "%{customdata[1]} Medium<extra></extra>",
            marker_color="#3182bd",
        )
    )
    if not hosts:
        _empty(fig, "No alerting hosts")
    return _layout(fig, "Hosts with the most alerts", "alerts", "")


def alert_timeline(alert: dict[str, Any] | None, host_windows: list[dict[str, Any]]) -> go.Figure:
    """Plot the alert's new destinations in order of first contact against the host's windows and threshold."""
    fig = go.Figure()
    if alert is None:
        _empty(fig, "No alert to show")
        return _layout(fig, "New destinations of one alert", "time (UTC)", "new destinations")

    host = alert["host_name"] or alert["host_id"]
    fig.add_scatter(
        x=[row["window_end"] for row in host_windows],
        y=[row["new_destination_count"] for row in host_windows],
        mode="lines",
        name="new destinations per 5-hour window (host history)",
        line={"color": "#969696", "shape": "hv"},
    )

    destinations = sorted(alert["new_destinations"] or [], key=lambda d: (d["first_time"], d["destination_id"]))
    fig.add_scatter(
        x=[d["first_time"] for d in destinations],
        y=list(accumulate(1 for _ in destinations)),
        mode="lines+markers",
        name="alert: new destinations reached so far",
        text=[
            f"{d['destination_id']} ({d['destination_ip']}), {d['attempts']} attempts, {d['failures']} failed"
            for d in destinations
        ],
        hovertemplate="%{x}<br>%{text}<br>%{y} new destinations<extra></extra>",
        line={"color": "#e6550d", "shape": "hv"},
    )

    fig.add_hline(
        y=alert["threshold"],
        line_dash="dash",
        line_color="#d62728",
        annotation_text=f"threshold {alert['threshold']:g}",
    )
    if alert.get("baseline_mean_new_destinations") is not None:
        fig.add_hline(
            y=alert["baseline_mean_new_destinations"],
            line_dash="dot",
            line_color="#31a354",
            annotation_text=f"host mean {alert['baseline_mean_new_destinations']:.2f}",
            annotation_position="bottom right",
        )

    # The first view shows the last days before the alert; zooming out shows the whole training period.
    fig.update_xaxes(range=[alert["window_start"] - timedelta(days=HISTORY_DAYS_SHOWN), alert["window_end"]])
    title = f"New destinations of {host}, alert {alert['alert_id'][:12]}, against the host's history"
    return _layout(fig, title, "time (UTC)", "new destinations")


def threshold_distribution(
    bins: list[dict[str, Any]], lines: dict[str, float], alert: dict[str, Any] | None
) -> go.Figure:
    """Histogram of per-host thresholds of one model, with the fleet floor, the tail and the alert's threshold."""
    positions = [row["threshold_bin"] for row in bins]
    fig = go.Figure(go.Bar(x=positions, y=[row["hosts"] for row in bins], marker_color="#756bb1", name="hosts"))
    labels = [f"{THRESHOLD_BINS}+" if position >= THRESHOLD_BINS else str(position) for position in positions]
    fig.update_xaxes(tickmode="array", tickvals=positions, ticktext=labels)
    marks = dict(lines)
    if alert is not None:
        marks["this alert's host"] = alert["threshold"]
    for index, (name, value) in enumerate(marks.items()):
        fig.add_vline(
            x=min(value, THRESHOLD_BINS),
            line_dash="dot",
            line_color="#636363",
            annotation_text=f"{name} {value:g}",
            annotation_position=("top right", "bottom right", "top left")[index % 3],
        )
    if not bins:
        _empty(fig, "No fitted model")
    return _layout(
        fig, "Per-host thresholds of the model (rounded down)", "threshold (new destinations per window)", "hosts"
    )
