"""The local HTML report: alerts over time, severity mix, top hosts, one alert's timeline and thresholds."""

from smb_fanout.report.data import AlertNotFoundError, ReportData, load_report_data
from smb_fanout.report.page import SECTION_IDS, render_html, write_report

__all__ = ["SECTION_IDS", "AlertNotFoundError", "ReportData", "load_report_data", "render_html", "write_report"]
