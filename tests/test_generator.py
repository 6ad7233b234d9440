"""Tests of the labelled fleet generator, checked on the JSON Lines it writes."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from smb_fanout.generator import ExtraHost, FleetSpec, GeneratedFleet, generate_fleet
from smb_fanout.ingest.adapters import CANONICAL_FIELDS

CANONICAL_KEYS = list(CANONICAL_FIELDS)
OPTIONAL_TEXT = (str, type(None))
FIELD_TYPES: dict[str, Any] = {
    "event_id": str,
    "event_time": str,
    "host_id": str,
    "host_name": str,
    "local_ip": str,
    "local_port": int,
    "remote_ip": str,
    "remote_port": int,
    "direction": str,
    "protocol": str,
    "outcome": str,
    "actor_process_name": str,
    "actor_process_path": OPTIONAL_TEXT,
    "actor_process_pid": int,
    "actor_process_command_line": OPTIONAL_TEXT,
    "actor_process_sha256": OPTIONAL_TEXT,
    "causality_process_name": str,
    "causality_process_path": OPTIONAL_TEXT,
    "user_name": str,
}
TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
SMB_PORTS = {445, 139}
# RFC 1918 and unique-local ranges: the detector's default internal networks.
INTERNAL_NETWORKS = [
    ipaddress.ip_network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
]
LOOKBACK = timedelta(days=30)
WINDOW = timedelta(hours=5)

EXTRA_WORKSTATION = ExtraHost(
    host_id="replay-host-0001",
    host_name="LAPTOP-REPLAY",
    ip="10.20.250.9",
    role="workstation",
    # More than 4, so the generator introduces them over two days.
    usual_smb_destinations=(
        "10.20.0.10",
        "10.20.0.12",
        "10.20.0.13",
        "192.168.56.10",
        "192.168.56.11",
        "192.168.56.12",
    ),
)
EXTRA_FILE_SERVER = ExtraHost("replay-fs-0001", "FS-REPLAY", "10.20.0.11", "file_server")
SPEC = FleetSpec(
    workstations=20,
    days=20,
    attacks=2,
    attack_min_destinations=6,
    attack_max_destinations=10,
    late_joiners=2,
    dhcp_changes=2,
    seed=11,
    extra_hosts=(EXTRA_WORKSTATION, EXTRA_FILE_SERVER),
)
SPEC_START = SPEC.end - timedelta(days=SPEC.days)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def read_events(fleet: GeneratedFleet) -> list[dict[str, Any]]:
    events = []
    for path in sorted(fleet.events_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            events.extend(json.loads(line) for line in handle)
    return events


def is_self_address(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address.is_loopback or address.is_link_local


def is_attack_attempt(event: dict[str, Any]) -> bool:
    """Outbound SMB with a command line: System itself has none, so the line is the attack tool's."""
    return (
        event["direction"] == "outbound"
        and event["remote_port"] in SMB_PORTS
        and event["actor_process_command_line"] is not None
    )


def smb_contacts(events: list[dict[str, Any]]) -> dict[str, list[tuple[datetime, str]]]:
    """Outbound SMB contacts per host as (time, remote IP), in time order, without self-connections."""
    contacts: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for event in events:
        if (
            event["direction"] == "outbound"
            and event["remote_port"] in SMB_PORTS
            and not is_self_address(event["remote_ip"])
        ):
            contacts[event["host_id"]].append((parse_time(event["event_time"]), event["remote_ip"]))
    for host_contacts in contacts.values():
        host_contacts.sort()
    return contacts


def new_contacts(contacts: list[tuple[datetime, str]]) -> list[tuple[datetime, str]]:
    """Contacts to an IP that the host did not contact in the 30 days before."""
    last_seen: dict[str, datetime] = {}
    new = []
    for time, ip in contacts:
        previous = last_seen.get(ip)
        if previous is None or time - previous > LOOKBACK:
            new.append((time, ip))
        last_seen[ip] = time
    return new


def max_new_in_window(contacts: list[tuple[datetime, str]]) -> int:
    new = new_contacts(contacts)
    best = 0
    for first, _ in new:
        best = max(best, len({ip for time, ip in new if first <= time < first + WINDOW}))
    return best


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> GeneratedFleet:
    return generate_fleet(SPEC, tmp_path_factory.mktemp("fleet"))


