"""The same pipeline on a Spark standalone cluster (master and two workers on loopback) gives the same alerts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from smb_fanout.config import Config, load_config
from smb_fanout.demo import DemoResult
from smb_fanout.tables import Tables
from tests.conftest import DEMO_SPEC, PROJECT_ROOT, TEST_MAX_RESULT_SIZE
from tests.standalone import standalone_cluster

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

# Columns that differ between two runs by design: the MLflow run (the content
# hash covers its id) and the wall-clock times.
RUN_SPECIFIC = {"model_run_id", "content_hash", "detected_at", "updated_at"}


def alert_rows(spark: SparkSession, config: Config) -> list[dict]:
    alerts = Tables(config).smb_alerts.read(spark)
    columns = [name for name in alerts.columns if name not in RUN_SPECIFIC]
    return [row.asDict(recursive=True) for row in alerts.select(*columns).orderBy("alert_id").collect()]


def test_cluster_alerts_match_local_mode(
    spark: SparkSession, demo: DemoResult, demo_config: Config, tmp_path: Path
) -> None:
    root = tmp_path / "cluster-run"
    cli = Path(sys.executable).parent / "smb-fanout"
    with standalone_cluster(tmp_path / "cluster") as cluster:
        command = [
            str(cli),
            "--set", f"storage.local_root={root}",
            "--set", f"spark.master={cluster.master_url}",
            "--set", f"spark.jars_dir={PROJECT_ROOT / '.smb-fanout' / 'jars'}",
            "--set", f"spark.max_result_size={TEST_MAX_RESULT_SIZE}",
            "--set", "spark.executor_memory=1g",
            "demo",
            "--workstations", str(DEMO_SPEC.workstations),
            "--days", str(DEMO_SPEC.days),
            "--attacks", str(DEMO_SPEC.attacks),
            "--seed", str(DEMO_SPEC.seed),
        ]  # fmt: skip
        finished = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        executor_logs = sorted(path.name for path in (tmp_path / "cluster" / "work").glob("app-*/*"))
    assert finished.returncode == 0, finished.stderr[-3000:]
    # Both workers ran executors for the application: the work really was distributed.
    assert executor_logs == ["0", "1"]

    local = alert_rows(spark, demo_config)
    distributed = alert_rows(spark, load_config("local", [f"storage.local_root={root}"]))
    assert sorted(row["host_id"] for row in local) == sorted(alert["host_id"] for alert in demo.alerts)
    assert len(local) == DEMO_SPEC.attacks
    assert distributed == local
