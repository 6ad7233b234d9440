"""Deterministic generator of a labelled fleet of endpoint network events.

`generate_fleet` writes canonical JSON Lines (one connection or attempt per line),
`hosts.json` with the identity of every host and `labels.json` with the injected
SMB fan-out attacks (ATT&CK T1021.002). The same spec always produces byte-identical
files, because every random choice comes from a `random.Random` seeded with
`FleetSpec.seed` and the wall clock is never read.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from smb_fanout.generator.model import DAY_MS, ROLES, TECHNIQUE, ExtraHost, FleetSpec, GeneratedFleet, _Fleet, _Timeline
from smb_fanout.generator.plan import _plan_attacks, _plan_hosts, _validate_spec
from smb_fanout.generator.scenarios import plan_scenarios, scenario_events
from smb_fanout.generator.traffic import _attack_events_by_day
from smb_fanout.generator.writer import _host_entry, _write_events, _write_json

__all__ = ["ROLES", "TECHNIQUE", "ExtraHost", "FleetSpec", "GeneratedFleet", "generate_fleet"]


def generate_fleet(spec: FleetSpec, out_dir: Path) -> GeneratedFleet:
    """Generate a labelled fleet and write it under `out_dir`.

    Writes `events/events-<first date>.jsonl` (one file per `days_per_file` days, in
    time order), `hosts.json` and `labels.json`. Events are written one day at a time,
    so memory use grows with the events of one day, not of the whole period.

    Args:
        spec: fleet size, time range, seed and attacks.
        out_dir: output folder; earlier `events-*.jsonl` files in it are replaced.

    Returns:
        Paths of the written files and the numbers of events and attacks.

    Raises:
        ValueError: the spec is inconsistent, for example too few workstations for
            the requested attacks; the message names the field to change.
    """
    _validate_spec(spec)
    rng = random.Random(spec.seed)
    end_ms = (spec.end - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    timeline = _Timeline(end_ms - spec.days * DAY_MS, end_ms)
    fleet = _Fleet(spec, timeline, _plan_hosts(spec, rng, timeline))
    fleet.attacks = _plan_attacks(fleet, rng)
    # A separate random stream keeps a fleet without scenarios byte-identical to before.
    planned = plan_scenarios(fleet, random.Random(f"{spec.seed}/scenarios"), spec.scenarios, spec.scenario_repeats)

    events_dir = out_dir / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    for old in events_dir.glob("events-*.jsonl"):
        old.unlink()
    attack_events, labels = _attack_events_by_day(fleet)
    extra_events, scenario_labels = scenario_events(fleet, planned)
    for day, events in extra_events.items():
        attack_events.setdefault(day, []).extend(events)
    event_count, first_seen = _write_events(fleet, attack_events, events_dir)

    hosts_path = out_dir / "hosts.json"
    labels_path = out_dir / "labels.json"
    _write_json(hosts_path, [_host_entry(host, first_seen) for host in fleet.hosts])
    _write_json(labels_path, labels)
    scenarios_path = None
    if planned:
        scenarios_path = out_dir / "scenarios.json"
        _write_json(scenarios_path, scenario_labels)
    return GeneratedFleet(events_dir, labels_path, hosts_path, event_count, len(labels), scenarios_path)
