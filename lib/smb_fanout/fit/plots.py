"""Plots logged with each fit."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from smb_fanout.fit.thresholds import FleetDistribution


def plot_fleet_distribution(fleet: FleetDistribution, floor: float, tail: float, folder: Path) -> Path:
    """Write a log-scale histogram of new destinations per host-window with the fitted thresholds."""
    values = sorted(fleet.counts)
    figure, axis = plt.subplots(figsize=(8, 4.5))
    axis.bar(values, [fleet.counts[v] for v in values], color="#4C72B0")
    axis.set_yscale("log")
    axis.axvline(floor, color="#DD8452", linestyle="--", label=f"fleet floor ({floor:g})")
    axis.axvline(tail, color="#C44E52", linestyle=":", label=f"highly rare tail ({tail:g})")
    axis.set_xlabel("new SMB destinations in a window")
    axis.set_ylabel("host-windows (log scale)")
    axis.set_title("New SMB destinations per host-window, training period")
    axis.legend()
    path = folder / "fleet_new_destinations.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
