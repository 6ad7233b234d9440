"""Assemble the report's figures and tables into one self-contained HTML file."""

from __future__ import annotations

from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import plotly.io as pio
from plotly.offline import get_plotlyjs

from smb_fanout.report import charts
from smb_fanout.report.data import ReportData

# Element ids of the report's sections, in page order; the browser test looks for each.
SECTION_IDS = (
    "alerts-over-time",
    "severity-mix",
    "top-hosts",
    "alert-timeline",
    "threshold-distribution",
    "newest-alerts",
)


def _card(label: str, value: Any) -> str:
    return (
        f'<div class="card"><div class="value">{escape(str(value))}</div><div class="label">{escape(label)}</div></div>'
    )


def _figure_section(section_id: str, figure: Any, note: str = "") -> str:
    chart = pio.to_html(figure, include_plotlyjs=False, full_html=False, div_id=f"chart-{section_id}")
    paragraph = f"<p>{escape(note)}</p>" if note else ""
    return f'<section id="{section_id}">{chart}{paragraph}</section>'


def _alerts_table(alerts: list[dict[str, Any]]) -> str:
    header = "".join(
        f"<th>{name}</th>"
        for name in ("host", "window (UTC)", "severity", "variation", "new", "threshold", "reason", "alert id")
    )
    rows = []
    for alert in alerts:
        window = f"{alert['window_start']:%Y-%m-%d %H:%M} to {alert['window_end']:%Y-%m-%d %H:%M}"
        rows.append(
            "<tr>"
            f"<td>{escape(alert['host'])}</td><td>{window}</td>"
            f'<td class="sev-{escape(alert["severity"])}">{escape(alert["severity"])}</td>'
            f"<td>{escape(alert['variation'])}</td>"
            f'<td class="number">{alert["new_destination_count"]}</td>'
            f'<td class="number">{alert["threshold"]:g}</td>'
            f"<td>{escape(alert['reason'])}</td><td><code>{escape(alert['alert_id'][:12])}</code></td>"
            "</tr>"
        )
    body = "".join(rows) or '<tr><td colspan="8">No alerts.</td></tr>'
    return (
        '<section id="newest-alerts"><h2>Newest alerts</h2>'
        f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def render_html(data: ReportData, source: str) -> str:
    """Return the report as one HTML document with plotly.js embedded, so it opens without a network."""
    summary = data.summary
    cards = "".join(
        (
            _card("alerts", summary["alerts"]),
            _card("hosts with alerts", summary["hosts"]),
            _card("Medium severity", summary["medium"]),
            _card("highly rare", summary["highly_rare"]),
            _card("model version", summary["model_version"] or "none"),
        )
    )
    alert_note = ""
    if data.alert is not None:
        alert_note = data.alert["reason"]
    sections = "".join(
        (
            _figure_section(
                "alerts-over-time", charts.alerts_over_time(data.daily), f"The {data.days} days up to the newest alert."
            ),
            _figure_section("severity-mix", charts.severity_mix(data.daily)),
            _figure_section("top-hosts", charts.top_hosts(data.top_hosts)),
            _figure_section("alert-timeline", charts.alert_timeline(data.alert, data.host_windows), alert_note),
            _figure_section(
                "threshold-distribution", charts.threshold_distribution(data.thresholds, data.fleet_lines, data.alert)
            ),
            _alerts_table(data.newest_alerts),
        )
    )
    template = Template(resources.files("smb_fanout.report").joinpath("page.html").read_text(encoding="utf-8"))
    return template.substitute(
        title="smb-fanout report: SMB fan-out alerts",
        generated=f"{data.generated_at:%Y-%m-%d %H:%M}",
        source=escape(source),
        cards=cards,
        sections=sections,
        plotly_js=get_plotlyjs(),
    )


def write_report(data: ReportData, source: str, output: Path) -> Path:
    """Write the report to `output`, creating its folder, and return the absolute path."""
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_html(data, source), encoding="utf-8")
    return output