@pytest.fixture(scope="module")
def events(fleet: GeneratedFleet) -> list[dict[str, Any]]:
    return read_events(fleet)


@pytest.fixture(scope="module")
def hosts(fleet: GeneratedFleet) -> dict[str, dict[str, Any]]:
    return {host["host_name"]: host for host in json.loads(fleet.hosts_path.read_text())}


@pytest.fixture(scope="module")
def labels(fleet: GeneratedFleet) -> list[dict[str, Any]]:
    return json.loads(fleet.labels_path.read_text())


@pytest.fixture(scope="module")
def contacts(events: list[dict[str, Any]]) -> dict[str, list[tuple[datetime, str]]]:
    return smb_contacts(events)


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*.json*"))}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    generate_fleet(SPEC, tmp_path / "first")
    generate_fleet(SPEC, tmp_path / "second")
    assert file_bytes(tmp_path / "first") == file_bytes(tmp_path / "second")


def test_same_bytes_across_hash_seeds(tmp_path: Path) -> None:
    # Set or dict ordering that depends on PYTHONHASHSEED would change the output between processes.
    script = (
        "import sys; from pathlib import Path; from smb_fanout.generator import FleetSpec, generate_fleet; "
        "generate_fleet(FleetSpec(workstations=12, days=8, attacks=1, attack_min_destinations=5, late_joiners=1), "
        "Path(sys.argv[1]))"
    )
    for hash_seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", script, str(tmp_path / hash_seed)], check=True, env=environment)
    assert file_bytes(tmp_path / "1") == file_bytes(tmp_path / "2")


def test_other_seed_other_events(tmp_path: Path, fleet: GeneratedFleet) -> None:
    other = generate_fleet(dataclasses.replace(SPEC, seed=12), tmp_path)
    assert file_bytes(other.events_dir) != file_bytes(fleet.events_dir)


def test_files_per_week(fleet: GeneratedFleet) -> None:
    names = sorted(path.name for path in fleet.events_dir.glob("*.jsonl"))
    assert names == ["events-2026-11-10.jsonl", "events-2026-11-17.jsonl", "events-2026-11-24.jsonl"]


def test_event_count_matches_lines(fleet: GeneratedFleet, events: list[dict[str, Any]]) -> None:
    assert fleet.event_count == len(events)


def test_canonical_keys(events: list[dict[str, Any]]) -> None:
    wrong = [event for event in events if list(event) != CANONICAL_KEYS]
    assert wrong == []


def test_field_types(events: list[dict[str, Any]]) -> None:
    wrong = [
        (event["event_id"], key, event[key])
        for event in events
        for key, expected in FIELD_TYPES.items()
        if not isinstance(event[key], expected) or isinstance(event[key], bool)
    ]
    assert wrong == []


def test_event_time_format(events: list[dict[str, Any]]) -> None:
    wrong = [event["event_time"] for event in events if not TIME_PATTERN.fullmatch(event["event_time"])]
    assert wrong == []


def test_events_inside_period(events: list[dict[str, Any]]) -> None:
    outside = [event["event_time"] for event in events if not SPEC_START <= parse_time(event["event_time"]) < SPEC.end]
    assert outside == []


def test_events_in_time_order(events: list[dict[str, Any]]) -> None:
    times = [event["event_time"] for event in events]
    assert times == sorted(times)


def test_event_ids_unique(events: list[dict[str, Any]]) -> None:
    repeated = [event_id for event_id, count in Counter(e["event_id"] for e in events).items() if count > 1]
    assert repeated == []


def test_enum_values(events: list[dict[str, Any]]) -> None:
    values = {(e["direction"], e["protocol"], e["outcome"]) for e in events}
    allowed = {(d, p, o) for d in ("outbound", "inbound") for p in ("tcp", "udp") for o in ("success", "failure")}
    assert values <= allowed


def test_smb_attributed_to_system(events: list[dict[str, Any]]) -> None:
    actors = {
        (e["actor_process_name"], e["actor_process_pid"], e["actor_process_path"])
        for e in events
        if e["remote_port"] in SMB_PORTS or e["local_port"] in SMB_PORTS
    }
    assert actors == {("System", 4, None)}


