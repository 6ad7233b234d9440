"""A Spark standalone cluster on loopback for tests: one master and two one-core workers.

The processes are started from the pyspark installation's `spark-class` and
stopped by their process ids; nothing listens on an address other than
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark

LOOPBACK = "127.0.0.1"


class ClusterStartError(RuntimeError):
    """The master or a worker did not come up in time."""


@dataclass(frozen=True)
class StandaloneCluster:
    master_url: str
    ui_url: str
    log_dir: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _spark_class() -> tuple[Path, Path]:
    spark_home = Path(pyspark.__file__).resolve().parent
    return spark_home, spark_home / "bin" / "spark-class"


def _alive_workers(ui_url: str) -> int:
    try:
        with urllib.request.urlopen(f"{ui_url}/json/", timeout=2) as response:
            state = json.load(response)
    except OSError:
        return 0
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


@contextmanager
def standalone_cluster(work_dir: Path, workers: int = 2, worker_memory: str = "1500m") -> Iterator[StandaloneCluster]:
    """Start a master and `workers` one-core workers on loopback; stop them on exit."""
    spark_home, spark_class = _spark_class()
    log_dir = work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_WORKER_DIR": str(work_dir / "work"),
        "SPARK_NO_DAEMONIZE": "1",
    }
    master_port, ui_port = free_port(), free_port()
    master_url = f"spark://{LOOPBACK}:{master_port}"
    ui_url = f"http://{LOOPBACK}:{ui_port}"
    commands = [
        [str(spark_class), "org.apache.spark.deploy.master.Master", "--host", LOOPBACK, "--port", str(master_port),
         "--webui-port", str(ui_port)],
    ] + [
        [str(spark_class), "org.apache.spark.deploy.worker.Worker", master_url, "--host", LOOPBACK, "--cores", "1",
         "--memory", worker_memory, "--webui-port", str(free_port())]
        for _ in range(workers)
    ]  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index, command in enumerate(commands):
            log = (log_dir / f"process-{index}.log").open("wb")
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while _alive_workers(ui_url) < workers:
            if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
                raise ClusterStartError(f"standalone cluster did not start; see the logs in {log_dir}")
            time.sleep(1)
        yield StandaloneCluster(master_url, ui_url, log_dir)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
