"""Databricks task file and local entry point for the maintenance job.

Takes the options of `smb-fanout maintain` and the global options, in any order,
for example `--env prod --set storage.schema=smb_fanout`.
"""

import sys

from smb_fanout.cli import run_job

if __name__ == "__main__":
    run_job("maintain", sys.argv[1:])
