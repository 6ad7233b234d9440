"""Databricks task file and local entry point for the evaluation on the labelled scenario library.

Takes the options of `smb-fanout evaluate` and the global options, in any
order, for example `--env dev --set storage.schema=smb_fanout_evaluation`.
"""

import sys

from smb_fanout.cli import run_job

if __name__ == "__main__":
    run_job("evaluate", sys.argv[1:])
