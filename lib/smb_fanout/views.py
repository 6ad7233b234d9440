"""SQL views over the alert and health tables, shared by the Databricks dashboard and the local report.

On Databricks (`storage.use_paths: false`) the views are catalog views next to
the tables, `catalog.schema.view`, so the dashboard's datasets can name them.
With path-based local tables they are temporary views of the Spark session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from smb_fanout.config import Config
from smb_fanout.identifiers import qualified_name, quote_identifier, validate_identifier
from smb_fanout.tables import TABLE_SCHEMAS, TableRef, Tables, ensure_table

logger = logging.getLogger(__name__)

# Table with one row per job run, written by the jobs. The health view reads it
# only when it exists, because older deployments lack it.
DETECTOR_RUNS = "detector_runs"


@dataclass(frozen=True)
class ViewSpec:
    name: str
    source: str
    comment: str
    query: str


ALERTS_DAILY = ViewSpec(
    name="smb_alerts_daily",
    source="smb_alerts",
    comment="Alerts per UTC day of first detection, by severity and variation.",
    query="""
        SELECT CAST(first_detection_window_end AS DATE) AS day,
               severity,
               variation,
               COUNT(*) AS alerts,
               COUNT(DISTINCT host_id) AS hosts,
               SUM(new_destination_count) AS new_destinations
        FROM {source}
        GROUP BY CAST(first_detection_window_end AS DATE), severity, variation
    """,
)

TOP_HOSTS = ViewSpec(
    name="smb_top_hosts",
    source="smb_alerts",
    comment="Alerting hosts with their alert counts and largest fan-out.",
    query="""
        SELECT host_id,
               COALESCE(MAX(host_name), host_id) AS host_name,
               COUNT(*) AS alerts,
               COUNT_IF(severity = 'Medium') AS medium_alerts,
               COUNT_IF(variation LIKE 'Highly rare%') AS highly_rare_alerts,
               MAX(new_destination_count) AS max_new_destinations,
               SUM(new_destination_count) AS total_new_destinations,
               MAX(window_end) AS last_window_end
        FROM {source}
        GROUP BY host_id
    """,
)

ALERT_LIST = ViewSpec(
    name="smb_alert_list",
    source="smb_alerts",
    comment="One row per alert with the columns an analyst reads first.",
    query="""
        SELECT alert_id,
               COALESCE(host_name, host_id) AS host,
               host_id,
               severity,
               variation,
               window_start,
               window_end,
               new_destination_count,
               threshold,
               baseline_mean_new_destinations,
               status,
               suppressed_count,
               reason,
               model_version
        FROM {source}
    """,
)

NEW_DESTINATIONS = ViewSpec(
    name="smb_alert_new_destinations",
    source="smb_alerts",
    comment="One row per alert and new destination, with the contact's first time, attempts and failures.",
    query="""
        SELECT a.alert_id,
               a.host_id,
               COALESCE(a.host_name, a.host_id) AS host,
               a.severity,
               a.variation,
               a.window_start,
               a.window_end,
               d.destination_id,
               d.destination_ip,
               d.resolved,
               d.first_time,
               d.attempts,
               d.failures
        FROM {source} AS a
        LATERAL VIEW explode(a.new_destinations) exploded AS d
    """,
)

DETECTOR_HEALTH = ViewSpec(
    name="smb_detector_health",
    source=DETECTOR_RUNS,
    comment="Job runs per UTC day and job: failures, rows, alerts and duration.",
    query="""
        SELECT CAST(started_at AS DATE) AS day,
               job,
               COUNT(*) AS runs,
               COUNT_IF(status <> 'succeeded') AS failed_runs,
               SUM(rows_read) AS rows_read,
               SUM(rows_written) AS rows_written,
               SUM(rows_quarantined) AS rows_quarantined,
               MAX(hosts_scored) AS max_hosts_scored,
               SUM(alerts_opened) AS alerts_opened,
               SUM(alerts_updated) AS alerts_updated,
               AVG(duration_s) AS mean_duration_s,
               MAX(duration_s) AS max_duration_s,
               MAX_BY(model_version, started_at) AS last_model_version
        FROM {source}
        GROUP BY CAST(started_at AS DATE), job
    """,
)

VIEWS = (ALERTS_DAILY, TOP_HOSTS, ALERT_LIST, NEW_DESTINATIONS, DETECTOR_HEALTH)


@dataclass
class ViewsResult:
    created: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def source_ref(config: Config, key: str) -> TableRef:
    """Resolve a view's source table, including `detector_runs` when no table schema declares it."""
    if key in TABLE_SCHEMAS:
        return Tables(config).ref(key)
    storage = config.storage
    table = validate_identifier(getattr(storage.tables, key, key))
    if storage.use_paths:
        return TableRef(key=key, name=table, path=config.local_root / "tables" / storage.schema_name / table)
    return TableRef(key=key, name=qualified_name(storage.catalog, storage.schema_name, table), path=None)


def view_name(config: Config, view: ViewSpec) -> str:
    """Name of the view in SQL: catalog.schema.view on a catalog, the bare view name for local paths."""
    if config.storage.use_paths:
        return quote_identifier(view.name)
    return qualified_name(config.storage.catalog, config.storage.schema_name, view.name)


def _source_sql(ref: TableRef) -> str:
    if ref.path is not None and "`" in str(ref.path):
        raise ValueError(f"table path {ref.path} contains a backtick; choose a storage.local_root without one")
    return ref.sql_name


def create_views(spark: SparkSession, config: Config) -> ViewsResult:
    """Create or replace every view whose source table exists.

    The alert table is created empty when it is missing, so the dashboard
    works before the first alert. A view over a missing `detector_runs`
    table is skipped, and the reason is logged and returned.
    """
    result = ViewsResult()
    for view in VIEWS:
        ref = source_ref(config, view.source)
        if view.source in TABLE_SCHEMAS:
            ensure_table(spark, ref)
        elif not ref.exists(spark):
            reason = f"table {ref.sql_name} does not exist yet; a later run creates the view once the jobs write it"
            logger.warning("skipped view %s: %s", view.name, reason)
            result.skipped[view.name] = reason
            continue
        kind = "TEMPORARY VIEW" if config.storage.use_paths else "VIEW"
        comment = "" if config.storage.use_paths else f" COMMENT '{view.comment}'"
        statement = (
            f"CREATE OR REPLACE {kind} {view_name(config, view)}{comment} AS "
            f"{view.query.format(source=_source_sql(ref)).strip()}"
        )
        spark.sql(statement)
        result.created.append(view.name)
        logger.info("created view %s over %s", view.name, ref.sql_name)
    return result