def test_noise_ports_present(events: list[dict[str, Any]]) -> None:
    services = {(e["protocol"], e["remote_port"]) for e in events if e["direction"] == "outbound"}
    assert {("udp", 53), ("tcp", 88), ("tcp", 389), ("tcp", 443)} <= services


def test_https_leaves_internal_networks(events: list[dict[str, Any]]) -> None:
    https = {ipaddress.ip_address(e["remote_ip"]) for e in events if e["remote_port"] == 443}
    internal = [ip for ip in https if any(ip in network for network in INTERNAL_NETWORKS)]
    assert internal == []


def test_dc_self_connections(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    dc_ids = {host["host_id"] for host in hosts.values() if host["role"] == "domain_controller"}
    kinds = {
        "loopback" if ipaddress.ip_address(e["remote_ip"]).is_loopback else "link-local"
        for e in events
        if e["host_id"] in dc_ids and e["remote_port"] == 445 and e["remote_ip"] == e["local_ip"]
    }
    assert kinds == {"loopback", "link-local"}


def test_self_connections_only_on_dcs(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    roles = {host["host_id"]: host["role"] for host in hosts.values()}
    self_roles = {roles[e["host_id"]] for e in events if is_self_address(e["remote_ip"])}
    assert self_roles == {"domain_controller"}


def test_server_addresses(hosts: dict[str, dict[str, Any]]) -> None:
    servers = {name: host["ips"] for name, host in hosts.items() if host["role"] != "workstation"}
    assert servers == {
        "DC-01": ["10.20.0.10"],
        "DC-02": ["10.20.0.12"],
        "FS-01": ["10.20.0.13"],
        "FS-02": ["10.20.0.14"],
        "FS-03": ["10.20.0.15"],
        "FS-04": ["10.20.0.16"],
        "PRN-01": ["10.20.0.17"],
        "PRN-02": ["10.20.0.18"],
        "PRN-03": ["10.20.0.19"],
        "FS-REPLAY": ["10.20.0.11"],
    }


def test_workstations_in_subnet(hosts: dict[str, dict[str, Any]]) -> None:
    subnet = ipaddress.ip_network(SPEC.subnet)
    outside = [ip for host in hosts.values() for ip in host["ips"] if ipaddress.ip_address(ip) not in subnet]
    assert outside == []


def test_host_ids_unique(hosts: dict[str, dict[str, Any]]) -> None:
    assert len({host["host_id"] for host in hosts.values()}) == len(hosts)


def test_printers_log_nothing(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    printer_ids = {host["host_id"] for host in hosts.values() if host["role"] == "printer"}
    assert {e["host_id"] for e in events} & printer_ids == set()


def test_inbound_matches_outbound(events: list[dict[str, Any]]) -> None:
    outbound = {
        (e["local_ip"], e["local_port"], e["remote_ip"], e["remote_port"])
        for e in events
        if e["direction"] == "outbound"
    }
    inbound = [
        (e["remote_ip"], e["remote_port"], e["local_ip"], e["local_port"])
        for e in events
        if e["direction"] == "inbound"
    ]
    unmatched = [session for session in inbound if session not in outbound]
    assert unmatched == []


def test_servers_log_inbound_smb(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    server_names = {name for name, host in hosts.items() if host["role"] in ("file_server", "domain_controller")}
    logging = {e["host_name"] for e in events if e["direction"] == "inbound" and e["local_port"] == 445}
    assert server_names <= logging


def test_business_hours_peak(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    workstation_ids = {host["host_id"] for host in hosts.values() if host["role"] == "workstation"}
    hours = [
        parse_time(e["event_time"]).hour
        for e in events
        if e["host_id"] in workstation_ids and e["direction"] == "outbound" and e["remote_port"] == 445
    ]
    share_in_hours = sum(7 <= hour < 20 for hour in hours) / len(hours)
    assert share_in_hours > 0.8


def test_weekends_quieter(events: list[dict[str, Any]]) -> None:
    per_day = Counter(parse_time(e["event_time"]).date() for e in events if e["remote_port"] == 445)
    weekday = [count for day, count in per_day.items() if day.weekday() < 5]
    weekend = [count for day, count in per_day.items() if day.weekday() >= 5]
    assert sum(weekday) / len(weekday) > 3 * sum(weekend) / len(weekend)


def test_labels_shape(labels: list[dict[str, Any]]) -> None:
    keys = [sorted(label) for label in labels]
    expected = sorted(
        ["attack_id", "host_id", "host_name", "start", "end", "destination_ips", "destination_host_ids", "technique"]
    )
    assert keys == [expected] * SPEC.attacks


def test_labels_technique(labels: list[dict[str, Any]]) -> None:
    assert {label["technique"] for label in labels} == {"T1021.002"}


def test_attack_count(fleet: GeneratedFleet, labels: list[dict[str, Any]]) -> None:
    assert fleet.attack_count == SPEC.attacks
    assert len(labels) == SPEC.attacks


def test_attack_start_in_last_days(labels: list[dict[str, Any]]) -> None:
    earliest = SPEC.end - timedelta(days=SPEC.attack_days)
    latest = SPEC.end - timedelta(hours=SPEC.window_hours)
    starts = [parse_time(label["start"]) for label in labels]
    assert [earliest <= start <= latest for start in starts] == [True] * SPEC.attacks


def test_attack_duration(labels: list[dict[str, Any]]) -> None:
    durations = [parse_time(label["end"]) - parse_time(label["start"]) for label in labels]
    assert [timedelta(0) < duration <= timedelta(hours=3, minutes=1) for duration in durations] == [True] * len(labels)


def test_attack_size(labels: list[dict[str, Any]]) -> None:
    sizes = [len(set(label["destination_ips"])) for label in labels]
    in_range = [SPEC.attack_min_destinations <= size <= SPEC.attack_max_destinations for size in sizes]
    assert in_range == [True] * len(labels)


def test_attack_targets_other_workstations(labels: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    by_id = {host["host_id"]: host for host in hosts.values()}
    wrong = [
        (label["attack_id"], target_id)
        for label in labels
        for target_id in label["destination_host_ids"]
        if target_id == label["host_id"] or by_id[target_id]["role"] != "workstation"
    ]
    assert wrong == []


def test_attack_target_ids_match_ips(labels: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    by_id = {host["host_id"]: host for host in hosts.values()}
    wrong = [
        (label["attack_id"], ip)
        for label in labels
        for ip, target_id in zip(label["destination_ips"], label["destination_host_ids"], strict=True)
        if ip not in by_id[target_id]["ips"]
    ]
    assert wrong == []


def test_attackers_have_full_history(labels: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    attackers = [hosts[label["host_name"]] for label in labels]
    assert [(host["role"], host["late_joiner"]) for host in attackers] == [("workstation", False)] * len(labels)


def test_attack_reaches_labelled_ips(labels: list[dict[str, Any]], contacts: dict[str, list]) -> None:
    for label in labels:
        start, end = parse_time(label["start"]), parse_time(label["end"])
        history = {ip for time, ip in contacts[label["host_id"]] if start - LOOKBACK <= time < start}
        during = {ip for time, ip in contacts[label["host_id"]] if start <= time <= end}
        assert during - history == set(label["destination_ips"]), label["attack_id"]


def test_attack_ips_new(labels: list[dict[str, Any]], contacts: dict[str, list]) -> None:
    for label in labels:
        start = parse_time(label["start"])
        history = {ip for time, ip in contacts[label["host_id"]] if start - LOOKBACK <= time < start}
        assert history & set(label["destination_ips"]) == set(), label["attack_id"]


def test_attack_crosses_threshold(labels: list[dict[str, Any]], contacts: dict[str, list]) -> None:
    peaks = [max_new_in_window(contacts[label["host_id"]]) for label in labels]
    assert [peak >= SPEC.attack_min_destinations for peak in peaks] == [True] * len(labels)


def test_attack_tools(events: list[dict[str, Any]], labels: list[dict[str, Any]]) -> None:
    for label in labels:
        start, end = label["start"], label["end"]
        attempts = [
            e
            for e in events
            if e["host_id"] == label["host_id"] and start <= e["event_time"] <= end and is_attack_attempt(e)
        ]
        tools = {e["causality_process_name"] for e in attempts}
        assert tools <= {"PsExec64.exe", "powershell.exe", "cmd.exe"}, label["attack_id"]
        assert {e["remote_ip"] for e in attempts} == set(label["destination_ips"]), label["attack_id"]
        assert all(e["remote_ip"] in e["actor_process_command_line"] for e in attempts), label["attack_id"]


def test_attack_failure_share(events: list[dict[str, Any]], labels: list[dict[str, Any]]) -> None:
    attacker_ids = {label["host_id"] for label in labels}
    outcomes = Counter(e["outcome"] for e in events if e["host_id"] in attacker_ids and is_attack_attempt(e))
    assert 0.1 <= outcomes["failure"] / outcomes.total() <= 0.5


def test_ordinary_hosts_below_five(labels: list[dict[str, Any]], contacts: dict[str, list]) -> None:
    attacker_ids = {label["host_id"] for label in labels}
    peaks = {host_id: max_new_in_window(host_contacts) for host_id, host_contacts in contacts.items()}
    above = {host_id: peak for host_id, peak in peaks.items() if host_id not in attacker_ids and peak >= 5}
    assert above == {}


def test_benign_churn_present(
    labels: list[dict[str, Any]], contacts: dict[str, list], hosts: dict[str, dict[str, Any]]
) -> None:
    # After the first two days every usual destination is known, so later new
    # contacts to shares and workstations are churn (printers are occasional anyway).
    settled = SPEC_START + timedelta(days=2)
    attacker_ids = {label["host_id"] for label in labels}
    roles = {ip: host["role"] for host in hosts.values() for ip in host["ips"]}
    churn_roles = Counter(
        roles.get(ip, "unknown")
        for host_id, host_contacts in contacts.items()
        if host_id not in attacker_ids
        for time, ip in new_contacts(host_contacts)
        if time >= settled and roles.get(ip) != "printer"
    )
    assert churn_roles["file_server"] >= 1
    assert churn_roles["workstation"] >= 1


def test_late_joiner_count(hosts: dict[str, dict[str, Any]]) -> None:
    assert sum(host["late_joiner"] for host in hosts.values()) == SPEC.late_joiners


def test_late_joiners_first_event(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    late = {host["host_id"] for host in hosts.values() if host["late_joiner"]}
    first: dict[str, datetime] = {}
    for event in events:
        first.setdefault(event["host_id"], parse_time(event["event_time"]))
    too_early = {host_id: first[host_id] for host_id in late if first[host_id] < SPEC.end - timedelta(days=5)}
    assert too_early == {}


def test_first_seen_is_first_event(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    first: dict[str, str] = {}
    for event in events:
        first.setdefault(event["host_id"], event["event_time"])
    recorded = {host["host_id"]: host["first_seen"] for host in hosts.values() if host["has_agent"]}
    assert recorded == first


def test_full_history_hosts_start_early(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    first_seen = {name: parse_time(host["first_seen"]) for name, host in hosts.items() if host["first_seen"]}
    late = {name for name, host in hosts.items() if host["late_joiner"]}
    too_late = {
        name: seen for name, seen in first_seen.items() if name not in late and seen >= SPEC_START + timedelta(days=1)
    }
    assert too_late == {}


def test_dhcp_change_count(hosts: dict[str, dict[str, Any]]) -> None:
    changed = [host for host in hosts.values() if host["ip_changed_at"] is not None]
    assert [len(host["ips"]) for host in changed] == [2] * SPEC.dhcp_changes


def test_dhcp_host_keeps_id(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    for name, host in hosts.items():
        if host["ip_changed_at"] is None:
            continue
        changed_at = host["ip_changed_at"]
        own = [e for e in events if e["host_id"] == host["host_id"]]
        before = {e["local_ip"] for e in own if e["event_time"] < changed_at and e["direction"] == "outbound"}
        after = {e["local_ip"] for e in own if e["event_time"] >= changed_at and e["direction"] == "outbound"}
        assert before == {host["ips"][0]}, name
        assert after == {host["ips"][1]}, name


def test_dhcp_host_name_stable(events: list[dict[str, Any]], hosts: dict[str, dict[str, Any]]) -> None:
    changed = {host["host_id"]: name for name, host in hosts.items() if host["ip_changed_at"] is not None}
    names = {(e["host_id"], e["host_name"]) for e in events if e["host_id"] in changed}
    assert names == set(changed.items())


def test_extra_host_identity(events: list[dict[str, Any]]) -> None:
    own = [e for e in events if e["host_id"] == EXTRA_WORKSTATION.host_id]
    assert {(e["host_name"], e["local_ip"]) for e in own} == {(EXTRA_WORKSTATION.host_name, EXTRA_WORKSTATION.ip)}


def test_extra_host_from_first_day(hosts: dict[str, dict[str, Any]]) -> None:
    first_seen = parse_time(hosts[EXTRA_WORKSTATION.host_name]["first_seen"])
    assert first_seen < SPEC_START + timedelta(days=1)


def test_extra_host_usual_destinations(contacts: dict[str, list]) -> None:
    reached = {ip for _, ip in contacts[EXTRA_WORKSTATION.host_id]}
    assert reached == set(EXTRA_WORKSTATION.usual_smb_destinations)


def test_extra_hosts_never_attack(labels: list[dict[str, Any]]) -> None:
    extra_ids = {EXTRA_WORKSTATION.host_id, EXTRA_FILE_SERVER.host_id}
    assert {label["host_id"] for label in labels} & extra_ids == set()


def test_extra_server_serves_clients(events: list[dict[str, Any]]) -> None:
    clients = {e["host_id"] for e in events if e["direction"] == "outbound" and e["remote_ip"] == EXTRA_FILE_SERVER.ip}
    assert len(clients) >= 1


def test_end_not_midnight(tmp_path: Path) -> None:
    end = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    spec = FleetSpec(workstations=12, days=8, attacks=1, attack_min_destinations=5, late_joiners=1, end=end)
    fleet = generate_fleet(spec, tmp_path)
    times = [parse_time(e["event_time"]) for e in read_events(fleet)]
    assert min(times) >= end - timedelta(days=8)
    assert max(times) < end


def test_rerun_replaces_files(tmp_path: Path) -> None:
    generate_fleet(FleetSpec(workstations=12, days=8, attacks=1, attack_min_destinations=5, late_joiners=1), tmp_path)
    spec = FleetSpec(workstations=12, days=8, attacks=1, attack_min_destinations=5, late_joiners=1, days_per_file=8)
    fleet = generate_fleet(spec, tmp_path)
    assert sorted(path.name for path in fleet.events_dir.iterdir()) == ["events-2026-11-22.jsonl"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"attacks": 30}, "FleetSpec.attacks"),
        ({"late_joiners": 21}, "FleetSpec.late_joiners"),
        ({"attack_min_destinations": 30, "attack_max_destinations": 40}, "attack_min_destinations"),
        ({"attack_min_destinations": 9, "attack_max_destinations": 8}, "attack destination range"),
        ({"end": datetime(2026, 11, 30)}, "timezone-aware"),
        ({"days": 0}, "FleetSpec.days"),
        ({"dhcp_changes": -1}, "FleetSpec.dhcp_changes"),
        ({"days": 5}, "must be > 5 when late_joiners > 0"),
        ({"dhcp_changes": 30}, "FleetSpec.dhcp_changes"),
        ({"subnet": "10.20.0.0/33"}, "FleetSpec.subnet"),
        ({"subnet": "10.20.0.0/28"}, "too small for the servers"),
        ({"subnet": "10.20.0.0/24", "workstations": 300, "late_joiners": 0}, "workstation addresses"),
        ({"extra_hosts": (ExtraHost("x", "X-1", "fe80::1%eth0", "workstation"),)}, "remove the scope ID"),
        ({"extra_hosts": (ExtraHost("x", "X-1", "10.20.0.300", "workstation"),)}, "invalid IP"),
        ({"extra_hosts": (ExtraHost("x", "X-1", "10.20.9.9", "router"),)}, "invalid role"),
        ({"extra_hosts": (ExtraHost("x", "WS-0001", "10.20.9.9", "workstation"),)}, "repeats a generated name"),
        ({"extra_hosts": (EXTRA_WORKSTATION, EXTRA_WORKSTATION)}, "duplicate ExtraHost.host_id"),
    ],
)
def test_invalid_spec(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    spec = dataclasses.replace(SPEC, **{"extra_hosts": (), **changes})
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_fleet(spec, tmp_path)


def test_default_spec_size(tmp_path: Path) -> None:
    fleet = generate_fleet(FleetSpec(), tmp_path)
    assert 100_000 <= fleet.event_count <= 300_000
