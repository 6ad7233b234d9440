"""The demo on a generated fleet, and the replay of a real trace over generated history."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from smb_fanout.config import Config
from smb_fanout.generator import ExtraHost, FleetSpec, generate_fleet
from smb_fanout.ingest.job import parse_files
from smb_fanout.ingest.normalize import utc_date
from smb_fanout.ingest.reader import expand_paths
from smb_fanout.pipeline import NoUsableEventsError, PipelineResult, alerts_frame, run_pipeline

logger = logging.getLogger(__name__)

# Kerberos, LDAP, LDAPS and the global catalog: a client reaching these talks to a domain controller.
DIRECTORY_PORTS = (88, 389, 636, 3268)


@dataclass
class Evaluation:
    """Alerts compared with the injected attacks."""

    attacks: int
    detected_attacks: list[str] = field(default_factory=list)
    missed_attacks: list[str] = field(default_factory=list)
    false_positive_hosts: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    pipeline: PipelineResult
    alerts: list[dict[str, Any]]
    evaluation: Evaluation | None
    data_dir: Path
    tables_dir: Path
    mlflow_uri: str


def reset_outputs(config: Config) -> None:
    """Remove the tables and MLflow store under `storage.local_root`, so a demo starts clean."""
    for name in ("tables", "mlflow"):
        shutil.rmtree(config.local_root / name, ignore_errors=True)


def evaluate(alerts: list[dict[str, Any]], labels: list[dict[str, Any]], window_hours: int) -> Evaluation:
    """Match alerts to labelled attacks by host and overlapping time; every other alert is a false positive."""
    result = Evaluation(attacks=len(labels))
    matched_alerts: set[str] = set()
    for attack in labels:
        start = datetime.fromisoformat(attack["start"].replace("Z", "+00:00")).replace(tzinfo=None)
        end = datetime.fromisoformat(attack["end"].replace("Z", "+00:00")).replace(tzinfo=None)
        hits = [
            alert
            for alert in alerts
            if alert["host_id"] == attack["host_id"] and alert["window_start"] <= end and alert["window_end"] >= start
        ]
        target = result.detected_attacks if hits else result.missed_attacks
        target.append(f"{attack['host_name']} ({attack['attack_id']})")
        matched_alerts.update(alert["alert_id"] for alert in hits)
    result.false_positive_hosts = sorted(
        {alert["host_name"] or alert["host_id"] for alert in alerts if alert["alert_id"] not in matched_alerts}
    )
    return result


def collect_alerts(spark: SparkSession, config: Config, limit: int = 200) -> list[dict[str, Any]]:
    return [row.asDict(recursive=True) for row in alerts_frame(spark, config).limit(limit).collect()]


def run_demo(
    spark: SparkSession, config: Config, spec: FleetSpec, on_step: Callable[[str], None] | None = None
) -> DemoResult:
    """Generate a labelled fleet, run the pipeline on it and compare the alerts with the labels.

    `on_step` is called with the name of each step (generate, ingest, stats, fit, score) before it starts.
    """
    if on_step is not None:
        on_step("generate")
    reset_outputs(config)
    data_dir = config.local_root / "fleet"
    shutil.rmtree(data_dir, ignore_errors=True)
    fleet = generate_fleet(spec, data_dir)
    end = spec.end.replace(tzinfo=None)
    score_from = end - timedelta(days=spec.attack_days)
    result = run_pipeline(spark, config, [str(fleet.events_dir)], "canonical", score_from, end, on_step)
    alerts = collect_alerts(spark, config)
    labels = json.loads(fleet.labels_path.read_text(encoding="utf-8"))
    evaluation = evaluate(alerts, labels, config.detector.window_hours)
    return DemoResult(result, alerts, evaluation, data_dir, config.local_root / "tables", _mlflow_uri(config))


def _mlflow_uri(config: Config) -> str:
    from smb_fanout.registry import tracking_uris

    return tracking_uris(config)[0]


def trace_hosts(spark: SparkSession, paths: list[str], input_format: str, config: Config) -> list[dict[str, Any]]:
    """Source hosts of outbound SMB in a real trace, with address, first and last event and domain controllers.

    A destination the host reached over Kerberos or LDAP is taken as its
    domain controller, which a Windows client also contacts over SMB for
    SYSVOL and group policy in its ordinary history. The trace is small (one
    capture), so its per-host summary is collected.
    """
    events = parse_files(spark, expand_paths(paths), input_format).where(F.col("reason").isNull())
    outbound = events.where(F.col("direction") == "outbound")
    smb = outbound.where(F.col("remote_port").isin(*config.detector.smb_ports))
    directory = (
        outbound.where(F.col("remote_port").isin(*DIRECTORY_PORTS))
        .groupBy("host_id")
        .agg(F.array_sort(F.collect_set("remote_ip")).alias("domain_controllers"))
    )
    rows = (
        smb.groupBy("host_id")
        .agg(
            F.max("host_name").alias("host_name"),
            F.min("local_ip").alias("ip"),
            F.min("event_time").alias("first"),
            F.max("event_time").alias("last"),
        )
        .join(directory, "host_id", "left")
        .orderBy("host_id")
        .limit(1000)
        .collect()
    )
    return [row.asDict() for row in rows]


def run_replay(
    spark: SparkSession,
    config: Config,
    trace: list[str],
    input_format: str,
    workstations: int = 20,
    days: int = 35,
    seed: int = 11,
    on_step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Splice a real trace into a generated fleet and run the pipeline on both.

    The trace's SMB source hosts become fleet members with `days` of ordinary
    generated history that ends when the trace starts. The trace keeps its
    own timestamps. A trace host's ordinary SMB goes to the domain
    controllers it reached in the trace, or to the fleet's servers when it
    reached none.
    """
    hosts = trace_hosts(spark, trace, input_format, config)
    if not hosts:
        raise NoUsableEventsError(f"no outbound SMB events in {', '.join(trace)}: nothing to replay")
    reset_outputs(config)
    start = min(host["first"] for host in hosts)
    end = max(host["last"] for host in hosts)
    history_end = start.replace(minute=0, second=0, microsecond=0)
    extra = _extra_hosts(hosts)
    spec = FleetSpec(
        workstations=workstations,
        days=days,
        end=history_end.replace(tzinfo=UTC),
        seed=seed,
        attacks=0,
        late_joiners=0,
        extra_hosts=tuple(extra),
    )
    if on_step is not None:
        on_step("generate")
    data_dir = config.local_root / "replay"
    shutil.rmtree(data_dir, ignore_errors=True)
    fleet = generate_fleet(spec, data_dir)
    stop = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    result = run_pipeline(
        spark,
        config,
        [str(fleet.events_dir), *trace],
        "auto",
        score_from=history_end,
        score_to=stop,
        on_step=on_step,
    )
    alerts = collect_alerts(spark, config)
    return DemoResult(result, alerts, None, data_dir, config.local_root / "tables", _mlflow_uri(config))


