"""Schemas of every smb-fanout table, declared once as DDL strings."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import StructType

# Canonical endpoint network event: one connection or attempt seen by an agent.
NETWORK_EVENTS = """
    event_id STRING NOT NULL,
    event_time TIMESTAMP NOT NULL,
    event_date DATE NOT NULL,
    host_id STRING NOT NULL,
    host_name STRING,
    local_ip STRING,
    local_port INT,
    remote_ip STRING,
    remote_port INT,
    direction STRING NOT NULL,
    protocol STRING,
    outcome STRING NOT NULL,
    actor_process_name STRING,
    actor_process_path STRING,
    actor_process_pid BIGINT,
    actor_process_command_line STRING,
    actor_process_sha256 STRING,
    causality_process_name STRING,
    causality_process_path STRING,
    user_name STRING,
    source_format STRING NOT NULL,
    source_file STRING NOT NULL,
    source_row BIGINT NOT NULL,
    ingested_at TIMESTAMP NOT NULL
"""

QUARANTINED_EVENTS = """
    source_file STRING NOT NULL,
    source_row BIGINT NOT NULL,
    source_format STRING NOT NULL,
    reason STRING NOT NULL,
    raw STRING,
    ingest_run_id STRING NOT NULL,
    quarantined_at TIMESTAMP NOT NULL
"""

INGEST_RUNS = """
    ingest_run_id STRING NOT NULL,
    source_file STRING NOT NULL,
    source_format STRING NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_written BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    duplicates_removed BIGINT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    quarantine_reasons MAP<STRING, BIGINT>,
    error STRING
"""

# Addresses each agent reported as its own, per day: the basis of destination identity.
HOST_ADDRESSES = """
    host_id STRING NOT NULL,
    host_name STRING,
    ip STRING NOT NULL,
    day DATE NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL
"""

# `sha256` is the image hash of an actor process, when the source reports it.
PROCESS_COUNT = "STRUCT<name: STRING, path: STRING, count: BIGINT, sha256: STRING>"

# One row per source host, destination identity and hour.
SMB_CONTACTS_HOURLY = f"""
    host_id STRING NOT NULL,
    host_name STRING,
    destination_id STRING NOT NULL,
    destination_ip STRING NOT NULL,
    destination_resolved BOOLEAN NOT NULL,
    hour TIMESTAMP NOT NULL,
    day DATE NOT NULL,
    attempts BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    first_time TIMESTAMP NOT NULL,
    last_time TIMESTAMP NOT NULL,
    actor_processes ARRAY<{PROCESS_COUNT}>,
    causality_processes ARRAY<{PROCESS_COUNT}>,
    command_lines ARRAY<STRING>,
    previous_seen TIMESTAMP,
    is_new BOOLEAN NOT NULL
"""

# Per host and destination: first and last contact hour, maintained with MERGE.
# `seen_before_batch` is the last contact before `batch_start`, the start of
# the stats batch that last touched the row. Late events can rewind a batch by
# up to the allowed lateness, so `recent_hours` lists every contact hour that a
# later batch may still recompute. `settled_last_seen` is the last contact
# before those hours. Together they give the history before any batch start.
SMB_PROFILE = """
    host_id STRING NOT NULL,
    destination_id STRING NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    seen_before_batch TIMESTAMP,
    batch_start TIMESTAMP NOT NULL,
    recent_hours ARRAY<TIMESTAMP>,
    settled_last_seen TIMESTAMP
"""

NEW_DESTINATION = """STRUCT<
    destination_id: STRING, destination_ip: STRING, resolved: BOOLEAN,
    first_time: TIMESTAMP, attempts: BIGINT, failures: BIGINT>"""

# One row per host and window end: statistics of the window [window_start, window_end).
SMB_HOST_WINDOWS = f"""
    host_id STRING NOT NULL,
    host_name STRING,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    distinct_destinations BIGINT NOT NULL,
    new_destination_count BIGINT NOT NULL,
    new_destinations ARRAY<{NEW_DESTINATION}>,
    attempts BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    failure_ratio DOUBLE NOT NULL,
    new_attempts BIGINT NOT NULL,
    new_failures BIGINT NOT NULL,
    actor_processes ARRAY<{PROCESS_COUNT}>,
    causality_processes ARRAY<{PROCESS_COUNT}>,
    command_lines ARRAY<STRING>
"""

# Progress of the stats job. `events_version` is the `network_events` table
# version read by the last batch: later versions hold the events not seen yet.
SMB_STATS_STATE = """
    state_key STRING NOT NULL,
    processed_through TIMESTAMP NOT NULL,
    fleet_first_seen TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    events_version BIGINT
"""

# Progress of the score job: the `smb_host_windows` table version scored last.
SMB_SCORE_STATE = """
    state_key STRING NOT NULL,
    windows_version BIGINT NOT NULL,
    scored_through TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
