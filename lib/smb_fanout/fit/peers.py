"""Peer groups: which hosts share a baseline when a host's own history is thin.

A host's group comes from the first source that names one: the `host_roles`
table (from a CMDB or Active Directory OU export), the naming rules in
`peers.naming_rules`, then the subnet of its latest reported address. A host
with none of these is in the `fleet` group.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from smb_fanout.config import PeersConfig
from smb_fanout.ipaddr import subnet_of

FLEET_GROUP = "fleet"


def _naming_group(host_name: Column, peers: PeersConfig) -> Column:
    group: Column = F.lit(None).cast("string")
    for rule in reversed(peers.naming_rules):
        group = F.when(F.lower(host_name).rlike(rule.pattern), F.lit(f"name:{rule.group}")).otherwise(group)
    return group


def latest_addresses(addresses: DataFrame) -> DataFrame:
    """Select the address each host reported last (`host_id`, `ip`) from `host_addresses` rows."""
    order = Window.partitionBy("host_id").orderBy(F.col("last_seen").desc(), F.col("ip"))
    return addresses.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") == 1).select("host_id", "ip")


def assign_peer_groups(hosts: DataFrame, roles: DataFrame, addresses: DataFrame, peers: PeersConfig) -> DataFrame:
    """Add `peer_group` and `peer_rule` (`role`, `name`, `subnet` or `fleet`) to rows with `host_id`, `host_name`.

    `roles` has the columns `host_id` and `peer_group`, and `addresses` is `host_addresses`.
    """
    role = roles.select("host_id", F.concat(F.lit("role:"), F.col("peer_group")).alias("_role")).dropDuplicates(
        ["host_id"]
    )
    subnet = latest_addresses(addresses).select(
        "host_id",
        F.concat(F.lit("subnet:"), subnet_of(F.col("ip"), peers.subnet_prefix_v4, peers.subnet_prefix_v6)).alias(
            "_subnet"
        ),
    )
    named = _naming_group(F.col("host_name"), peers)
    joined = hosts.join(role, "host_id", "left").join(subnet, "host_id", "left")
    return joined.withColumn("_name", named).select(
        *hosts.columns,
        F.coalesce("_role", "_name", "_subnet", F.lit(FLEET_GROUP)).alias("peer_group"),
        F.when(F.col("_role").isNotNull(), "role")
        .when(F.col("_name").isNotNull(), "name")
        .when(F.col("_subnet").isNotNull(), "subnet")
        .otherwise(FLEET_GROUP)
        .alias("peer_rule"),
    )
