"""Detections: host windows compared with the champion model's thresholds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smb_fanout.config import Config, DetectorConfig, Exclusion, ExclusionsConfig, is_sha256
from smb_fanout.fit.rarity import nb_tail
from smb_fanout.fit.thresholds import FLEET_HOST_ID, PEER_PREFIX, split_common
from smb_fanout.ipaddr import ip_in_cidrs
from smb_fanout.registry import ModelVersion

ABNORMAL = "Abnormal SMB activity to multiple hosts"
HIGHLY_RARE = "Highly rare SMB activity to multiple hosts"
LOW = "Low"
MEDIUM = "Medium"


def variation_rank(variation: Column) -> Column:
    return F.when(variation == HIGHLY_RARE, 2).otherwise(1)


def severity_rank(severity: Column) -> Column:
    return F.when(severity == MEDIUM, 2).otherwise(1)


def _with_thresholds(windows: DataFrame, thresholds: DataFrame, groups: DataFrame) -> DataFrame:
    """Join each window to its host's threshold row, else its peer group's, else the fleet's.

    `groups` gives the `peer_group` of each scored host, for hosts the model
    has not seen.
    """
    columns = [
        "threshold",
        "fleet_tail_threshold",
        "showed_fanout",
        "prior_source",
        "peer_group",
        "predictive_mean",
        "predictive_size",
        "mean_new_destinations",
        "max_new_destinations",
        "windows_observed",
    ]

    def rows(prefix: str) -> list[Column]:
        return [F.col(c).alias(f"{prefix}{c}") for c in columns]

    hosts = thresholds.where(~F.col("host_id").startswith("*")).select("host_id", *rows("_h_"))
    peers = thresholds.where(F.col("host_id").startswith(PEER_PREFIX)).select(
        F.col("peer_group").alias("_group"), *rows("_p_")
    )
    fleet = thresholds.where(F.col("host_id") == FLEET_HOST_ID).select(*rows("_f_"))
    joined = (
        windows.join(hosts, "host_id", "left")
        .join(groups.select("host_id", F.col("peer_group").alias("_group")), "host_id", "left")
        .join(F.broadcast(peers), "_group", "left")
        .crossJoin(F.broadcast(fleet))
    )
    for c in columns:
        joined = joined.withColumn(c, F.coalesce(F.col(f"_h_{c}"), F.col(f"_p_{c}"), F.col(f"_f_{c}")))
    return (
        joined.withColumn("_has_host_row", F.col("_h_threshold").isNotNull())
        .withColumnRenamed("showed_fanout", "_showed_fanout")
        .withColumnRenamed("mean_new_destinations", "baseline_mean_new_destinations")
        .withColumnRenamed("max_new_destinations", "baseline_max_new_destinations")
        .withColumnRenamed("windows_observed", "baseline_windows_observed")
        .drop("_group", *[f"_{p}_{c}" for p in "hpf" for c in columns])
    )


def exclude_destinations(windows: DataFrame, exclusions: ExclusionsConfig) -> DataFrame:
    """Drop new destinations inside allowlisted CIDRs, on the days their entries apply.

    Adds `excluded_destination_count`, and recounts `new_destination_count`.
    """
    day = F.to_date("window_end")

    def excluded(d: Column) -> Column:
        hits = [
            ip_in_cidrs(d["destination_ip"], [entry.value]) & (day <= F.lit(entry.expires))
            for entry in exclusions.destination_cidrs
        ]
        return reduce(lambda a, b: a | b, hits, F.lit(False))

    kept = F.filter("new_destinations", lambda d: ~excluded(d))
    return (
        windows.withColumn("_kept", kept)
        .withColumn("excluded_destination_count", (F.size("new_destinations") - F.size("_kept")).cast("long"))
        .withColumn("new_destinations", F.col("_kept"))
        .withColumn("new_destination_count", F.size("_kept").cast("long"))
        .drop("_kept")
    )


def discount_fleet_changes(windows: DataFrame, min_hosts: int) -> DataFrame:
    """Drop new destinations that at least `min_hosts` hosts newly reached in windows ending at the same hour.

    Many hosts reaching the same new server at once is a change to the fleet
    (an update, a new print or file server), not each host's fan-out. Adds
    `fleet_change_destination_count` and recounts `new_destination_count`.
    """
    reached = windows.select("window_end", "host_id", F.explode("new_destinations").alias("d")).select(
        "window_end", "host_id", F.col("d.destination_id").alias("destination_id")
    )
    changed = (
        reached.groupBy("window_end", "destination_id")
        .agg(F.countDistinct("host_id").alias("_hosts"))
        .where(F.col("_hosts") >= min_hosts)
        .groupBy("window_end")
        .agg(F.collect_set("destination_id").alias("_changed"))
    )
    kept = F.filter(
        "new_destinations",
        lambda d: ~F.coalesce(F.array_contains(F.col("_changed"), d["destination_id"]), F.lit(False)),
    )
    return (
        windows.join(changed, "window_end", "left")
        .withColumn("_kept", kept)
        .withColumn("fleet_change_destination_count", (F.size("new_destinations") - F.size("_kept")).cast("long"))
        .withColumn("new_destinations", F.col("_kept"))
        .withColumn("new_destination_count", F.size("_kept").cast("long"))
        .drop("_kept", "_changed")
    )


def _describe(kind: str, entry: Exclusion) -> str:
    return f"{kind} {entry.value} (owner {entry.owner}, until {entry.expires}: {entry.reason})"


def _process_matcher(value: str) -> Callable[[Column], Column]:
    if is_sha256(value):

        def matches_hash(process: Column) -> Column:
            return F.lower(F.coalesce(process["sha256"], F.lit(""))) == value

        return matches_hash

    def matches(process: Column) -> Column:
        path = F.lower(F.coalesce(process["path"], F.lit("")))
        name = F.lower(F.coalesce(process["name"], F.lit("")))
        return (path == value) | (name == value)

    return matches


def exclusion_reason(exclusions: ExclusionsConfig) -> Column:
    """Return the first host or actor-process allowlist entry that applies to a window, or NULL.

    A process entry applies when every actor process of the window matches
    it by path or name, or by image hash for an entry of 64 hex digits (all
    case-insensitive), so an allowlisted tool does not hide another process
    that reaches the same hosts. A process without a reported hash never
    matches a hash entry.
    """
    day = F.to_date("window_end")
    name = F.lower(F.coalesce(F.col("host_name"), F.lit("")))
    reason: Column = F.lit(None).cast("string")
    for process in reversed(exclusions.processes):
        applies = (
            (F.size("actor_processes") > 0)
            & F.forall("actor_processes", _process_matcher(process.value.lower()))
            & (day <= F.lit(process.expires))
        )
        reason = F.when(applies, F.lit(_describe("process", process))).otherwise(reason)
    for host in reversed(exclusions.hosts):
        value = host.value.lower()
        same_host = (F.col("host_id") == host.value) | (name == value) | (F.substring_index(name, ".", 1) == value)
        reason = F.when(same_host & (day <= F.lit(host.expires)), F.lit(_describe("host", host))).otherwise(reason)
    return reason


def expired_exclusions(exclusions: ExclusionsConfig, today: date) -> list[str]:
    """Describe the allowlist entries whose expiry date has passed."""
    entries: list[tuple[str, Exclusion]] = [
        *(("host", e) for e in exclusions.hosts),
        *(("process", e) for e in exclusions.processes),
        *(("destination", e) for e in exclusions.destination_cidrs),
    ]
    return [_describe(kind, entry) for kind, entry in entries if entry.expires < today]


def _rare_actor_processes(windows: DataFrame, rarity: DataFrame, detector: DetectorConfig) -> DataFrame:
    """Per host window, the user-mode actor processes used for SMB by few hosts in training."""
    actors = windows.select("host_id", "window_end", F.explode("actor_processes").alias("p")).select(
        "host_id",
        "window_end",
        F.lower(F.coalesce(F.col("p.name"), F.lit(""))).alias("process_name"),
    )
    user_mode = actors.where(
        (F.col("process_name") != "") & ~F.col("process_name").isin(*detector.os_smb_client_processes)
    )
    rare = user_mode.join(F.broadcast(rarity.select("process_name", "host_fraction")), "process_name", "left").where(
        F.coalesce(F.col("host_fraction"), F.lit(0.0)) <= detector.rare_process_host_fraction
    )
    return rare.groupBy("host_id", "window_end").agg(F.array_sort(F.collect_set("process_name")).alias("_rare_actors"))


def detect(
    windows: DataFrame,
    model_tables: ModelTables,
    hosts: DataFrame,
    fleet_first_seen: datetime,
    config: Config,
    model: ModelVersion,
) -> DataFrame:
    """Windows that are abnormal, with variation, severity and the reasons for both.

    Needs `smb_host_windows` rows, the model's tables and per host
    `host_id`, `first_seen` and `peer_group`. No window is scored before the
    fleet has `activation_days` of data; a host observed for less is scored
    against its peer group or the fleet and marked `insufficient_history`.
    Detections matched by a host or process allowlist entry keep the entry
    in `exclusion` and do not become alerts.
    """
    detector = config.detector
    activation = F.make_dt_interval(days=F.lit(detector.activation_days))
    common = model_tables.popularity.where(F.col("host_fraction") >= detector.common_destination_fraction)
    counted = discount_fleet_changes(
        exclude_destinations(split_common(windows, common), config.exclusions), detector.fleet_change_min_hosts
    )
    scored = (
        _with_thresholds(counted, model_tables.thresholds, hosts)
        .join(hosts.select("host_id", F.col("first_seen").alias("_host_first_seen")), "host_id", "left")
        .where(F.lit(fleet_first_seen).cast("timestamp") <= F.col("window_end") - activation)
        .withColumn(
            "insufficient_history",
            F.coalesce(F.col("_host_first_seen") > F.col("window_end") - activation, F.lit(True)),
        )
        .withColumn(
            "baseline_source",
            F.when(F.col("_has_host_row") & ~F.col("insufficient_history"), F.lit("host")).otherwise(
                F.col("prior_source")
            ),
        )
    )
    count = F.col("new_destination_count")
    abnormal = scored.where((count >= detector.min_new_destinations) & (count > F.col("threshold")))
    rare_actors = _rare_actor_processes(abnormal, model_tables.rarity, detector)
    enriched = abnormal.join(rare_actors, ["host_id", "window_end"], "left")

    beyond_tail = count > F.col("fleet_tail_threshold")
    # A host with a short history may simply not have had the occasion yet.
    first_fanout = ~F.coalesce(F.col("_showed_fanout"), F.lit(False)) & ~F.col("insufficient_history")
    new_failure_ratio = F.when(F.col("new_attempts") > 0, F.col("new_failures") / F.col("new_attempts")).otherwise(0.0)
    reasons = F.array_compact(
        F.array(
            F.when(
                F.size(F.coalesce(F.col("_rare_actors"), F.array())) > 0,
                F.concat(F.lit("rare actor process for SMB: "), F.array_join(F.col("_rare_actors"), ", ")),
            ),
            F.when(
                count >= F.col("threshold") * detector.medium_multiplier,
                F.lit(f"count at least {detector.medium_multiplier:g} times the threshold"),
            ),
            F.when(
                new_failure_ratio > detector.medium_failure_ratio,
                F.lit("most attempts failed (scan-like)"),
            ),
        )
    )
    variation_reason = (
        F.when(beyond_tail, F.lit("beyond the fleet's highly rare tail"))
        .when(first_fanout, F.lit("the host never showed SMB fan-out before"))
        .otherwise(F.lit(""))
    )
    return enriched.select(
        "host_id",
        "host_name",
        "window_start",
        "window_end",
        F.when(beyond_tail | first_fanout, F.lit(HIGHLY_RARE)).otherwise(F.lit(ABNORMAL)).alias("variation"),
        F.when(F.size(reasons) > 0, F.lit(MEDIUM)).otherwise(F.lit(LOW)).alias("severity"),
        "new_destination_count",
        "new_destinations",
        "threshold",
        "fleet_tail_threshold",
        new_failure_ratio.alias("failure_ratio"),
        reasons.alias("severity_reasons"),
        variation_reason.alias("variation_reason"),
        "baseline_source",
        "baseline_mean_new_destinations",
        "baseline_max_new_destinations",
        "baseline_windows_observed",
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.lit(model.run_id).alias("model_run_id"),
        "peer_group",
        "insufficient_history",
        nb_tail(count, F.col("predictive_mean"), F.col("predictive_size")).alias("tail_probability"),
        "common_destination_count",
        "excluded_destination_count",
        "fleet_change_destination_count",
        "predictive_mean",
        exclusion_reason(config.exclusions).alias("exclusion"),
    )


@dataclass(frozen=True)
class ModelTables:
    """The rows one model version wrote: thresholds, process rarity and destination popularity."""

    thresholds: DataFrame
    rarity: DataFrame
    popularity: DataFrame