"""

# One row per job run, for monitoring the detector itself.
DETECTOR_RUNS = """
    run_id STRING NOT NULL,
    job STRING NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status STRING NOT NULL,
    rows_read BIGINT,
    rows_written BIGINT,
    rows_quarantined BIGINT,
    rows_late BIGINT,
    rows_too_late BIGINT,
    hosts_scored BIGINT,
    alerts_opened BIGINT,
    alerts_updated BIGINT,
    duration_s DOUBLE,
    model_version STRING,
    status_reason STRING,
    detections_excluded BIGINT,
    expired_exclusions STRING
"""

# One row per host per fitted model; `host_id` '*' is the fleet row and
# '*peer:<group>' the row of a peer group, for hosts the model has not seen.
# `host_quantile` is the model's count quantile before the
# `min_new_destinations` floor; `fleet_floor` is that floor.
SMB_THRESHOLDS = """
    model_run_id STRING NOT NULL,
    host_id STRING NOT NULL,
    baseline_source STRING NOT NULL,
    windows_observed BIGINT NOT NULL,
    active_windows BIGINT NOT NULL,
    mean_new_destinations DOUBLE NOT NULL,
    max_new_destinations BIGINT NOT NULL,
    host_quantile DOUBLE NOT NULL,
    fleet_floor DOUBLE NOT NULL,
    threshold DOUBLE NOT NULL,
    fleet_tail_threshold DOUBLE NOT NULL,
    showed_fanout BOOLEAN NOT NULL,
    training_start TIMESTAMP NOT NULL,
    training_end TIMESTAMP NOT NULL,
    fitted_at TIMESTAMP NOT NULL,
    peer_group STRING,
    peer_rule STRING,
    prior_source STRING,
    prior_hosts BIGINT,
    prior_mean DOUBLE,
    predictive_mean DOUBLE,
    predictive_size DOUBLE
"""

# Fleet hosts that reached each destination in a model's training period.
SMB_DESTINATION_POPULARITY = """
    model_run_id STRING NOT NULL,
    destination_id STRING NOT NULL,
    hosts BIGINT NOT NULL,
    host_fraction DOUBLE NOT NULL
"""

# Peer group of each host, loaded from a CMDB or directory export.
HOST_ROLES = """
    host_id STRING NOT NULL,
    peer_group STRING NOT NULL,
    source STRING
"""

# Share of hosts that used each actor process for SMB in a model's training period.
SMB_PROCESS_RARITY = """
    model_run_id STRING NOT NULL,
    process_name STRING NOT NULL,
    hosts BIGINT NOT NULL,
    host_fraction DOUBLE NOT NULL
"""

# One row per host and window end that crossed the thresholds.
SMB_DETECTIONS = f"""
    host_id STRING NOT NULL,
    host_name STRING,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    variation STRING NOT NULL,
    severity STRING NOT NULL,
    new_destination_count BIGINT NOT NULL,
    new_destinations ARRAY<{NEW_DESTINATION}>,
    threshold DOUBLE NOT NULL,
    fleet_tail_threshold DOUBLE NOT NULL,
    failure_ratio DOUBLE NOT NULL,
    severity_reasons ARRAY<STRING>,
    variation_reason STRING NOT NULL,
    baseline_source STRING NOT NULL,
    baseline_mean_new_destinations DOUBLE,
    baseline_max_new_destinations BIGINT,
    baseline_windows_observed BIGINT,
    model_name STRING NOT NULL,
    model_version STRING NOT NULL,
    model_run_id STRING NOT NULL,
    peer_group STRING,
    insufficient_history BOOLEAN,
    tail_probability DOUBLE,
    common_destination_count BIGINT,
    excluded_destination_count BIGINT,
    fleet_change_destination_count BIGINT,
    input_versions MAP<STRING, BIGINT>,
    predictive_mean DOUBLE,
    exclusion STRING
