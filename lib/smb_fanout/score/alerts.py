"""Alerts: detections grouped into one alert per host and deduplication period, with explanations."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from smb_fanout.score.detect import ABNORMAL, severity_rank, variation_rank
from smb_fanout.stats.contacts import merge_processes

TACTIC = ("TA0008", "Lateral Movement")
TECHNIQUE = ("T1021", "Remote Services")
SUBTECHNIQUE = ("T1021.002", "SMB/Windows Admin Shares")
DESCRIPTION = (
    "The host opened SMB sessions (TCP 445/139) to more internal hosts that it had not "
    "contacted in its training period than its own history and the fleet make plausible. "
    "This is how PsExec-style remote execution, ransomware spreading to shares and "
    "enumeration of admin shares look on the network."
)
INVESTIGATIVE_ACTIONS = (
    "Check whether the host is a newly deployed server, scanner, backup or software distribution point.",
    "Check whether the actor and causality processes and their command lines are legitimate for this host.",
    "Check the accounts that logged on to the new destinations from this host in the same period.",
    "Look for services, scheduled tasks or files created on the new destinations right after the contacts.",
)


def assign_episodes(detections: DataFrame, anchors: DataFrame, dedup_hours: int) -> DataFrame:
    """Add `episode_start`: the first detection of the alert that each detection belongs to.

    An episode lasts `dedup_hours` from its first detection; the next
    detection after that opens a new one. `anchors` (`host_id`,
    `anchor_start`) continues the host's latest stored alert.
    """
    per_host = detections.groupBy("host_id").agg(F.array_sort(F.collect_set("window_end")).alias("_ends"))
    period = F.make_dt_interval(hours=F.lit(dedup_hours))
    initial = F.struct(
        F.col("anchor_start").alias("start"),
        F.array().cast("array<struct<end:timestamp,start:timestamp>>").alias("out"),
    )

    def step(acc: Column, end: Column) -> Column:
        start = F.when(acc["start"].isNotNull() & (end < acc["start"] + period), acc["start"]).otherwise(end)
        return F.struct(
            start.alias("start"),
            F.array_append(acc["out"], F.struct(end.alias("end"), start.alias("start"))).alias("out"),
        )

    chained = per_host.join(anchors, "host_id", "left").select(
        "host_id", F.explode(F.aggregate("_ends", initial, step)["out"]).alias("_e")
    )
    return detections.join(
        chained.select("host_id", F.col("_e.end").alias("window_end"), F.col("_e.start").alias("episode_start")),
        ["host_id", "window_end"],
    )


def _peak(episodes: DataFrame) -> DataFrame:
    """Select the detection with the most new destinations in each episode (earliest on ties)."""
    order = Window.partitionBy("host_id", "episode_start").orderBy(
        F.col("new_destination_count").desc(), F.col("window_end")
    )
    return episodes.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") == 1).drop("_rank")


def _levels(episodes: DataFrame) -> DataFrame:
    """Highest variation and severity per episode and when they were first reached."""
    level = variation_rank(F.col("variation")) * 10 + severity_rank(F.col("severity"))
    ranked = episodes.withColumn("_level", level)
    order = Window.partitionBy("host_id", "episode_start").orderBy(F.col("_level").desc(), F.col("window_end"))
    top = ranked.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") == 1)
    return top.select(
        "host_id",
        "episode_start",
        F.col("variation").alias("top_variation"),
        F.col("severity").alias("top_severity"),
        F.when(F.col("window_end") > F.col("episode_start"), F.col("window_end")).alias("upgraded_at"),
    )


def episode_destinations(episodes: DataFrame, hourly: DataFrame) -> DataFrame:
    """New destinations of each episode with first time, attempts and failures over the whole episode.

    `hourly` is `smb_contacts_hourly` restricted to the episodes' time range.
    """
    bounds = episodes.groupBy("host_id", "episode_start").agg(
        F.min("window_start").alias("_from"), F.max("window_end").alias("_to")
    )
    wanted = (
        episodes.select("host_id", "episode_start", F.explode("new_destinations").alias("d"))
        .select("host_id", "episode_start", F.col("d.destination_id").alias("destination_id"))
        .distinct()
    )
    contacts = (
        wanted.join(bounds, ["host_id", "episode_start"])
        .join(hourly, ["host_id", "destination_id"])
        .where((F.col("hour") >= F.col("_from")) & (F.col("hour") < F.col("_to")))
    )
    per_destination = contacts.groupBy("host_id", "episode_start", "destination_id").agg(
        F.min("destination_ip").alias("destination_ip"),
        F.max("destination_resolved").alias("resolved"),
        F.min("first_time").alias("first_time"),
        F.sum("attempts").alias("attempts"),
        F.sum("failures").alias("failures"),
    )
    row = F.struct("destination_id", "destination_ip", "resolved", "first_time", "attempts", "failures")
    return (
        per_destination.groupBy("host_id", "episode_start")
        .agg(
            F.array_sort(F.collect_list(F.struct(F.col("first_time").alias("_t"), row.alias("_d")))).alias("_sorted"),
            F.sum("attempts").alias("_attempts"),
            F.sum("failures").alias("_failures"),
        )
        .select(
            "host_id",
            "episode_start",
            F.transform("_sorted", lambda x: x["_d"]).alias("new_destinations"),
            (F.col("_failures") / F.col("_attempts")).alias("failure_ratio"),
        )
    )


def episode_processes(episodes: DataFrame, hourly: DataFrame) -> DataFrame:
    """Actor and causality processes and command lines of the episode's contacts to new destinations."""
    wanted = episodes.select(
        "host_id",
        "episode_start",
        "window_start",
        "window_end",
        F.explode("new_destinations").alias("d"),
    )
    contacts = (
        wanted.join(
            hourly.withColumnRenamed("destination_id", "_destination"),
            (wanted["host_id"] == hourly["host_id"])
            & (F.col("d.destination_id") == F.col("_destination"))
            & (F.col("hour") >= F.col("window_start"))
            & (F.col("hour") < F.col("window_end")),
        )
        .select(
            wanted["host_id"],
            "episode_start",
            "hour",
            "_destination",
            "actor_processes",
            "causality_processes",
            "command_lines",
        )
        .distinct()
    )
    return merge_processes(contacts, ["host_id", "episode_start"])


def reason_sentence(alert: DataFrame) -> Column:
    """Build one plain sentence that explains why the alert fired."""
    hours = (F.unix_timestamp("window_end") - F.unix_timestamp("window_start")) / 3600
    base = F.format_string(
        "%s opened SMB connections to %d hosts it had not contacted in its training period within %d hours, "
        "above its threshold of %s",
        F.coalesce(F.col("host_name"), F.col("host_id")),
        F.col("new_destination_count"),
        hours.cast("int"),
        F.format_number(F.col("threshold"), 0),
    )
    rare = F.when(
        F.col("variation") != ABNORMAL,
        F.concat(F.lit("; highly rare because "), F.col("variation_reason")),
    )
    severity = F.when(
        F.size("severity_reasons") > 0,
        F.concat(F.lit("; severity Medium because "), F.array_join("severity_reasons", " and ")),
    )
    baseline = F.when(
        F.coalesce(F.col("insufficient_history"), F.lit(False)),
        F.format_string(
            "; the host has less history than the activation period, so its threshold comes from the %s baseline (%s)",
            F.coalesce(F.col("baseline_source"), F.lit("fleet")),
            F.coalesce(F.col("peer_group"), F.lit("fleet")),
        ),
    )
    parts = [base, rare, severity, baseline]
    return F.concat(*[F.coalesce(part, F.lit("")) for part in parts], F.lit("."))
