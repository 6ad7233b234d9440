"""Wall time, CPU time and peak memory of a benchmark step, counted over this process and its children (the JVM)."""

from __future__ import annotations

import platform
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil


@dataclass
class Measurement:
    """Cost of one step, filled in when its `measure` block ends."""

    step: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    extra: dict[str, float | int | str] = field(default_factory=dict)


def _tree() -> list[psutil.Process]:
    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def _cpu_seconds() -> float:
    total = 0.0
    for process in _tree():
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _rss_mb() -> float:
    total = 0
    for process in _tree():
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


@contextmanager
def measure(step: str, interval_s: float = 0.2) -> Iterator[Measurement]:
    """Time the block; a sampling thread keeps the largest resident memory of the process tree."""
    result = Measurement(step)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result.peak_rss_mb = max(result.peak_rss_mb, _rss_mb())
            stop.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    cpu_before, started = _cpu_seconds(), time.perf_counter()
    sampler.start()
    try:
        yield result
    finally:
        result.wall_s = time.perf_counter() - started
        result.cpu_s = max(0.0, _cpu_seconds() - cpu_before)
        stop.set()
        sampler.join()


def machine() -> dict[str, str | int | float]:
    """Return the facts a reader needs to compare numbers across machines."""
    cpu_model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr.splitlines()
    return {
        "cpu_model": cpu_model,
        "logical_cores": psutil.cpu_count(logical=True) or 0,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java[0] if java else "unknown",
    }
