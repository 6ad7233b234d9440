"""The approaches smb-fanout is measured against, on the same raw Parquet events.

The naive hourly query is what a data engineer writes first. Every hour it
rebuilds each host's destination set over the whole training period from raw
events. Then it keeps the hosts with enough destinations in the last window
that are not in that set. The floor is a bare scan and group-by of the same events.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import SparkSession

NAIVE_SQL = """
WITH smb AS (
    SELECT host_id, remote_ip, CAST(event_time AS TIMESTAMP) AS event_time
    FROM {events}
    WHERE direction = 'outbound' AND remote_port IN ('445', '139')
),
recent AS (
    SELECT DISTINCT host_id, remote_ip FROM smb
    WHERE event_time >= TIMESTAMP '{window_start}' AND event_time < TIMESTAMP '{window_end}'
),
history AS (
    SELECT DISTINCT host_id, remote_ip FROM smb
    WHERE event_time >= TIMESTAMP '{history_start}' AND event_time < TIMESTAMP '{window_start}'
)
SELECT recent.host_id, COUNT(*) AS new_destinations
FROM recent ANTI JOIN history
    ON recent.host_id = history.host_id AND recent.remote_ip = history.remote_ip
GROUP BY recent.host_id
HAVING COUNT(*) >= {min_new}
ORDER BY recent.host_id
"""

FLOOR_SQL = """
SELECT host_id, remote_ip, date_trunc('HOUR', CAST(event_time AS TIMESTAMP)) AS hour, COUNT(*) AS events
FROM {events}
WHERE direction = 'outbound' AND remote_port IN ('445', '139')
GROUP BY 1, 2, 3
"""


def naive_query(events: str, window_end: datetime, window_hours: int, training_days: int, min_new: int) -> str:
    window_start = window_end - timedelta(hours=window_hours)
    history_start = window_start - timedelta(days=training_days)
    stamp = "%Y-%m-%d %H:%M:%S"
    return NAIVE_SQL.format(
        events=events,
        window_start=window_start.strftime(stamp),
        window_end=window_end.strftime(stamp),
        history_start=history_start.strftime(stamp),
        min_new=min_new,
    )


def naive_spark(spark: SparkSession, parquet_dirs: list[str], query_args: dict) -> list[tuple[str, int]]:
    spark.read.parquet(*parquet_dirs).createOrReplaceTempView("bench_raw_events")
    rows = spark.sql(naive_query("bench_raw_events", **query_args)).collect()
    return [(row["host_id"], int(row["new_destinations"])) for row in rows]


def naive_duckdb(parquet_dirs: list[str], query_args: dict, threads: int) -> list[tuple[str, int]]:
    import duckdb

    files = ", ".join(f"'{folder}/*.parquet'" for folder in parquet_dirs)
    with duckdb.connect() as connection:
        connection.execute(f"SET threads = {threads}")
        # Session time zone UTC, so the timestamp literals mean what Spark reads.
        connection.execute("SET TimeZone = 'UTC'")
        query = naive_query(f"read_parquet([{files}])", **query_args)
        return [(host, int(count)) for host, count in connection.execute(query).fetchall()]


def floor_spark(spark: SparkSession, events_table: str) -> None:
    """Scan and group the stored events; the noop sink runs the whole plan and writes nothing."""
    spark.sql(FLOOR_SQL.format(events=events_table)).write.format("noop").mode("overwrite").save()
