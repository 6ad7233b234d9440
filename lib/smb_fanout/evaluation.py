"""Evaluation: run the pipeline on the labelled scenario library and measure the alerts per class.

The library injects every scenario class of `generator.scenarios` into a
generated fleet. The model is fitted on the history before the last third
of the period, and that last third is scored in one run (the pipeline
tests check that hourly runs give the same alerts). Labels and alerts are
matched in Spark, so only the per-class summary reaches the driver.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout.config import Config, HostExclusion
from smb_fanout.demo import reset_outputs
from smb_fanout.generator import FleetSpec, generate_fleet
from smb_fanout.generator.scenarios import ATTACK, CLASSES, EXCLUDED, LOW
from smb_fanout.pipeline import run_pipeline
from smb_fanout.tables import Tables

logger = logging.getLogger(__name__)

# The default library: 500 workstations over 45 days, each class four times.
DEFAULT_LIBRARY = FleetSpec(
    workstations=500,
    file_servers=24,
    days=45,
    attacks=0,
    dhcp_changes=0,
    late_joiners=10,
    scenarios=tuple(CLASSES),
    scenario_repeats=4,
    seed=11,
)
ALLOWLIST_OWNER = "evaluation"


@dataclass(frozen=True)
class ClassResult:
    """Measured outcome of one scenario class."""

    scenario: str
    kind: str
    expected: str
    instances: int
    alerted: int
    low_alerts: int
    medium_alerts: int
    excluded_detections: int
    recall: float | None
    median_minutes_to_detect: float | None
    meets_expectation: bool
    # Over the whole scored period on the class's hosts: the share of their
    # alerts that an attack of the class explains, and alerts per 1,000 host-days.
    precision: float | None = None
    alerts_per_1000_host_days: float = 0.0


@dataclass(frozen=True)
class EvaluationResult:
    """Per-class results and the fleet-wide figures of one evaluation run."""

    spec: dict[str, Any]
    scored_from: datetime
    scored_to: datetime
    hosts: int
    host_days: float
    alerts: int
    attack_alerts: int
    false_alerts: int
    unlabelled_alerts: int
    precision: float | None
    false_alerts_per_1000_host_days: float
    # Alerts not on an attack, less the Low alerts of benign classes whose
    # documented outcome is a Low alert.
    unexpected_alerts: int = 0
    unexpected_alerts_per_1000_host_days: float = 0.0
    classes: list[ClassResult] = field(default_factory=list)


def with_allowlist(config: Config, labels: list[dict[str, Any]], expires: date) -> Config:
    """Add host allowlist entries for the hosts of classes expected to be excluded."""
    entries = tuple(
        HostExclusion(
            value=name,
            owner=ALLOWLIST_OWNER,
            reason=f"{label['scenario']} scenario: {label['description']}",
            expires=expires,
        )
        for label in labels
        if label["expected"] == EXCLUDED
        for name in label["host_names"]
    )
    exclusions = config.exclusions.model_copy(update={"hosts": config.exclusions.hosts + entries})
    return config.model_copy(update={"exclusions": exclusions})


def _labels_frame(spark: SparkSession, labels: list[dict[str, Any]], window_hours: int) -> DataFrame:
    rows = [
        (
            label["scenario_id"],
            label["scenario"],
            label["kind"],
            host_id,
            _parse(label["start"]),
            _parse(label["end"]) + timedelta(hours=window_hours),
        )
        for label in labels
        for host_id in label["host_ids"]
    ]
    return spark.createDataFrame(
        rows, "scenario_id string, scenario string, kind string, host_id string, start timestamp, stop timestamp"
    )


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def _overlap() -> Column:
    return (F.col("window_start") <= F.col("stop")) & (F.col("window_end") >= F.col("start"))


def attack_alert_ids(alerts: DataFrame, labelled: DataFrame) -> DataFrame:
    """Ids of the alerts on an attack's source host during the attack."""
    attacks = labelled.where(F.col("kind") == ATTACK)
    return attacks.join(alerts, "host_id").where(_overlap()).select("alert_id").distinct()


