"""Detector health: one `detector_runs` row per job run, with counts and a status.

Status is `running` while the job runs, then `succeeded`, `degraded` or
`failed`. A degraded run still wrote its output, and `status_reason` names
what needs attention (more alerts than the budget, no new input). A run that was
killed stays `running`.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from smb_fanout.config import Config
from smb_fanout.tables import Tables, append, merge

logger = logging.getLogger(__name__)

RUNNING = "running"
SUCCEEDED = "succeeded"
DEGRADED = "degraded"
FAILED = "failed"

_ROW_DDL = (
    "run_id string, job string, started_at timestamp, finished_at timestamp, status string, "
    "rows_read long, rows_written long, rows_quarantined long, rows_late long, rows_too_late long, "
    "hosts_scored long, alerts_opened long, alerts_updated long, duration_s double, model_version string, "
    "status_reason string, detections_excluded long, expired_exclusions string"
)


@dataclass
class RunRecord:
    """Counts a job fills in while it runs; `degrade` adds a reason for status `degraded`."""

    run_id: str
    job: str
    started_at: datetime
    rows_read: int | None = None
    rows_written: int | None = None
    rows_quarantined: int | None = None
    rows_late: int | None = None
    rows_too_late: int | None = None
    hosts_scored: int | None = None
    alerts_opened: int | None = None
    alerts_updated: int | None = None
    model_version: str | None = None
    detections_excluded: int | None = None
    expired_exclusions: str | None = None
    reasons: list[str] = field(default_factory=list)

    def degrade(self, reason: str) -> None:
        logger.warning("%s run %s is degraded: %s", self.job, self.run_id, reason)
        self.reasons.append(reason)


def use_utc(spark: SparkSession) -> None:
    """Pin the Spark session and this Python process to UTC, whatever the cluster set.

    Spark derives dates and hour boundaries from the session time zone, and
    PySpark converts naive `datetime` values with the process time zone.
    """
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    if os.environ.get("TZ") != "UTC":
        os.environ["TZ"] = "UTC"
        time.tzset()


@contextmanager
def recorded_run(spark: SparkSession, config: Config, job: str) -> Iterator[RunRecord]:
    """Record one run of `job` in `detector_runs`: a `running` row first, the outcome at the end."""
    use_utc(spark)
    record = RunRecord(str(uuid.uuid4()), job, datetime.now(UTC))
    clock = time.monotonic()
    _write(spark, config, record, RUNNING, None)
    try:
        yield record
    except BaseException as err:
        record.reasons.append(f"{type(err).__name__}: {err}"[:1000])
        try:
            _write(spark, config, record, FAILED, time.monotonic() - clock)
        except Exception:
            logger.exception("could not record the failure of %s run %s in detector_runs", job, record.run_id)
        raise
    status = DEGRADED if record.reasons else SUCCEEDED
    _write(spark, config, record, status, time.monotonic() - clock)


def _write(spark: SparkSession, config: Config, record: RunRecord, status: str, duration: float | None) -> None:
    finished = datetime.now(UTC) if status != RUNNING else None
    row = (
        record.run_id,
        record.job,
        record.started_at,
        finished,
        status,
        record.rows_read,
        record.rows_written,
        record.rows_quarantined,
        record.rows_late,
        record.rows_too_late,
        record.hosts_scored,
        record.alerts_opened,
        record.alerts_updated,
        duration,
        record.model_version,
        "; ".join(record.reasons) or None,
        record.detections_excluded,
        record.expired_exclusions,
    )
    frame = spark.createDataFrame([row], _ROW_DDL)
    if status == RUNNING:
        # The run id is new, so a blind append is enough and costs one commit.
        append(frame, Tables(config).detector_runs)
    else:
        merge(frame, Tables(config).detector_runs)
