"""Databricks task file and local entry point for the maintain job.

Takes the options of `smb-fanout maintain` and the global options, in any
order, for example `--env prod --set operations.vacuum_retention_hours=336`.
"""

import sys

from smb_fanout.cli import run_job

if __name__ == "__main__":
    run_job("maintain", sys.argv[1:])
