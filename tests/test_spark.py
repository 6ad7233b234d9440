"""The local session's guards: what a test session refuses to bring to the driver."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import TEST_MAX_RESULT_SIZE


def test_session_runs_with_small_result_limit(spark: SparkSession) -> None:
    assert spark.conf.get("spark.driver.maxResultSize") == TEST_MAX_RESULT_SIZE


def test_collect_of_fleet_sized_rows_fails(spark: SparkSession) -> None:
    # About 400,000 rows of 40-character strings: far above the test limit.
    rows = spark.range(400_000, numPartitions=4).select(F.sha1(F.col("id").cast("string")).alias("digest"))
    with pytest.raises(Exception, match="maxResultSize"):
        rows.collect()


def test_collect_of_bounded_summary_passes(spark: SparkSession) -> None:
    summary = spark.range(400_000, numPartitions=4).agg(F.count("*").alias("rows")).collect()
    assert summary[0]["rows"] == 400_000
