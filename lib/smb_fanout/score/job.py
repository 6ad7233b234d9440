"""The score job: host windows to detections, detections to deduplicated alerts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from smb_fanout import checkpoints, registry
from smb_fanout.config import Config
from smb_fanout.fit.peers import assign_peer_groups
from smb_fanout.health import recorded_run
from smb_fanout.score import alerts as A
from smb_fanout.score.detect import ABNORMAL, ModelTables, detect, expired_exclusions
from smb_fanout.stats.job import read_state
from smb_fanout.tables import Tables, changed_condition, current_version, materialize, merge, read_changes

logger = logging.getLogger(__name__)

OPEN = "open"
STATE_KEY = "score"
WINDOWS_KEY = "smb_host_windows"
# Tables a score run reads at a pinned version; alerts record the versions, so
# `smb-fanout explain` can read the same rows later.
MODEL_INPUT_KEYS = (
    "smb_thresholds",
    "smb_process_rarity",
    "smb_destination_popularity",
    "host_addresses",
    "host_roles",
)


class NothingToScoreError(RuntimeError):
    """Raised when the stats job has not produced any window yet."""


@dataclass(frozen=True)
class ScoreResult:
    window_from: datetime | None
    window_to: datetime | None
    detections: int
    alerts_opened: int
    alerts_updated: int
    model: registry.ModelVersion
    windows_scored: int = 0
    # Detections that an allowlist entry matched: stored, but no alert.
    detections_excluded: int = 0
    expired_exclusions: tuple[str, ...] = ()


def _score_state(spark: SparkSession, config: Config) -> int | None:
    row = Tables(config).smb_score_state.read(spark).where(F.col("state_key") == STATE_KEY).first()
    return None if row is None else int(row["windows_version"])


def _windows_to_score(
    spark: SparkSession,
    config: Config,
    version: int,
    window_from: datetime | None,
    window_to: datetime | None,
    processed_through: datetime,
) -> tuple[DataFrame, datetime | None, datetime | None, bool]:
    """Select the host windows of this run; returns them, the range, and whether the run is incremental.

    With no range given, a run scores the windows inserted or changed since
    the table version that the last incremental run scored. The first such
    run scores the last slide. A given range rescores that range.
    """
    tables = Tables(config)
    last_version = _score_state(spark, config) if window_from is None and window_to is None else None
    if last_version is not None:
        if version == last_version:
            return tables.smb_host_windows.read_version(spark, version).limit(0), None, None, True
        return read_changes(spark, tables.smb_host_windows, last_version, version), None, None, True
    upper = window_to or processed_through
    lower = window_from or upper - timedelta(hours=config.detector.slide_hours)
    windows = tables.smb_host_windows.read_version(spark, version).where(
        (F.col("window_end") > F.lit(lower)) & (F.col("window_end") <= F.lit(upper))
    )
    return windows, lower, upper, window_from is None and window_to is None


def run_score(
    spark: SparkSession,
    config: Config,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
    job: str = "score",
) -> ScoreResult:
    """Score host windows with the champion model and write detections and alerts.

    By default only windows that are new or changed since the last run are
    scored (see `_windows_to_score`). The champion version is resolved once,
    at the start, and every detection, alert and the run record carry it, so
    a fit that moves the alias meanwhile does not mix two models in one run.
    `job` names the run in `detector_runs` (`score_shadow` for a shadow score).
    """
    with recorded_run(spark, config, job) as record:
        tables = Tables(config)
        state = read_state(spark, config)
        if state is None:
            raise NothingToScoreError("no host windows yet: run `smb-fanout stats` before `score`")
        model = registry.champion(config)
        record.model_version = model.version
        checkpoints.reached("score.model_resolved")
        version = current_version(spark, tables.smb_host_windows)
        windows, lower, upper, incremental = _windows_to_score(
            spark, config, version, window_from, window_to, state.processed_through
        )
        windows = materialize(windows)
        record.rows_read = windows.count()
        record.hosts_scored = windows.select("host_id").distinct().count()
        versions = {WINDOWS_KEY: version, **pinned_versions(spark, config)}
        found = detect(
            windows,
            model_tables(spark, config, model, versions),
            scored_hosts(spark, config, windows, versions),
            state.fleet_first_seen,
            config,
            model,
        ).withColumn("input_versions", versions_column(versions))
        found = materialize(found)
        detection_count = found.count()
        record.detections_excluded = found.where(F.col("exclusion").isNotNull()).count() if detection_count else 0
        expired = expired_exclusions(config.exclusions, datetime.now(UTC).date())
        if expired:
            logger.warning("expired allowlist entries no longer apply: %s", "; ".join(expired))
            record.expired_exclusions = "; ".join(expired)
        opened, updated = 0, 0
        if detection_count:
            # A rescore that reaches the same decision keeps the row and the versions it was first made from.
            changed = changed_condition(tables.smb_detections, ignore=("input_versions",))
            merge(found, tables.smb_detections, update_condition=changed)
            checkpoints.reached("score.detections_merged")
            if detection_count > record.detections_excluded:
                opened, updated = _write_alerts(
                    spark, config, found.where(F.col("exclusion").isNull()), state.processed_through
                )
            checkpoints.reached("score.alerts_merged")
        if incremental:
            _write_score_state(spark, config, version, state.processed_through)
            checkpoints.reached("score.state_written")
        record.rows_written = detection_count
        record.alerts_opened, record.alerts_updated = opened, updated
        if opened > config.operations.alert_budget_per_run:
            record.degrade(
                f"{opened} alerts opened in one run, above the budget of {config.operations.alert_budget_per_run}"
                " (operations.alert_budget_per_run): check for a new scanner or a broken input"
            )
    logger.info(
        "score: %s windows (ending in (%s, %s]), %s detections, %s alerts opened, %s updated, model %s v%s",
        record.rows_read,
        lower,
        upper,
        detection_count,
        opened,
        updated,
        model.name,
        model.version,
    )
    return ScoreResult(
        lower,
        upper,
        detection_count,
        opened,
        updated,
        model,
        record.rows_read or 0,
        record.detections_excluded or 0,
        tuple(expired),
    )


SHADOW_SUFFIX = "_shadow"


def shadow_config(config: Config, alias: str) -> Config:
    """Return the configuration of a shadow score: model `alias` and its own detection, alert and progress tables."""
    names = config.storage.tables
    shadow_names = names.model_copy(
        update={key: getattr(names, key) + SHADOW_SUFFIX for key in ("smb_detections", "smb_alerts", "smb_score_state")}
    )
    storage = config.storage.model_copy(update={"tables": shadow_names})
    return config.model_copy(update={"storage": storage, "mlflow": config.mlflow.model_copy(update={"alias": alias})})


def pinned_versions(spark: SparkSession, config: Config) -> dict[str, int]:
    """Current Delta versions of the tables a score run reads besides the windows."""
    tables = Tables(config)
    return {key: current_version(spark, tables.ref(key)) for key in MODEL_INPUT_KEYS}


def versions_column(versions: dict[str, int]) -> Column:
    return F.create_map(*[F.lit(part) for key in sorted(versions) for part in (key, versions[key])])


def model_tables(
    spark: SparkSession, config: Config, model: registry.ModelVersion, versions: dict[str, int]
) -> ModelTables:
    """Read the rows `model` wrote, at the given table versions."""
    tables = Tables(config)

    def read(key: str) -> DataFrame:
        return tables.ref(key).read_version(spark, versions[key]).where(F.col("model_run_id") == model.run_id)

    return ModelTables(read("smb_thresholds"), read("smb_process_rarity"), read("smb_destination_popularity"))


def scored_hosts(spark: SparkSession, config: Config, windows: DataFrame, versions: dict[str, int]) -> DataFrame:
    """`host_id`, `first_seen` and `peer_group` of the hosts in `windows`, from the given table versions."""
    tables = Tables(config)
    addresses = tables.host_addresses.read_version(spark, versions["host_addresses"])
    hosts = (
        addresses.join(windows.select("host_id").distinct(), "host_id", "left_semi")
        .groupBy("host_id")
        .agg(F.min("first_seen").alias("first_seen"), F.max_by("host_name", "last_seen").alias("host_name"))
    )
    roles = tables.host_roles.read_version(spark, versions["host_roles"])
    return assign_peer_groups(hosts, roles, addresses, config.peers)


def _write_score_state(spark: SparkSession, config: Config, version: int, scored_through: datetime) -> None:
    frame = spark.createDataFrame(
        [(STATE_KEY, version, scored_through)], "state_key string, windows_version long, scored_through timestamp"
    ).withColumn("updated_at", F.current_timestamp())
    merge(frame, Tables(config).smb_score_state)


def _anchors(stored_alerts: DataFrame, new: DataFrame, dedup_hours: int) -> DataFrame:
    """Per affected host, the start of the stored alert that its new detections continue.

    That is the latest alert that began at or before the host's first new
    detection. When there is none, it is an alert that began less than
    `dedup_hours` after it, so a detection that late events made visible
    joins the alert already open rather than opening a second one.
    """
    first_new = new.groupBy("host_id").agg(F.min("window_end").alias("_first_new"))
    started = stored_alerts.join(first_new, "host_id")
    period = F.make_dt_interval(hours=F.lit(dedup_hours))
    before = (
        started.where(F.col("first_detection_window_end") <= F.col("_first_new"))
        .groupBy("host_id")
        .agg(F.max("first_detection_window_end").alias("_before"))
    )
    after = (
        started.where(
            (F.col("first_detection_window_end") > F.col("_first_new"))
            & (F.col("first_detection_window_end") < F.col("_first_new") + period)
        )
        .groupBy("host_id")
        .agg(F.min("first_detection_window_end").alias("_after"))
    )
    return (
        first_new.join(before, "host_id", "left")
        .join(after, "host_id", "left")
        .select("host_id", F.coalesce("_before", "_after").alias("anchor_start"), "_first_new")
        .where(F.col("anchor_start").isNotNull())
    )


def _write_alerts(spark: SparkSession, config: Config, new: DataFrame, processed_through: datetime) -> tuple[int, int]:
    tables = Tables(config)
    detector = config.detector
    first_new = new.groupBy("host_id").agg(F.min("window_end").alias("_first_new"))
    anchors = _anchors(tables.smb_alerts.read(spark), new, detector.dedup_hours)
    since = first_new.join(anchors.select("host_id", "anchor_start"), "host_id", "left").select(
        "host_id", F.least("anchor_start", "_first_new").alias("_since")
    )
    relevant = (
        tables.smb_detections.read(spark)
        .where(F.col("exclusion").isNull())
        .join(since, "host_id")
        .where(F.col("window_end") >= F.col("_since"))
    )
    episodes = A.assign_episodes(
        relevant.drop("_since"), anchors.select("host_id", "anchor_start"), detector.dedup_hours
    )
    episodes = materialize(episodes)
    bounds = episodes.agg(F.min("window_start").alias("lo"), F.max("window_end").alias("hi")).first()
    assert bounds is not None
    hourly = tables.smb_contacts_hourly.read(spark).where(
        (F.col("hour") >= F.lit(bounds["lo"])) & (F.col("hour") < F.lit(bounds["hi"]))
    )
    rows = build_alerts(episodes, hourly, processed_through)
    counts = merge(
        rows,
        tables.smb_alerts,
        update_condition="t.content_hash <> s.content_hash",
        preserve=("detected_at", "status", "opened_through", "detection_delay_s"),
    )
    return counts.inserted, counts.updated


def build_alerts(episodes: DataFrame, hourly: DataFrame, processed_through: datetime) -> DataFrame:
    """Build one `smb_alerts` row per episode from its peak detection, destinations and processes.

    `detection_delay_s` is the event time from the end of the alert's first
    detected window to `processed_through`, the stats progress when the alert
    opened: about one slide for events on time, more for late ones.
    """
    keys = ["host_id", "episode_start"]
    counts = episodes.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("detection_count"),
        F.min("window_start").alias("window_start"),
        F.max("window_end").alias("last_detection_window_end"),
    )
    peak = A._peak(episodes).select(
        *keys,
        "host_name",
        "threshold",
        "fleet_tail_threshold",
        "severity_reasons",
        "variation_reason",
        "baseline_source",
        "baseline_mean_new_destinations",
        "baseline_max_new_destinations",
        "baseline_windows_observed",
        "model_name",
        "model_version",
        "model_run_id",
        "peer_group",
        "insufficient_history",
        "tail_probability",
        "common_destination_count",
        "excluded_destination_count",
        "fleet_change_destination_count",
        "input_versions",
    )
    joined = (
        counts.join(peak, keys)
        .join(A._levels(episodes), keys)
        .join(A.episode_destinations(episodes, hourly), keys, "left")
        .join(A.episode_processes(episodes, hourly), keys, "left")
    )
    alert = (
        joined.withColumnRenamed("top_variation", "variation")
        .withColumnRenamed("top_severity", "severity")
        .withColumn("window_end", F.col("last_detection_window_end"))
        .withColumn("first_detection_window_end", F.col("episode_start"))
        .withColumn("new_destination_count", F.size("new_destinations").cast("long"))
        .withColumn("failure_ratio", F.coalesce(F.col("failure_ratio"), F.lit(0.0)))
        .withColumn("alert_name", F.lit(ABNORMAL))
        .withColumn(
            "alert_id",
            F.sha2(
                F.concat_ws(
                    "|",
                    "host_id",
                    "alert_name",
                    F.date_format("episode_start", "yyyy-MM-dd'T'HH:mm:ss"),
                ),
                256,
            ),
        )
        .withColumn("suppressed_count", F.col("detection_count") - 1)
    )
    alert = alert.withColumn("reason", A.reason_sentence(alert))
    static = {
        "mitre_tactic_id": A.TACTIC[0],
        "mitre_tactic_name": A.TACTIC[1],
        "mitre_technique_id": A.TECHNIQUE[0],
        "mitre_technique_name": A.TECHNIQUE[1],
        "mitre_subtechnique_id": A.SUBTECHNIQUE[0],
        "mitre_subtechnique_name": A.SUBTECHNIQUE[1],
        "description": A.DESCRIPTION,
        "status": OPEN,
    }
    for name, value in static.items():
        alert = alert.withColumn(name, F.lit(value))
    alert = alert.withColumn("investigative_actions", F.array(*[F.lit(a) for a in A.INVESTIGATIVE_ACTIONS]))
    hashed = [c for c in alert.columns if c not in {"episode_start", "variation_reason", "input_versions"}]
    opened_through = F.lit(processed_through).cast("timestamp")
    return (
        alert.withColumn("content_hash", F.sha2(F.to_json(F.struct(*sorted(hashed))), 256))
        .withColumn("detected_at", F.current_timestamp())
        .withColumn("updated_at", F.current_timestamp())
        .withColumn("opened_through", opened_through)
        .withColumn(
            "detection_delay_s",
            F.unix_timestamp(opened_through) - F.unix_timestamp("first_detection_window_end"),
        )
    )
