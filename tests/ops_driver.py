"""An hourly schedule on a small fleet, run in-process or as a subprocess that tests kill.

There are three deliveries. The first is the history up to CUT. The second
is the hour after CUT with 2 of an attacker's 6 new destinations. The third
is the next hour, and it also brings the other 4 attack events late and one
event older than the allowed lateness.
Each delivery is one scheduled run: ingest its file, stats, a fit after the
first, score. A marker file records a finished delivery, as a scheduler
records a finished task, so a restarted driver continues with the first
unfinished one.

Run as `python -m tests.ops_driver ROOT DELIVERIES [TIME_ZONE]`; with a time
zone the JVM, the Spark session and the process start in that zone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyspark.sql import SparkSession

from smb_fanout.config import Config, load_config
from smb_fanout.fit.job import run_fit
from smb_fanout.ingest.job import run_ingest
from smb_fanout.registry import ModelNotFoundError, champion
from smb_fanout.score.job import run_score
from smb_fanout.stats.job import run_stats

PROJECT_ROOT = Path(__file__).resolve().parents[1]
JARS = PROJECT_ROOT / ".smb-fanout" / "jars"

# Crosses the end of daylight saving time in New York (2026-11-01 06:00 UTC).
START = datetime(2026, 10, 30, 0, 0, tzinfo=UTC)
CUT = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ATTACKER = "w01"
WORKSTATIONS = [f"w{number:02d}" for number in range(1, 11)]
LATENESS_HOURS = 12

OVERRIDES = [
    "detector.training_days=2",
    "detector.activation_days=1",
    f"operations.allowed_lateness_hours={LATENESS_HOURS}",
    "operations.alert_budget_per_run=0",
]


def ops_config(root: Path) -> Config:
    return load_config("local", [f"storage.local_root={root}", f"spark.jars_dir={JARS}", *OVERRIDES])


def _ip(host: str) -> str:
    return f"10.0.0.{10 + int(host[1:])}"


def _event(event_id: str, host: str, moment: datetime, remote_ip: str, port: int) -> dict[str, object]:
    return {
        "event_id": event_id,
        "event_time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host_id": host,
        "host_name": host.upper(),
        "local_ip": _ip(host) if host != "fs" else "10.0.0.100",
        "remote_ip": remote_ip,
        "remote_port": port,
        "direction": "outbound",
        "protocol": "tcp",
        "outcome": "success",
        "actor_process_name": "System",
        "actor_process_pid": 4,
        "causality_process_name": "services.exe",
    }


def _hour_events(hour: datetime) -> list[dict[str, object]]:
    """Every workstation reaches the file server once an hour; the file server queries DNS."""
    stamp = hour.strftime("%Y%m%d%H")
    events = [
        _event(f"{stamp}-{host}", host, hour + timedelta(minutes=int(host[1:])), "10.0.0.100", 445)
        for host in WORKSTATIONS
    ]
    events.append(_event(f"{stamp}-fs", "fs", hour + timedelta(minutes=30), "10.0.0.1", 53))
    return events


def _attack(minutes: list[int], targets: list[str]) -> list[dict[str, object]]:
    return [
        _event(f"attack-{target}", ATTACKER, CUT + timedelta(minutes=minute), _ip(target), 445)
        for minute, target in zip(minutes, targets, strict=True)
    ]


def write_deliveries(folder: Path) -> list[Path]:
    """Write the delivery files (JSON Lines) and return them in delivery order."""
    folder.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, object]] = []
    hour = START
    while hour < CUT:
        history.extend(_hour_events(hour))
        hour += timedelta(hours=1)
    first = _hour_events(CUT) + _attack([10, 20], ["w02", "w03"])
    # Older than the progress before this delivery (CUT + 1 h) minus the allowed lateness.
    too_late = _event("too-late", "w04", CUT - timedelta(hours=LATENESS_HOURS), "10.0.0.99", 445)
    late_attack = _attack([30, 35, 40, 45], ["w04", "w05", "w06", "w07"])
    second = _hour_events(CUT + timedelta(hours=1)) + late_attack + [too_late]
    paths = []
    for number, events in enumerate([history, first, second]):
        path = folder / f"delivery-{number}.jsonl"
        path.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
        paths.append(path)
    return paths


def run_schedule(spark: SparkSession, config: Config, deliveries: list[Path]) -> None:
    """Run one scheduled hour per delivery, skipping deliveries that have a finished marker."""
    markers = config.local_root / "finished"
    markers.mkdir(parents=True, exist_ok=True)
    for number, delivery in enumerate(deliveries):
        marker = markers / f"{number}"
        if marker.exists():
            continue
        run_ingest(spark, config, [str(delivery)], "canonical")
        run_stats(spark, config)
        if number == 0:
            try:
                champion(config)
            except ModelNotFoundError:
                run_fit(spark, config, training_end=CUT.replace(tzinfo=None))
        run_score(spark, config)
        marker.touch()


def _session(time_zone: str, root: Path) -> SparkSession:
    """Start a local Delta session whose JVM, session and process use `time_zone`."""
    os.environ["TZ"] = time_zone
    time.tzset()
    jars = ",".join(str(jar) for jar in sorted(JARS.glob("*.jar")))
    return (
        SparkSession.builder.master("local[2]")
        .appName("smb-fanout-ops-driver")
        .config("spark.jars", jars)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", time_zone)
        .config("spark.driver.extraJavaOptions", f"-Duser.timezone={time_zone}")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", str(root / "warehouse"))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )


def main(argv: list[str]) -> None:
    root, deliveries_dir = Path(argv[0]), Path(argv[1])
    time_zone = argv[2] if len(argv) > 2 else "UTC"
    config = ops_config(root)
    spark = _session(time_zone, root)
    spark.sparkContext.setLogLevel("ERROR")
    run_schedule(spark, config, sorted(deliveries_dir.glob("delivery-*.jsonl")))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
