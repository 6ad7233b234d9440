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
from smb_fanout.identifiers import qualified_name, quote_identifier
from smb_fanout.tables import TableRef, Tables, ensure_table

logger = logging.getLogger(__name__)


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
    source="detector_runs",
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
    """Create or replace every view, creating its source table empty when it is missing.

    The views then work before the first job run, and the dashboard shows
    empty charts rather than errors.
    """
    result = ViewsResult()
    tables = Tables(config)
    for view in VIEWS:
        ref = tables.ref(view.source)
        ensure_table(spark, ref)
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
