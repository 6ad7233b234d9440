"""The whole pipeline on one input: ingest, stats, fit and score, as the demo, `run` and `replay` use it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import Config
from smb_fanout.fit.job import FitResult, NothingToFitError, run_fit
from smb_fanout.ingest.job import IngestResult, run_ingest
from smb_fanout.score.job import ScoreResult, run_score
from smb_fanout.stats.job import StatsResult, run_stats
from smb_fanout.tables import Tables

logger = logging.getLogger(__name__)


class NoUsableEventsError(RuntimeError):
    """Raised when the input gave no event the stats job could aggregate."""


@dataclass(frozen=True)
class PipelineResult:
    ingest: IngestResult
    stats: StatsResult
    fit: FitResult
    score: ScoreResult


def run_pipeline(
    spark: SparkSession,
    config: Config,
    paths: list[str],
    input_format: str | None,
    score_from: datetime | None = None,
    score_to: datetime | None = None,
    on_step: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run all four jobs on `paths`, calling `on_step` with each job's name before it starts.

    The model is fitted on the training period that ends at `score_from`
    (default: one window before the end of the data), so the scored windows
    are never part of their own baseline.
    """
    step = on_step or _no_step
    step("ingest")
    ingested = run_ingest(spark, config, paths, input_format)
    step("stats")
    stats = run_stats(spark, config)
    if stats.batch_end is None:
        raise NoUsableEventsError(
            f"no new events to aggregate: {ingested.rows_read} rows read, {ingested.rows_written} written, "
            f"{ingested.rows_quarantined} quarantined {ingested.quarantine_reasons}, "
            f"{ingested.duplicates_removed} duplicates of events already ingested; "
            "check --format and the input paths, or use a new storage.local_root"
        )
    end = score_to or stats.batch_end
    start = score_from or end - timedelta(hours=config.detector.window_hours)
    step("fit")
    try:
        fit = run_fit(spark, config, training_end=start)
    except NothingToFitError as err:
        raise NothingToFitError(
            f"the data ends at {end} and has no SMB host windows in the {config.detector.training_days} "
            f"training days before {start}, so no model can be fitted. A short capture needs history: "
            "`smb-fanout replay --trace FILE` places it over generated history"
        ) from err
    step("score")
    score = run_score(spark, config, window_from=start, window_to=end)
    return PipelineResult(ingested, stats, fit, score)


def _no_step(name: str) -> None:
    return None


def alerts_frame(spark: SparkSession, config: Config) -> DataFrame:
    """Read the alert table ordered for display: newest first, then host."""
    return Tables(config).smb_alerts.read(spark).orderBy(F.col("window_end").desc(), "host_name", "alert_id")
