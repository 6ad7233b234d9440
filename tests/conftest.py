"""Shared fixtures: one local Delta-enabled Spark session for the whole test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ["TZ"] = "UTC"

from pyspark.sql import SparkSession

from smb_fanout.config import Config, load_config
from smb_fanout.demo import DemoResult, run_demo
from smb_fanout.generator import FleetSpec
from smb_fanout.spark import get_spark

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = PROJECT_ROOT.parent / "shared" / "data" / "real"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Small enough that collecting fleet-sized data to the driver fails a test,
# large enough for the bounded summaries the jobs do collect.
TEST_MAX_RESULT_SIZE = "2m"


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    # The jars live in the project's folder. The session's warehouse and the
    # tables of each test go to temporary folders.
    config = load_config(
        "local",
        [
            f"storage.local_root={tmp_path_factory.mktemp('spark')}",
            f"spark.jars_dir={PROJECT_ROOT / '.smb-fanout' / 'jars'}",
            f"spark.max_result_size={TEST_MAX_RESULT_SIZE}",
        ],
    )
    session = get_spark(config, app_name="smb-fanout-tests")
    yield session
    session.stop()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A local configuration whose tables and MLflow store live in `tmp_path`."""
    return load_config("local", [f"storage.local_root={tmp_path}"])


# The generated fleet the integration tests share: the pipeline runs on it once.
DEMO_SPEC = FleetSpec(workstations=24, days=20, attacks=3, seed=7)


@pytest.fixture(scope="session")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return load_config("local", [f"storage.local_root={tmp_path_factory.mktemp('demo')}"])


@pytest.fixture(scope="session")
def demo(spark: SparkSession, demo_config: Config) -> DemoResult:
    return run_demo(spark, demo_config, DEMO_SPEC)


def real_data(*parts: str) -> Path:
    """Path under the shared real-data folder; skips the test when it is absent."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path
