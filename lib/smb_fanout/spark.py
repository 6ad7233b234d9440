"""SparkSession factory: the active session on Databricks, an embedded Delta-enabled one locally."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from smb_fanout.config import Config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

_DELTA_JAR_PREFIX = "delta-spark_"


class DeltaJarsMissingError(RuntimeError):
    """Raised when the local Delta jars have not been downloaded yet."""


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def delta_jars(folder: Path) -> list[Path]:
    """Return the cached Delta jars in `folder`.

    Raises:
        DeltaJarsMissingError: the folder has no delta-spark jar.
    """
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    if not any(jar.name.startswith(_DELTA_JAR_PREFIX) for jar in jars):
        raise DeltaJarsMissingError(
            f"Delta jars not found in {folder}: run `make jars` (Maven copies them from "
            "Maven Central once) or set spark.jars_dir to a folder that has them"
        )
    return jars


def get_spark(config: Config, app_name: str = "smb-fanout") -> SparkSession:
    """Return the active session on Databricks, or build a local Delta-enabled one.

    The local session listens on loopback only, runs in UTC, and keeps its
    warehouse and metastore under `storage.local_root`.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if on_databricks():
        return SparkSession.builder.getOrCreate()

    root = config.local_root
    root.mkdir(parents=True, exist_ok=True)
    jars = delta_jars(Path(config.spark.jars_dir).resolve())
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", _venv_python())
    os.environ["TZ"] = "UTC"
    time.tzset()
    warehouse = root / "warehouse"
    derby_home = root / "metastore"
    derby_home.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(config.spark.master)
        .config("spark.jars", ",".join(str(jar) for jar in jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", f"-Duser.timezone=UTC -Dderby.system.home={derby_home}")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", config.spark.driver_memory)
        .config("spark.driver.maxResultSize", config.spark.max_result_size)
        .config("spark.executor.memory", config.spark.executor_memory)
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.sql.shuffle.partitions", str(config.spark.shuffle_partitions))
        .config("spark.default.parallelism", str(config.spark.shuffle_partitions))
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # Small tasks start on any free executor at once. By default Spark waits
        # up to 3 s for the executor that has their input (a local checkpoint).
        .config("spark.locality.wait", "0s")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    logger.info("started local Spark %s with warehouse %s", spark.version, warehouse)
    return spark


def _venv_python() -> str:
    return sys.executable
