"""The fit job: thresholds from 30 days of host windows, tracked and registered in MLflow."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout import checkpoints, registry
from smb_fanout.config import Config
from smb_fanout.fit.peers import assign_peer_groups
from smb_fanout.fit.plots import plot_fleet_distribution
from smb_fanout.fit.thresholds import (
    FLEET_HOST_ID,
    FleetDistribution,
    destination_popularity,
    fleet_distribution,
    host_statistics,
    observed_windows,
    priors,
    process_rarity,
    split_common,
    thresholds,
    training_period,
)
from smb_fanout.health import recorded_run
from smb_fanout.stats.job import read_state
from smb_fanout.tables import Tables, merge

logger = logging.getLogger(__name__)


class NothingToFitError(RuntimeError):
    """Raised when there are no host windows to fit on."""


@dataclass(frozen=True)
class FitResult:
    model: registry.ModelVersion
    training_start: datetime
    training_end: datetime
    hosts: int
    fleet_floor: float
    fleet_tail_threshold: float
    expected_alerts_per_day: float


def expected_alerts_per_day(windows: DataFrame, fitted: DataFrame, min_new: int, days: int) -> float:
    """Training windows that would alert, counted once per host and day, per day of training."""
    fleet = fitted.where(F.col("host_id") == FLEET_HOST_ID).select(F.col("threshold").alias("_fleet_threshold"))
    crossing = (
        windows.join(fitted.select("host_id", "threshold"), "host_id", "left")
        .crossJoin(fleet)
        .where(
            (F.col("new_destination_count") >= min_new)
            & (F.col("new_destination_count") > F.coalesce(F.col("threshold"), F.col("_fleet_threshold")))
        )
    )
    alerts = crossing.select("host_id", F.to_date("window_end").alias("day")).distinct().count()
    return alerts / max(days, 1)


def run_fit(
    spark: SparkSession, config: Config, training_end: datetime | None = None, candidate: bool = False
) -> FitResult:
    """Fit thresholds on the training period ending at `training_end` (default: the stats progress).

    A `candidate` fit registers a model version and leaves the alias where it is.
    """
    with recorded_run(spark, config, "fit") as record:
        result = _fit(spark, config, training_end, candidate)
        record.rows_written = result.hosts
        record.model_version = result.model.version
    return result


def _fit(spark: SparkSession, config: Config, training_end: datetime | None, candidate: bool) -> FitResult:
    detector = config.detector
    tables = Tables(config)
    state = read_state(spark, config)
    end = training_end or (state.processed_through if state else None)
    if end is None:
        raise NothingToFitError("no host windows yet: run `smb-fanout stats` before `fit`")
    start, end = training_period(end, detector.training_days)
    hourly = tables.smb_contacts_hourly.read(spark).where(
        (F.col("hour") >= F.lit(start)) & (F.col("hour") < F.lit(end))
    )
    popularity = destination_popularity(hourly).persist()
    common = popularity.where(F.col("host_fraction") >= detector.common_destination_fraction)
    windows = split_common(
        tables.smb_host_windows.read(spark).where(
            (F.col("window_end") > F.lit(start)) & (F.col("window_end") <= F.lit(end))
        ),
        common,
    )
    addresses = tables.host_addresses.read(spark)
    hosts = addresses.groupBy("host_id").agg(
        F.min("first_seen").alias("first_seen"), F.max_by("host_name", "last_seen").alias("host_name")
    )
    hosts = hosts.where(F.col("first_seen") < F.lit(end))
    stats = host_statistics(
        windows,
        observed_windows(hosts, start, end, detector.window_hours),
        1.0 - detector.p_abnormal,
    )
    stats = assign_peer_groups(
        stats.join(hosts.select("host_id", "host_name"), "host_id", "left"),
        tables.host_roles.read(spark),
        addresses.where(F.col("first_seen") < F.lit(end)),
        config.peers,
    ).persist()
    try:
        fleet = fleet_distribution(stats, windows)
        if fleet.total == 0:
            raise NothingToFitError(f"no host windows between {start} and {end}: run `smb-fanout stats` first")
        prior_rows = priors(stats, detector, config.peers.min_hosts)
        fitted = thresholds(stats, prior_rows, fleet, detector, start, end).persist()
        result = _track(spark, config, windows, hourly, popularity, fitted, fleet, start, end, candidate)
    finally:
        stats.unpersist()
        popularity.unpersist()
    return result


def _track(
    spark: SparkSession,
    config: Config,
    windows: DataFrame,
    hourly: DataFrame,
    popularity: DataFrame,
    fitted: DataFrame,
    fleet: FleetDistribution,
    start: datetime,
    end: datetime,
    candidate: bool,
) -> FitResult:
    import mlflow

    detector = config.detector
    experiment_id = registry.configure(config)
    fleet_row = fitted.where(F.col("host_id") == FLEET_HOST_ID).first()
    assert fleet_row is not None
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"fit-{end:%Y%m%dT%H}") as run:
        run_id = run.info.run_id
        mlflow.log_params({f"detector.{key}": value for key, value in detector.model_dump().items()})
        mlflow.log_params({"training_start": start.isoformat(), "training_end": end.isoformat()})
        per_day = expected_alerts_per_day(windows, fitted, detector.min_new_destinations, detector.training_days)
        hosts = fitted.where(~F.col("host_id").startswith("*")).count()
        metrics = {
            "hosts": float(hosts),
            "host_windows": float(fleet.total),
            "fleet_floor": float(fleet_row["fleet_floor"]),
            "fleet_tail_threshold": float(fleet_row["fleet_tail_threshold"]),
            "fleet_mean_new_destinations": fleet.mean,
            "expected_alerts_per_day": per_day,
            "expected_alerts_per_1000_hosts_per_day": 1000.0 * per_day / max(hosts, 1),
        }
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as folder:
            figure = plot_fleet_distribution(
                fleet, fleet_row["fleet_floor"], fleet_row["fleet_tail_threshold"], Path(folder)
            )
            mlflow.log_artifact(str(figure), artifact_path="plots")
        rows = fitted.withColumn("model_run_id", F.lit(run_id)).withColumn("fitted_at", F.current_timestamp())
        merge(rows, Tables(config).smb_thresholds)
        checkpoints.reached("fit.thresholds_merged")
        merge(popularity.withColumn("model_run_id", F.lit(run_id)), Tables(config).smb_destination_popularity)
        merge(
            process_rarity(hourly).withColumn("model_run_id", F.lit(run_id)),
            Tables(config).smb_process_rarity,
        )
        checkpoints.reached("fit.rarity_merged")
        # The alias moves last, after the thresholds are written, so a score
        # that resolves the champion always finds its thresholds.
        model = registry.register_fit(config, run_id, detector.min_new_destinations, move_alias=not candidate)
    fitted.unpersist()
    logger.info(
        "fit: %s hosts, floor %.1f, tail %.1f, %.2f expected alerts per day, model version %s",
        hosts,
        metrics["fleet_floor"],
        metrics["fleet_tail_threshold"],
        per_day,
        model.version,
    )
    return FitResult(model, start, end, hosts, metrics["fleet_floor"], metrics["fleet_tail_threshold"], per_day)
