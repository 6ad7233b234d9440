"""The `smb-fanout` command line: one subcommand per job, plus demo, run, replay and alerts.

Exit codes: 0 success; 1 the job failed; 2 invalid usage or configuration.
"""

from smb_fanout.cli import alerts, jobs, report, runs
from smb_fanout.cli.app import app, run_app, run_job

__all__ = ["alerts", "app", "jobs", "main", "report", "run_app", "run_job", "runs"]


def main() -> None:
    """Console-script entry point."""
    run_app()
