"""SMB contacts: filtering network events, resolving destination identity, hourly aggregates."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from smb_fanout.config import DetectorConfig
from smb_fanout.ipaddr import ip_in_cidrs, is_link_local, is_non_destination

UNRESOLVED_PREFIX = "ip:"
FAILED_OUTCOMES = ("failure", "blocked")
MAX_COMMAND_LINES = 10


def smb_contacts(events: DataFrame, detector: DetectorConfig) -> DataFrame:
    """Keep outbound TCP connections or attempts to an internal SMB destination.

    Needs the canonical `network_events` columns. Loopback, link-local,
    multicast, broadcast and unspecified destinations, and the event's own
    local address, are never destinations.
    """
    remote = F.col("remote_ip")
    protocol_ok = F.col("protocol").isNull() | (F.col("protocol") == "tcp")
    return events.where(
        (F.col("direction") == "outbound")
        & protocol_ok
        & F.col("remote_port").isin(*detector.smb_ports)
        & ip_in_cidrs(remote, detector.internal_cidrs)
        & ~is_non_destination(remote)
        & (F.col("local_ip").isNull() | (remote != F.col("local_ip")))
    )


def host_addresses(events: DataFrame) -> DataFrame:
    """Addresses each host reported as its own, per day.

    Needs `host_id`, `host_name`, `local_ip`, `event_time`; returns one row per
    (`host_id`, `ip`, `day`) with `first_seen` and `last_seen`. Link-local and
    other non-routable addresses are left out because they identify no host.
    """
    usable = events.where(
        F.col("local_ip").isNotNull() & ~is_non_destination(F.col("local_ip")) & ~is_link_local(F.col("local_ip"))
    )
    return usable.groupBy("host_id", F.col("local_ip").alias("ip"), F.to_date("event_time").alias("day")).agg(
        F.max("host_name").alias("host_name"),
        F.min("event_time").alias("first_seen"),
        F.max("event_time").alias("last_seen"),
    )


def resolve_destinations(contacts: DataFrame, addresses: DataFrame) -> DataFrame:
    """Add `destination_id` and `destination_resolved` to SMB contacts.

    A destination IP resolves to the host that reported it as its own on the
    same day. Among several, the one that took the address most recently
    before the contact wins, then the lowest `host_id`. Unresolved
    destinations keep the IP as `ip:<address>`. Contacts that resolve to the
    source host itself are removed.
    """
    holders = addresses.select(
        F.col("ip").alias("_ip"),
        F.col("day").alias("_day"),
        F.col("host_id").alias("_holder"),
        F.col("first_seen").alias("_holder_since"),
    )
    keyed = contacts.withColumn("_contact_key", F.monotonically_increasing_id())
    joined = keyed.join(
        holders,
        (F.col("remote_ip") == F.col("_ip")) & (F.to_date("event_time") == F.col("_day")),
        "left",
    )
    held_before = F.col("_holder_since") <= F.col("event_time")
    preference = Window.partitionBy("_contact_key").orderBy(
        F.when(held_before, 0).otherwise(1),
        F.when(held_before, F.col("_holder_since")).desc_nulls_last(),
        F.col("_holder").asc_nulls_last(),
    )
    best = joined.withColumn("_rank", F.row_number().over(preference)).where(F.col("_rank") == 1)
    resolved = best.withColumn(
        "destination_id",
        F.coalesce(F.col("_holder"), F.concat(F.lit(UNRESOLVED_PREFIX), F.col("remote_ip"))),
    ).withColumn("destination_resolved", F.col("_holder").isNotNull())
    return resolved.where(F.col("destination_id") != F.col("host_id")).drop(
        "_contact_key", "_ip", "_day", "_holder", "_holder_since", "_rank"
    )


def _sorted_process_counts(counted: DataFrame, keys: list[str], alias: str) -> DataFrame:
    """Collect (`name`, `path`, `count`, `sha256`) rows per key into an array, largest count first, then by name."""
    ordered = F.array_sort(
        F.collect_list(F.struct((-F.col("count")).alias("_order"), "name", "path", "sha256", "count"))
    )
    return counted.groupBy(*keys).agg(
        F.transform(ordered, lambda p: F.struct(p["name"], p["path"], p["count"], p["sha256"])).alias(alias)
    )


def merge_processes(rows: DataFrame, keys: list[str]) -> DataFrame:
    """Sum the process counts and merge the command lines of `rows` per key.

    Needs `actor_processes`, `causality_processes` and `command_lines` arrays
    as in `smb_contacts_hourly`. Returns one row per key with the same three
    columns, which are null for keys without processes or command lines.
    """
    result = rows.select(*keys).distinct()
    for column in ("actor_processes", "causality_processes"):
        flat = rows.select(*keys, F.explode(column).alias("p"))
        summed = flat.groupBy(
            *keys, F.col("p.name").alias("name"), F.col("p.path").alias("path"), F.col("p.sha256").alias("sha256")
        ).agg(F.sum("p.count").alias("count"))
        result = result.join(_sorted_process_counts(summed, keys, column), keys, "left")
    commands = (
        rows.select(*keys, F.explode("command_lines").alias("c"))
        .groupBy(*keys)
        .agg(F.slice(F.array_sort(F.collect_set("c")), 1, MAX_COMMAND_LINES).alias("command_lines"))
    )
    return result.join(commands, keys, "left")


def hourly_contacts(resolved: DataFrame) -> DataFrame:
    """Aggregate resolved SMB contacts per host, destination identity and hour.

    Adds attempts, failures, first and last time, the destination IP (the
    lowest when several), actor and causality processes with counts, and up to
    ten distinct command lines. Novelty columns are added later.

    The events are shuffled once, grouped by key and process pair; a second,
    small aggregate per key sums those pairs into the process arrays.
    """
    keys = ["host_id", "destination_id", "hour"]
    failed = F.col("outcome").isin(*FAILED_OUTCOMES)
    pairs = resolved.groupBy(
        F.date_trunc("hour", F.col("event_time")).alias("hour"),
        "host_id",
        "destination_id",
        "actor_process_name",
        "actor_process_path",
        "actor_process_sha256",
        "causality_process_name",
        "causality_process_path",
    ).agg(
        F.max("host_name").alias("host_name"),
        F.min("remote_ip").alias("destination_ip"),
        F.max("destination_resolved").alias("destination_resolved"),
        F.count(F.lit(1)).alias("_attempts"),
        F.sum(F.when(failed, 1).otherwise(0)).cast("long").alias("failures"),
        F.min("event_time").alias("first_time"),
        F.max("event_time").alias("last_time"),
        F.collect_set("actor_process_command_line").alias("_commands"),
    )
    actor = F.struct(
        F.col("actor_process_name").alias("name"),
        F.col("actor_process_path").alias("path"),
        F.col("actor_process_sha256").alias("sha256"),
        F.col("_attempts").alias("count"),
    )
    # The events carry no image hash for the causality process.
    cause = F.struct(
        F.col("causality_process_name").alias("name"),
        F.col("causality_process_path").alias("path"),
        F.lit(None).cast("string").alias("sha256"),
        F.col("_attempts").alias("count"),
    )
    commands = F.array_sort(F.array_distinct(F.flatten(F.collect_list("_commands"))))
    return (
        pairs.groupBy(*keys)
        .agg(
            F.max("host_name").alias("host_name"),
            F.min("destination_ip").alias("destination_ip"),
            F.max("destination_resolved").alias("destination_resolved"),
            F.sum("_attempts").alias("attempts"),
            F.sum("failures").alias("failures"),
            F.min("first_time").alias("first_time"),
            F.max("last_time").alias("last_time"),
            _summed_processes(F.collect_list(actor)).alias("actor_processes"),
            _summed_processes(F.collect_list(cause)).alias("causality_processes"),
            F.slice(commands, 1, MAX_COMMAND_LINES).alias("command_lines"),
        )
        .withColumn("day", F.to_date("hour"))
    )


def _summed_processes(counted: Column) -> Column:
    """Sum an array of (`name`, `path`, `sha256`, `count`) per process, largest count first, then by name.

    The array lists the few processes of one host, destination and hour, so
    comparing every pair costs little.
    """

    def same(a: Column, b: Column) -> Column:
        return a["name"].eqNullSafe(b["name"]) & a["path"].eqNullSafe(b["path"]) & a["sha256"].eqNullSafe(b["sha256"])

    def total(process: Column) -> Column:
        matching = F.filter(counted, lambda other: same(other, process))
        return F.aggregate(matching, F.lit(0).cast("long"), lambda acc, other: acc + other["count"])

    distinct = F.array_distinct(
        F.transform(
            counted, lambda p: F.struct(p["name"].alias("name"), p["path"].alias("path"), p["sha256"].alias("sha256"))
        )
    )
    ordered = F.array_sort(
        F.transform(
            distinct,
            lambda p: F.struct(
                (-total(p)).alias("_order"),
                p["name"].alias("name"),
                p["path"].alias("path"),
                p["sha256"].alias("sha256"),
                total(p).alias("count"),
            ),
        )
    )
    return F.transform(ordered, lambda p: F.struct(p["name"], p["path"], p["count"], p["sha256"]))
