"""Writing generated events, hosts and labels to files."""

from __future__ import annotations

import json
from operator import attrgetter
from pathlib import Path
from typing import Any

from smb_fanout.generator.model import DAY_MS, _date_text, _Fleet, _format_time, _Host
from smb_fanout.generator.traffic import _Event, _event_line, _host_day


def _write_events(
    fleet: _Fleet, attack_events: dict[int, list[_Event]], events_dir: Path
) -> tuple[int, dict[str, int]]:
    """Write all days in time order.

    Returns the event count and the first event time of each host, in epoch milliseconds.
    """
    count = 0
    first_seen: dict[str, int] = {}
    timeline, days_per_file, seed = fleet.timeline, fleet.spec.days_per_file, fleet.spec.seed
    for chunk_start in range(0, timeline.day_count, days_per_file):
        path = events_dir / f"events-{_date_text(timeline.day_ms(chunk_start) // DAY_MS)}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            for day in range(chunk_start, min(chunk_start + days_per_file, timeline.day_count)):
                events = attack_events.get(day, [])
                for host in fleet.hosts:
                    events.extend(_host_day(fleet, host, day))
                # Day 0 and the last day are cut to the generated period.
                events = [event for event in events if timeline.start_ms <= event.ms < timeline.end_ms]
                events.sort(key=attrgetter("ms"))
                lines = []
                for sequence, event in enumerate(events):
                    first_seen.setdefault(event.host.host_id, event.ms)
                    lines.append(_event_line(f"gen{seed}-{day:04d}-{sequence:08d}", event))
                handle.write("".join(lines))
                count += len(events)
    return count, first_seen


def _host_entry(host: _Host, first_seen: dict[str, int]) -> dict[str, Any]:
    seen = first_seen.get(host.host_id)
    return {
        "host_id": host.host_id,
        "host_name": host.host_name,
        "role": host.role,
        "ips": host.ips,
        "ip_changed_at": None if host.ip_change_ms is None else _format_time(host.ip_change_ms),
        "first_seen": None if seen is None else _format_time(seen),
        "has_agent": host.has_agent,
        "late_joiner": host.first_day > 0,
    }


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
