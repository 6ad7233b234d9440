"""The HTML report: bounded data from real Delta tables, the page, the command and a headless Chromium render."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image
from pyspark.sql import SparkSession

from smb_fanout.cli import run_app
from smb_fanout.config import Config, load_config
from smb_fanout.report import SECTION_IDS, AlertNotFoundError, ReportData, load_report_data, render_html
from tests.alert_rows import BASE, write_tables

# Medium, highly rare series colour in the charts, #e6550d.
MEDIUM_RARE_RGB = (230, 85, 13)


@pytest.fixture(scope="module")
def report_config(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Config:
    config = load_config("local", [f"storage.local_root={tmp_path_factory.mktemp('report')}"])
    write_tables(spark, config)
    return config


@pytest.fixture(scope="module")
def report_data(spark: SparkSession, report_config: Config) -> ReportData:
    return load_report_data(spark, report_config, days=30, now=BASE)


def test_summary_counts(report_data: ReportData) -> None:
    summary = report_data.summary
    assert summary["alerts"] == 4
    assert summary["hosts"] == 3
    assert summary["medium"] == 1
    assert summary["highly_rare"] == 1
    assert summary["model_version"] == "3"


def test_daily_and_top_hosts(report_data: ReportData) -> None:
    assert [(str(r["day"]), r["severity"], r["alerts"]) for r in report_data.daily] == [
        ("2026-11-21", "Low", 1),
        ("2026-11-22", "Low", 2),
        ("2026-11-23", "Medium", 1),
    ]
    assert [(r["host_name"], r["alerts"]) for r in report_data.top_hosts] == [
        ("ws-01.corp.local", 2),
        ("ws-03.corp.local", 1),
        ("ws-02.corp.local", 1),
    ]
    assert [alert["alert_id"] for alert in report_data.newest_alerts] == ["a4", "a3", "a2", "a1"]


def test_default_alert_and_host_history(report_data: ReportData) -> None:
    assert report_data.alert is not None
    assert report_data.alert["alert_id"] == "a4"
    assert len(report_data.alert["new_destinations"]) == 20
    assert [(str(w["window_end"]), w["new_destination_count"]) for w in report_data.host_windows] == [
        ("2026-11-21 00:00:00", 1),
        ("2026-11-22 00:00:00", 0),
        ("2026-11-23 09:00:00", 20),
    ]


def test_threshold_histogram_capped(report_data: ReportData) -> None:
    # srv-01's threshold of 75 falls in the last bin; the fleet row '*' is not a host.
    assert [(r["threshold_bin"], r["hosts"]) for r in report_data.thresholds] == [(4, 2), (5, 1), (60, 1)]
    assert report_data.fleet_lines == {"fleet floor": 4.0, "highly rare tail": 12.0}


def test_alert_chosen_by_prefix(spark: SparkSession, report_config: Config) -> None:
    data = load_report_data(spark, report_config, alert_id="a2")
    assert data.alert is not None
    assert data.alert["host_id"] == "ws-01"
    assert [w["new_destination_count"] for w in data.host_windows] == [9]


def test_unknown_alert_rejected(spark: SparkSession, report_config: Config) -> None:
    with pytest.raises(AlertNotFoundError, match="'zz' not found"):
        load_report_data(spark, report_config, alert_id="zz")


def test_empty_tables_give_report(spark: SparkSession, tmp_path: Path) -> None:
    data = load_report_data(spark, load_config("local", [f"storage.local_root={tmp_path}"]))
    assert data.summary["alerts"] == 0
    assert data.daily == []
    assert data.alert is None
    page = render_html(data, "empty tables")
    assert "No alerts in this period" in page
    assert "No alert to show" in page
    assert "No fitted model" in page


def test_page_self_contained_and_escaped(report_data: ReportData) -> None:
    hostile = dict(report_data.newest_alerts[0], host="<img src=x onerror=alert(1)>")
    page = render_html(replace(report_data, newest_alerts=[hostile]), "test tables")
    for section in SECTION_IDS:
        assert f'<section id="{section}">' in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page
    assert re.search(r"<script[^>]+src=", page) is None, "the page must not load scripts from elsewhere"
    assert page.count('class="plotly-graph-div"') == 5


def test_report_command_prints_path(report_config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out" / "report.html"
    root = report_config.storage.local_root
    run_app(["--json", "--set", f"storage.local_root={root}", "report", "--output", str(output)])
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"report": str(output.resolve()), "alerts": 4}
    assert "ws-03.corp.local" in output.read_text(encoding="utf-8")


def test_report_command_unknown_alert(report_config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    root = report_config.storage.local_root
    with pytest.raises(SystemExit) as stopped:
        run_app(["--set", f"storage.local_root={root}", "report", "--alert", "nope"])
    assert stopped.value.code == 1
    assert "alert id 'nope' not found" in capsys.readouterr().err


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: `make setup` installs the Debian package chromium")
    pytest.skip("chromium is not installed (Debian package chromium)")


def unused_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_chromium(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    """Open `page` in headless Chromium with every name unresolvable and a proxy that nothing listens on."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-breakpad",
        "--disable-domain-reliability",
        f"--proxy-server=http://127.0.0.1:{unused_loopback_port()}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--window-size=1300,2600",
        "--virtual-time-budget=15000",
        *mode,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def test_report_renders_in_chromium(report_data: ReportData, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report_data, "test tables"), encoding="utf-8")
    screenshot = tmp_path / "report.png"

    run_chromium(page, tmp_path / "profile-shot", f"--screenshot={screenshot}")
    dom = run_chromium(page, tmp_path / "profile-dom", "--dump-dom").stdout

    for section in SECTION_IDS:
        assert f'id="{section}"' in dom
    # plotly draws each chart as an SVG with class main-svg once its script has run.
    for chart in ("alerts-over-time", "severity-mix", "top-hosts", "alert-timeline", "threshold-distribution"):
        start = dom.index(f'id="chart-{chart}"')
        assert "main-svg" in dom[start : start + 5000], f"chart {chart} was not drawn"
    assert "ws-01.corp.local" in dom
    assert "threshold 5" in dom
    assert "fleet floor 4" in dom

    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1300, 2600)
    colors = image.getcolors(maxcolors=1_000_000)
    assert colors is not None
    white = sum(count for count, rgb in colors if min(rgb) > 245)
    assert white < 0.97 * image.width * image.height, "the screenshot is blank"
    orange = sum(
        count for count, rgb in colors if all(abs(a - b) <= 6 for a, b in zip(rgb, MEDIUM_RARE_RGB, strict=True))
    )
    assert orange > 200, "the Medium, highly rare series is not drawn"