def match_alerts(alerts: DataFrame, detections: DataFrame, labelled: DataFrame) -> DataFrame:
    """Per scenario instance: alerts and excluded detections on its hosts in its time range, and time to detect.

    A benign instance does not count an alert that an attack explains: a
    host in the fleet-wide update may also be an attack's source.
    """
    explained = attack_alert_ids(alerts, labelled)
    benign_alerts = alerts.join(explained, "alert_id", "left_anti")
    hits = labelled.where(F.col("kind") == ATTACK).join(alerts, "host_id").where(_overlap())
    hits = hits.unionByName(labelled.where(F.col("kind") != ATTACK).join(benign_alerts, "host_id").where(_overlap()))
    per_instance = hits.groupBy("scenario_id").agg(
        F.countDistinct("alert_id").alias("alerts"),
        F.countDistinct(F.when(F.col("severity") == "Low", F.col("alert_id"))).alias("low"),
        F.countDistinct(F.when(F.col("severity") == "Medium", F.col("alert_id"))).alias("medium"),
        F.min(F.unix_timestamp("first_detection_window_end") - F.unix_timestamp("start")).alias("_delay_s"),
    )
    excluded = (
        labelled.join(detections.where(F.col("exclusion").isNotNull()), "host_id")
        .where(_overlap())
        .groupBy("scenario_id")
        .agg(F.count(F.lit(1)).alias("excluded"))
    )
    instances = labelled.select("scenario_id", "scenario", "kind").distinct()
    return (
        instances.join(per_instance, "scenario_id", "left")
        .join(excluded, "scenario_id", "left")
        .fillna({"alerts": 0, "low": 0, "medium": 0, "excluded": 0})
    )


def class_hosts(alerts: DataFrame, labelled: DataFrame, explained: DataFrame) -> DataFrame:
    """Per class: its labelled hosts, their alerts over the scored period, and how many of those an attack explains."""
    hosts = labelled.select("scenario", "host_id").distinct()
    on_hosts = hosts.join(alerts.select("host_id", "alert_id"), "host_id")
    explained_ids = explained.withColumn("_explained", F.lit(True))
    counted = (
        on_hosts.join(explained_ids, "alert_id", "left")
        .groupBy("scenario")
        .agg(
            F.countDistinct("alert_id").alias("host_alerts"),
            F.countDistinct(F.when(F.col("_explained"), F.col("alert_id"))).alias("explained_alerts"),
        )
    )
    return (
        hosts.groupBy("scenario")
        .agg(F.count(F.lit(1)).alias("hosts"))
        .join(counted, "scenario", "left")
        .fillna({"host_alerts": 0, "explained_alerts": 0})
    )


def summarize(matched: DataFrame, per_class_hosts: DataFrame, scored_days: float) -> list[ClassResult]:
    """Aggregate matched instances per class; the result has one row per class."""
    rows = (
        matched.groupBy("scenario", "kind")
        .agg(
            F.count(F.lit(1)).alias("instances"),
            F.sum(F.when(F.col("alerts") > 0, 1).otherwise(0)).alias("alerted"),
            F.sum("low").alias("low"),
            F.sum("medium").alias("medium"),
            F.sum("excluded").alias("excluded"),
            F.percentile_approx(F.greatest(F.col("_delay_s"), F.lit(0)), 0.5).alias("median_delay_s"),
        )
        .join(per_class_hosts, "scenario", "left")
        .collect()
    )
    results = []
    for row in sorted(rows, key=lambda r: (r["kind"] != ATTACK, list(CLASSES).index(r["scenario"]))):
        cls = CLASSES[row["scenario"]]
        instances, alerted = int(row["instances"]), int(row["alerted"])
        recall = alerted / instances if cls.kind == ATTACK else None
        delay = row["median_delay_s"]
        results.append(
            ClassResult(
                scenario=cls.name,
                kind=cls.kind,
                expected=cls.expected,
                instances=instances,
                alerted=alerted,
                low_alerts=int(row["low"]),
                medium_alerts=int(row["medium"]),
                excluded_detections=int(row["excluded"]),
                recall=recall,
                median_minutes_to_detect=None if delay is None or cls.kind != ATTACK else delay / 60.0,
                meets_expectation=_meets(cls.kind, cls.expected, alerted, instances, int(row["medium"])),
                precision=_share(row["explained_alerts"], row["host_alerts"]) if cls.kind == ATTACK else None,
                alerts_per_1000_host_days=1000.0
                * (row["host_alerts"] or 0)
                / max((row["hosts"] or 0) * scored_days, 1e-9),
            )
        )
    return results


