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
from smb_fanout.spark import get_spark

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = PROJECT_ROOT.parent / "shared" / "data" / "real"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    # The jars live in the project's folder; tables of each test go to tmp_path.
    config = load_config("local", [f"spark.jars_dir={PROJECT_ROOT / '.smb-fanout' / 'jars'}"])
    session = get_spark(config, app_name="smb-fanout-tests")
    yield session
    session.stop()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A local configuration whose tables and MLflow store live in `tmp_path`."""
    return load_config("local", [f"storage.local_root={tmp_path}"])


def real_data(*parts: str) -> Path:
    """Path under the shared real-data folder; skips the test when it is absent."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path