"""

SMB_ALERTS = f"""
    alert_id STRING NOT NULL,
    alert_name STRING NOT NULL,
    variation STRING NOT NULL,
    severity STRING NOT NULL,
    host_id STRING NOT NULL,
    host_name STRING,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    first_detection_window_end TIMESTAMP NOT NULL,
    last_detection_window_end TIMESTAMP NOT NULL,
    new_destinations ARRAY<{NEW_DESTINATION}>,
    new_destination_count BIGINT NOT NULL,
    threshold DOUBLE NOT NULL,
    baseline_mean_new_destinations DOUBLE,
    baseline_max_new_destinations BIGINT,
    baseline_windows_observed BIGINT,
    baseline_source STRING,
    fleet_tail_threshold DOUBLE NOT NULL,
    failure_ratio DOUBLE NOT NULL,
    actor_processes ARRAY<{PROCESS_COUNT}>,
    causality_processes ARRAY<{PROCESS_COUNT}>,
    command_lines ARRAY<STRING>,
    severity_reasons ARRAY<STRING>,
    mitre_tactic_id STRING NOT NULL,
    mitre_tactic_name STRING NOT NULL,
    mitre_technique_id STRING NOT NULL,
    mitre_technique_name STRING NOT NULL,
    mitre_subtechnique_id STRING NOT NULL,
    mitre_subtechnique_name STRING NOT NULL,
    description STRING NOT NULL,
    investigative_actions ARRAY<STRING>,
    reason STRING NOT NULL,
    model_name STRING NOT NULL,
    model_version STRING NOT NULL,
    model_run_id STRING NOT NULL,
    status STRING NOT NULL,
    detection_count BIGINT NOT NULL,
    suppressed_count BIGINT NOT NULL,
    upgraded_at TIMESTAMP,
    content_hash STRING NOT NULL,
    detected_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    opened_through TIMESTAMP,
    detection_delay_s BIGINT,
    peer_group STRING,
    insufficient_history BOOLEAN,
    tail_probability DOUBLE,
    common_destination_count BIGINT,
    excluded_destination_count BIGINT,
    fleet_change_destination_count BIGINT,
    input_versions MAP<STRING, BIGINT>
"""


@dataclass(frozen=True)
class Migration:
    """The change that takes a table to schema `version`.

    `columns` is the DDL of the nullable columns added (Delta adds them at the
    end), and `nested_columns` the same for fields added to structs, named by
    their path (`actor_processes.element.sha256 STRING`). `backfill` maps a
    new column to a SQL expression over the existing columns that fills it in
    the rows already stored. `properties` are Delta
    table properties to set, and `cluster_by` the liquid clustering columns.
    """

    version: int
    columns: str = ""
    nested_columns: str = ""
    backfill: tuple[tuple[str, str], ...] = ()
    properties: tuple[tuple[str, str], ...] = ()
    cluster_by: tuple[str, ...] = ()


CHANGE_FEED = (("delta.enableChangeDataFeed", "true"),)
_DETECTION_MODEL_COLUMNS = (
    "peer_group STRING, insufficient_history BOOLEAN, tail_probability DOUBLE, "
    "common_destination_count BIGINT, excluded_destination_count BIGINT, fleet_change_destination_count BIGINT, "
    "input_versions MAP<STRING, BIGINT>"
)
_PROCESS_HASHES = "actor_processes.element.sha256 STRING, causality_processes.element.sha256 STRING"

# Every table created before schema versions existed is version 1. A table's
# current version is 1 + the number of its migrations; the DDL above is always
# the current version, with migrated columns last.
MIGRATIONS: dict[str, tuple[Migration, ...]] = {
    "network_events": (Migration(2, properties=CHANGE_FEED, cluster_by=("host_id", "event_time")),),
    "ingest_runs": (Migration(2, "quarantine_reasons MAP<STRING, BIGINT>, error STRING"),),
    "smb_contacts_hourly": (
        Migration(2, cluster_by=("host_id", "hour")),
        Migration(3, nested_columns=_PROCESS_HASHES),
    ),
    "smb_profile": (
        Migration(
            2,
            "recent_hours ARRAY<TIMESTAMP>, settled_last_seen TIMESTAMP",
            backfill=(("recent_hours", "array(last_seen)"), ("settled_last_seen", "seen_before_batch")),
            cluster_by=("host_id",),
        ),
    ),
    "smb_host_windows": (
        Migration(2, properties=CHANGE_FEED, cluster_by=("host_id", "window_end")),
        Migration(3, nested_columns=_PROCESS_HASHES),
    ),
    "smb_stats_state": (Migration(2, "events_version BIGINT"),),
    "smb_thresholds": (
        Migration(
            2,
            "peer_group STRING, peer_rule STRING, prior_source STRING, prior_hosts BIGINT, prior_mean DOUBLE, "
            "predictive_mean DOUBLE, predictive_size DOUBLE",
        ),
    ),
    "smb_detections": (
        Migration(2, cluster_by=("host_id", "window_end")),
        Migration(3, _DETECTION_MODEL_COLUMNS + ", predictive_mean DOUBLE, exclusion STRING"),
    ),
    "smb_alerts": (
        Migration(2, "opened_through TIMESTAMP, detection_delay_s BIGINT", cluster_by=("host_id", "window_end")),
        Migration(3, _DETECTION_MODEL_COLUMNS),
        Migration(4, nested_columns=_PROCESS_HASHES),
    ),
    "detector_runs": (Migration(2, "detections_excluded BIGINT, expired_exclusions STRING"),),
}


def schema_version(table_key: str) -> int:
    """Return the schema version this code writes for a table."""
    return 1 + len(MIGRATIONS.get(table_key, ()))


def struct_type(ddl: str) -> StructType:
    """Parse one of the DDL strings above into a StructType."""
    parsed = StructType.fromDDL(" ".join(ddl.split()))
    assert isinstance(parsed, StructType)
    return parsed