def _share(part: int | None, whole: int | None) -> float | None:
    return None if not whole else (part or 0) / whole


def _meets(kind: str, expected: str, alerted: int, instances: int, medium: int) -> bool:
    if kind == ATTACK:
        return alerted == instances
    if expected == "low":
        return medium == 0
    return alerted == 0


def unexpected_alerts(false_alerts: int, classes: list[ClassResult]) -> int:
    """Count the alerts not on an attack that no benign class documents as its Low outcome."""
    documented_low = sum(item.low_alerts for item in classes if item.kind != ATTACK and item.expected == LOW)
    return max(false_alerts - documented_low, 0)


def run_evaluation(spark: SparkSession, config: Config, spec: FleetSpec = DEFAULT_LIBRARY) -> EvaluationResult:
    """Generate the library, run the pipeline with the documented allowlist and measure every class."""
    reset_outputs(config)
    data_dir = config.local_root / "evaluation-fleet"
    shutil.rmtree(data_dir, ignore_errors=True)
    fleet = generate_fleet(spec, data_dir)
    assert fleet.scenarios_path is not None
    labels = json.loads(fleet.scenarios_path.read_text(encoding="utf-8"))
    end = spec.end.replace(tzinfo=None)
    start = end - timedelta(days=spec.days)
    scored_from = start + timedelta(days=(2 * spec.days) // 3)
    run_config = with_allowlist(config, labels, (end + timedelta(days=365)).date())
    run_pipeline(spark, run_config, [str(fleet.events_dir)], "canonical", scored_from, end)

    tables = Tables(run_config)
    alerts = tables.smb_alerts.read(spark)
    labelled = _labels_frame(spark, labels, config.detector.window_hours)
    matched = match_alerts(alerts, tables.smb_detections.read(spark), labelled).persist()
    scored_days = (end - scored_from).total_seconds() / 86400
    per_class_hosts = class_hosts(alerts, labelled, attack_alert_ids(alerts, labelled))
    classes = summarize(matched, per_class_hosts, scored_days)
    matched.unpersist()
    attack_alerts = attack_alert_ids(alerts, labelled).count()
    labelled_alerts = labelled.join(alerts, "host_id").where(_overlap()).select("alert_id").distinct().count()
    total = alerts.count()
    hosts = tables.host_addresses.read(spark).select("host_id").distinct().count()
    host_days = hosts * (end - scored_from).total_seconds() / 86400
    false_alerts = total - attack_alerts
    unexpected = unexpected_alerts(false_alerts, classes)
    return EvaluationResult(
        spec=_spec_dict(spec),
        scored_from=scored_from,
        scored_to=end,
        hosts=hosts,
        host_days=host_days,
        alerts=total,
        attack_alerts=attack_alerts,
        false_alerts=false_alerts,
        unlabelled_alerts=total - labelled_alerts,
        precision=attack_alerts / total if total else None,
        false_alerts_per_1000_host_days=1000.0 * false_alerts / host_days if host_days else 0.0,
        unexpected_alerts=unexpected,
        unexpected_alerts_per_1000_host_days=1000.0 * unexpected / host_days if host_days else 0.0,
        classes=classes,
    )


def _spec_dict(spec: FleetSpec) -> dict[str, Any]:
    values = asdict(spec)
    values["end"] = spec.end.isoformat()
    values["scenarios"] = list(spec.scenarios)
    values["extra_hosts"] = []
    return values


def log_to_mlflow(config: Config, result: EvaluationResult) -> str:
    """Log the figures as an MLflow run in the configured experiment and return its run id."""
    import mlflow

    from smb_fanout import registry

    experiment = registry.configure(config)
    with mlflow.start_run(experiment_id=experiment, run_name="evaluate") as run:
        mlflow.set_tag("smb_fanout.job", "evaluate")
        mlflow.log_params({f"detector.{k}": v for k, v in config.detector.model_dump().items()})
        mlflow.log_params({"workstations": result.spec["workstations"], "days": result.spec["days"]})
        metrics = {
            "precision": result.precision or 0.0,
            "false_alerts_per_1000_host_days": result.false_alerts_per_1000_host_days,
            "unexpected_alerts_per_1000_host_days": result.unexpected_alerts_per_1000_host_days,
            "alerts": float(result.alerts),
            "unlabelled_alerts": float(result.unlabelled_alerts),
        }
        for item in result.classes:
            if item.recall is not None:
                metrics[f"recall.{item.scenario}"] = item.recall
            else:
                metrics[f"alerts.{item.scenario}"] = float(item.low_alerts + item.medium_alerts)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(json.loads(json.dumps(asdict(result), default=str)), "evaluation.json")
        return str(run.info.run_id)


def render_page(result: EvaluationResult, command: str, machine: str = "") -> str:
    """Render the evaluation as a Markdown page; `machine` describes where and how long it ran."""
    lines = [
        "# Evaluation on the labelled scenario library",
        "",
        f"Written by `{command}`{machine}. The fleet: {result.spec['workstations']} workstations, "
        f"{result.spec['file_servers']} file servers, {result.spec['days']} days, every scenario class "
        f"{result.spec['scenario_repeats']} times except the domain controllers, which are the fleet's own "
        f"(seed {result.spec['seed']}). The model was fitted on the "
        f"30 days before {result.scored_from:%Y-%m-%d %H:%M} and the windows up to "
        f"{result.scored_to:%Y-%m-%d %H:%M} were scored: {result.host_days:,.0f} host-days on {result.hosts} hosts.",
        "",
        f"- Alerts: {result.alerts}, of which {result.attack_alerts} on injected attacks.",
        f"- Precision: {_ratio(result.precision)}.",
        f"- Alerts not on an attack: {result.false_alerts}, "
        f"{result.false_alerts_per_1000_host_days:.2f} per 1,000 host-days "
        f"(target at most 0.5: {_met(result.false_alerts_per_1000_host_days <= 0.5)}). "
        f"Of these, {result.unlabelled_alerts} were on no labelled scenario; the others are alerts of benign "
        "classes, counted in the table below.",
        f"- Alerts neither on an attack nor the documented Low outcome of a benign class: "
        f"{result.unexpected_alerts}, {result.unexpected_alerts_per_1000_host_days:.2f} per 1,000 host-days "
        f"({_met(result.unexpected_alerts_per_1000_host_days <= 0.5)} against the same target).",
        "- The last column of the table compares each class with its expected outcome. The column before it",
        "  counts every alert on the class's hosts, including attacks injected on the same hosts, so a class",
        "  with no alert of its own can show a rate there.",
        "",
        "| class | kind | expected | instances | alerted | recall | precision | median minutes to detect | Low "
        "| Medium | excluded detections | alerts per 1,000 host-days | as expected |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for item in result.classes:
        minutes = "" if item.median_minutes_to_detect is None else f"{item.median_minutes_to_detect:.0f}"
        lines.append(
            f"| {item.scenario} | {item.kind} | {item.expected} | {item.instances} | {item.alerted} | "
            f"{_ratio(item.recall)} | {_ratio(item.precision)} | {minutes} | {item.low_alerts} | "
            f"{item.medium_alerts} | {item.excluded_detections} | {item.alerts_per_1000_host_days:.2f} | "
            f"{'yes' if item.meets_expectation else 'no'} |"
        )
    lines += ["", *CLASS_NOTES, ""]
    return "\n".join(lines)


def _met(met: bool) -> str:
    return "met" if met else "missed"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


CLASS_NOTES = [
    "What each class is and what the detector should do with it:",
    "",
    *[f"- `{c.name}` ({c.kind}, expected {c.expected}): {c.description}." for c in CLASSES.values()],
    "",
    "`excluded` means the evaluation configuration allowlists the class's host, as a deployment would",
    "allowlist its software distribution points: the detections are kept with the entry and counted,",
    "and open no alert. `low` means an alert is acceptable when its severity is Low: a backup server",
    "reaching six hosts it never reached is fan-out by definition. Time to detect runs from the first",
    "attack contact to the end of the first window that detected it. Precision and alerts per 1,000",
    "host-days count every alert on the class's hosts over the scored period: precision is the share",
    "that an attack of the class explains.",
]