def shift_files_to_days(first_day: date) -> Callable[[DataFrame], DataFrame]:
    """Move each input file to its own UTC day: the earliest file to `first_day`, the next to the day after.

    Files are ordered by their first event; each keeps its time of day, so
    short captures recorded months apart replay as consecutive days of one
    fleet. The per-file window sees one row per file.
    """

    def shift(parsed: DataFrame) -> DataFrame:
        timed = parsed.where(F.col("event_time").isNotNull())
        starts = timed.groupBy("source_file").agg(F.min("event_time").alias("_file_start"))
        order = Window.orderBy("_file_start", "source_file")
        offsets = starts.withColumn("_day_index", F.row_number().over(order) - 1).withColumn(
            "_shift_days",
            F.date_diff(F.date_add(F.lit(first_day), F.col("_day_index")), utc_date(F.col("_file_start"))),
        )
        shifted = parsed.join(F.broadcast(offsets.select("source_file", "_shift_days")), "source_file", "left")
        new_time = F.col("event_time") + F.make_dt_interval(F.coalesce(F.col("_shift_days"), F.lit(0)))
        return (
            shifted.withColumn("event_time", new_time)
            .withColumn("event_date", utc_date(F.col("event_time")))
            .drop("_shift_days")
        )

    return shift


def _extra_hosts(hosts: list[dict[str, Any]]) -> list[ExtraHost]:
    extra = []
    for host in hosts:
        if host["ip"] is None:
            continue
        extra.append(
            ExtraHost(
                host_id=host["host_id"],
                host_name=host["host_name"] or host["host_id"],
                ip=host["ip"],
                role="workstation",
                usual_smb_destinations=tuple(host["domain_controllers"] or ()),
            )
        )
    return extra
