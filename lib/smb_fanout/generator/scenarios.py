"""Labelled scenarios injected into a generated fleet: attacks and the benign traffic that looks like them.

Each scenario class picks its hosts and its time when the fleet is planned
and adds events on top of the ordinary traffic. Its label in
`scenarios.json` names the class, whether it is an attack, the hosts that
may alert for it, its time range and what the detector is expected to do.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smb_fanout.generator.model import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    SECOND_MS,
    SMB_FROM_EXPLORER,
    SMB_FROM_SVCHOST,
    SYSTEM_USER,
    TECHNIQUE,
    _Fleet,
    _format_time,
    _Host,
    _Process,
)
from smb_fanout.generator.traffic import _Event, _Recorder

ATTACK = "attack"
BENIGN = "benign"
# Expected outcomes of a benign class: no alert, only Low alerts, or
# detections that an allowlist entry of the evaluation configuration matches.
SILENT = "silent"
LOW = "low"
EXCLUDED = "excluded"

PSEXEC = _Process(
    "System",
    None,
    r"PsExec64.exe \\{ip} -accepteula -s cmd.exe /c whoami",
    "PsExec64.exe",
    r"C:\ProgramData\PsExec64.exe",
)
NET_USE = _Process("System", None, r"cmd.exe /c net use \\{ip}\IPC$", "cmd.exe", r"C:\Windows\System32\cmd.exe")
SHARP_TOOL = _Process(
    "SharpShares.exe",
    r"C:\Users\Public\SharpShares.exe",
    r"C:\Users\Public\SharpShares.exe /ldap:all /filter:C$,ADMIN$",
    "powershell.exe",
    r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
)
RANSOM_SWEEP = _Process("System", None, None, "svc_update.exe", r"C:\Windows\Temp\svc_update.exe")
SCANNER = _Process("nessusd.exe", r"C:\Program Files\Tenable\Nessus\nessusd.exe", None, "nessusd.exe", None)
DEPLOYMENT = _Process("System", None, None, "ccmexec.exe", r"C:\Windows\CCM\CcmExec.exe")
BACKUP = _Process("System", None, None, "VeeamAgent.exe", r"C:\Program Files\Veeam\VeeamAgent.exe")


@dataclass(frozen=True)
class ScenarioClass:
    """One kind of labelled traffic and the detector behaviour it should produce."""

    name: str
    kind: str
    expected: str
    description: str


@dataclass
class _Planned:
    scenario_id: str
    cls: ScenarioClass
    hosts: list[_Host]
    start_ms: int
    build: Callable[[_Fleet, random.Random], list[_Event]]
    destinations: list[str] = field(default_factory=list)
    end_ms: int | None = None


CLASSES = {
    c.name: c
    for c in (
        ScenarioClass(
            "fast_fanout", ATTACK, "alert", "a workstation runs PsExec on 8 to 25 workstations within an hour"
        ),
        ScenarioClass("slow_spread", ATTACK, "alert", "a workstation reaches 8 to 12 workstations spread over 9 hours"),
        ScenarioClass(
            "failed_scan", ATTACK, "alert", "a workstation tries 30 to 60 addresses in 30 minutes, 85 % fail"
        ),
        ScenarioClass(
            "user_mode_tool", ATTACK, "alert", "a user-mode tool connects directly to 6 to 12 workstations in 2 hours"
        ),
        ScenarioClass("share_sweep", ATTACK, "alert", "a file server sweeps the C$ shares of 20 to 40 workstations"),
        ScenarioClass("new_file_server", BENIGN, SILENT, "40 % of the workstations start using a new file server"),
        ScenarioClass(
            "software_distribution",
            BENIGN,
            EXCLUDED,
            "the software distribution point pushes nightly and then reaches 15 to 25 newly onboarded hosts",
        ),
        ScenarioClass("vulnerability_scanner", BENIGN, SILENT, "a scanner has probed every workstation each night"),
        ScenarioClass("backup_new_vms", BENIGN, LOW, "a backup server adds 6 new virtual machines to its nightly job"),
        ScenarioClass("dhcp_churn", BENIGN, SILENT, "workstations get new addresses from DHCP"),
        ScenarioClass("logon_script", BENIGN, SILENT, "a new logon script maps 3 existing file shares"),
        ScenarioClass("domain_controller", BENIGN, SILENT, "domain controllers' own traffic"),
        ScenarioClass(
            "roaming_vpn", BENIGN, SILENT, "laptops move to the VPN address pool and keep their usual shares"
        ),
        ScenarioClass("renamed_host", BENIGN, SILENT, "workstations are renamed and keep their agent's host id"),
        ScenarioClass(
            "os_update_fleet_change", BENIGN, SILENT, "every workstation reaches 5 new update shares at once"
        ),
    )
}


class _Addresses:
    """Hands out addresses of the fleet's subnet from the top down, never used by planned hosts."""

    def __init__(self, fleet: _Fleet) -> None:
        self.network = ipaddress.ip_network(fleet.spec.subnet)
        self.used = {ip for host in fleet.hosts for ip in host.ips}
        self.offset = 2
        self.vpn = ipaddress.ip_network("10.99.0.0/16")
        self.vpn_offset = 10

    def take_vpn(self) -> str:
        ip = str(self.vpn[self.vpn_offset])
        self.vpn_offset += 1
        return ip

    def take(self, count: int) -> list[str]:
        taken: list[str] = []
        while len(taken) < count:
            ip = str(self.network[-self.offset])
            self.offset += 1
            if ip not in self.used:
                taken.append(ip)
        return taken


def _burst(
    recorder: _Recorder,
    start_ms: int,
    span_ms: int,
    ips: list[str],
    process: _Process,
    user: str,
    failure: float = 0.05,
) -> None:
    """Contact each address one to three times at random times within `span_ms`."""
    rng = recorder.rng
    for ip in ips:
        ms = start_ms + rng.randrange(max(span_ms, 1))
        command = process.command_line.format(ip=ip) if process.command_line else None
        step = _Process(process.name, process.path, command, process.causality_name, process.causality_path)
        for _ in range(rng.randint(1, 3)):
            outcome = "failure" if rng.random() < failure else "success"
            recorder.smb(ms, ip, step, user, outcome=outcome)
            ms += rng.randrange(SECOND_MS, 30 * SECOND_MS)


def plan_scenarios(fleet: _Fleet, rng: random.Random, names: tuple[str, ...], repeats: int) -> list[_Planned]:
    """Choose hosts and times for `repeats` instances of each named class.

    Attacks start in the last third of the period and use workstations with
    full history that no other scenario uses. Host changes (new addresses)
    are applied to the fleet here, before any traffic is generated.
    """
    timeline = fleet.timeline
    span = timeline.end_ms - timeline.start_ms
    late = timeline.start_ms + 2 * span // 3
    addresses = _Addresses(fleet)
    free = [h for h in fleet.workstations if h.first_day == 0 and not h.extra and h.ip_change_ms is None]
    attackers = {a.host.host_id for a in fleet.attacks}
    free = [h for h in free if h.host_id not in attackers]
    rng.shuffle(free)
    servers = [h for h in fleet.file_servers if not h.extra]
    # Logon scripts map the first three file servers. Each other server runs at most one scenario.
    shares, servers = servers[:3], servers[3:]
    rng.shuffle(servers)
    planned: list[_Planned] = []

    def pick_time(earliest: int, hour: int) -> int:
        """Return a random time in `hour` of a day from `earliest` to the day before the last."""
        days = timeline.day_of(timeline.end_ms - DAY_MS) - timeline.day_of(earliest)
        day = timeline.day_of(earliest) + rng.randrange(max(days, 1))
        return timeline.day_ms(day) + hour * HOUR_MS + rng.randrange(HOUR_MS)

    for name in names:
        cls = CLASSES[name]
        for number in range(1, repeats + 1):
            scenario_id = f"{name}-{number:02d}"
            item = _plan_one(cls, scenario_id, fleet, rng, free, servers, shares, addresses, pick_time, late)
            if item is not None:
                planned.append(item)
    return planned


def _take(free: list[_Host], count: int, scenario_id: str, kind: str = "workstations with full history") -> list[_Host]:
    if len(free) < count:
        field_name = kind.split(maxsplit=1)[0]
        raise ValueError(
            f"too few {kind} for scenario {scenario_id}: raise FleetSpec.{field_name} or lower scenario_repeats"
        )
    taken = free[:count]
    del free[:count]
    return taken


def _targets(fleet: _Fleet, rng: random.Random, low: int, high: int, exclude: _Host) -> list[_Host]:
    pool = [h for h in fleet.workstations if h is not exclude and h.first_day == 0]
    return rng.sample(pool, min(rng.randint(low, high), len(pool)))


def _plan_one(
    cls: ScenarioClass,
    scenario_id: str,
    fleet: _Fleet,
    rng: random.Random,
    free: list[_Host],
    servers: list[_Host],
    shares: list[_Host],
    addresses: _Addresses,
    pick_time: Callable[[int, int], int],
    late: int,
) -> _Planned | None:
    name = cls.name
    if name in {"fast_fanout", "slow_spread", "failed_scan", "user_mode_tool"}:
        (source,) = _take(free, 1, scenario_id)
        start = pick_time(late, rng.randrange(8, 14))
        if name == "failed_scan":
            count = rng.randint(30, 60)
            ips = [t.ips[0] for t in _targets(fleet, rng, count // 2, count // 2, source)] + addresses.take(count // 2)
            span, process, failure = 30 * MINUTE_MS, NET_USE, 0.85
        else:
            low, high, span, process = {
                "fast_fanout": (8, 25, HOUR_MS, PSEXEC),
                "slow_spread": (8, 12, 9 * HOUR_MS, PSEXEC),
                "user_mode_tool": (6, 12, 2 * HOUR_MS, SHARP_TOOL),
            }[name]
            ips = [t.ip_at(start) for t in _targets(fleet, rng, low, high, source)]
            failure = 0.1
        source.never_contact.update(fleet.agent_by_ip[ip].host_id for ip in ips if ip in fleet.agent_by_ip)
        source.quiet_days.update(range(fleet.timeline.day_of(start), fleet.timeline.day_of(start + span) + 1))

        def attack(f: _Fleet, r: random.Random) -> list[_Event]:
            recorder = _Recorder(f, source, r)
            _burst(recorder, start, span, ips, process, source.user, failure)
            return recorder.events

        return _Planned(scenario_id, cls, [source], start, attack, ips, start + span)
    if name == "share_sweep":
        (source,) = _take(servers, 1, scenario_id, "file servers")
        start = pick_time(late, rng.choice((1, 2, 3, 22)))
        ips = [t.ip_at(start) for t in _targets(fleet, rng, 20, 40, source)]

        def sweep(f: _Fleet, r: random.Random) -> list[_Event]:
            recorder = _Recorder(f, source, r)
            _burst(recorder, start, HOUR_MS, ips, RANSOM_SWEEP, SYSTEM_USER, 0.05)
            return recorder.events

        return _Planned(scenario_id, cls, [source], start, sweep, ips, start + HOUR_MS)
    return _plan_benign(cls, scenario_id, fleet, rng, free, servers, shares, addresses, pick_time, late)


def _plan_benign(
    cls: ScenarioClass,
    scenario_id: str,
    fleet: _Fleet,
    rng: random.Random,
    free: list[_Host],
    servers: list[_Host],
    shares: list[_Host],
    addresses: _Addresses,
    pick_time: Callable[[int, int], int],
    late: int,
) -> _Planned | None:
    name = cls.name
    if name in {"new_file_server", "os_update_fleet_change", "logon_script"}:
        return _plan_shared_destinations(cls, scenario_id, fleet, rng, shares, addresses, pick_time(late, 7))
    if name in {"software_distribution", "vulnerability_scanner", "backup_new_vms"}:
        return _plan_server_job(cls, scenario_id, fleet, rng, servers, addresses, pick_time(late, 1))
    if name in {"dhcp_churn", "roaming_vpn", "renamed_host"}:
        return _plan_host_changes(cls, scenario_id, fleet, rng, free, addresses)
    if name == "domain_controller":
        if not scenario_id.endswith("-01"):
            return None
        dcs = [h for h in fleet.hosts if h.role == "domain_controller"]
        return _Planned(scenario_id, cls, dcs, fleet.timeline.start_ms, lambda f, r: [], [], fleet.timeline.end_ms)
    return None


def _plan_shared_destinations(
    cls: ScenarioClass,
    scenario_id: str,
    fleet: _Fleet,
    rng: random.Random,
    servers: list[_Host],
    addresses: _Addresses,
    start: int,
) -> _Planned:
    """Plan many workstations reaching the same destinations: a new server, an update, a logon script."""
    name = cls.name
    settled = [h for h in fleet.workstations if h.first_day == 0]
    if name == "new_file_server":
        clients = rng.sample(settled, max(1, 2 * len(settled) // 5))
        targets, span, process = addresses.take(1), 3 * HOUR_MS, SMB_FROM_EXPLORER
    elif name == "os_update_fleet_change":
        clients = list(settled)
        targets, span, process = addresses.take(5), 40 * MINUTE_MS, SMB_FROM_SVCHOST
    else:
        clients = rng.sample(settled, max(1, 3 * len(settled) // 10))
        targets = [s.ips[0] for s in servers]
        span, process = 2 * HOUR_MS, SMB_FROM_EXPLORER
    # The update happens once; the new server and the logon script are used every day after.
    days = 1 if name == "os_update_fleet_change" else (fleet.timeline.end_ms - start) // DAY_MS + 1

    def mapping(f: _Fleet, r: random.Random) -> list[_Event]:
        events: list[_Event] = []
        for client in clients:
            recorder = _Recorder(f, client, r)
            for day in range(days):
                _burst(recorder, start + day * DAY_MS, span, targets, process, client.user, 0.0)
            events.extend(recorder.events)
        return events

    return _Planned(scenario_id, cls, clients, start, mapping, targets, start + span)


def _plan_server_job(
    cls: ScenarioClass,
    scenario_id: str,
    fleet: _Fleet,
    rng: random.Random,
    servers: list[_Host],
    addresses: _Addresses,
    change: int,
) -> _Planned:
    """Plan a server's nightly job over the whole period, which adds hosts at `change` for some classes."""
    name = cls.name
    timeline = fleet.timeline
    settled = [h for h in fleet.workstations if h.first_day == 0]
    (source,) = _take(servers, 1, scenario_id, "file servers")
    first_night = timeline.start_ms + 2 * HOUR_MS
    if name == "vulnerability_scanner":
        nightly: list[str] = []
        added: list[str] = []
        process = SCANNER
    elif name == "software_distribution":
        nightly = [h.ips[0] for h in rng.sample(settled, min(len(settled), 30))]
        added, process = addresses.take(rng.randint(15, 25)), DEPLOYMENT
    else:
        nightly = addresses.take(10)
        added, process = addresses.take(6), BACKUP
    nights = (timeline.end_ms - first_night) // DAY_MS + 1

    def nightly_job(f: _Fleet, r: random.Random) -> list[_Event]:
        recorder = _Recorder(f, source, r)
        for night in range(nights):
            ms = first_night + night * DAY_MS
            if name == "vulnerability_scanner":
                # A workstation joins the scan the night after its first logon.
                targets = [h.ip_at(ms) for h in f.workstations if h.has_agent and h.join_ms <= ms]
            else:
                targets = list(nightly)
            if ms >= change - 2 * HOUR_MS:
                targets += added
            failure = 0.2 if name == "vulnerability_scanner" else 0.0
            _burst(recorder, ms, HOUR_MS, targets, process, SYSTEM_USER, failure)
        return recorder.events

    if not added:
        return _Planned(scenario_id, cls, [source], first_night, nightly_job, [], timeline.end_ms)
    return _Planned(scenario_id, cls, [source], change, nightly_job, added, change + HOUR_MS)


def _plan_host_changes(
    cls: ScenarioClass,
    scenario_id: str,
    fleet: _Fleet,
    rng: random.Random,
    free: list[_Host],
    addresses: _Addresses,
) -> _Planned:
    """Change workstations in the middle third: rename them, or give 5 % a new address from DHCP or the VPN pool."""
    if cls.name == "renamed_host":
        return _plan_renames(cls, scenario_id, fleet, rng, free)
    timeline = fleet.timeline
    settled = [h for h in fleet.workstations if h.first_day == 0]
    hosts = _take(free, max(1, len(settled) // 20), scenario_id)
    span = timeline.end_ms - timeline.start_ms
    for host in hosts:
        host.ip_change_ms = timeline.start_ms + rng.randrange(span // 3, 2 * span // 3)
        host.ips.append(addresses.take_vpn() if cls.name == "roaming_vpn" else addresses.take(1)[0])
    fleet.agent_by_ip.update({host.ips[-1]: host for host in hosts})
    start = min(h.ip_change_ms or 0 for h in hosts)
    return _Planned(scenario_id, cls, hosts, start, lambda f, r: [], [], timeline.end_ms)


def _plan_renames(
    cls: ScenarioClass, scenario_id: str, fleet: _Fleet, rng: random.Random, free: list[_Host]
) -> _Planned:
    """Rename 2 % of the workstations in the middle third; the agent keeps its host id."""
    timeline = fleet.timeline
    settled = [h for h in fleet.workstations if h.first_day == 0]
    hosts = _take(free, max(1, len(settled) // 50), scenario_id)
    span = timeline.end_ms - timeline.start_ms
    for host in hosts:
        host.rename(timeline.start_ms + rng.randrange(span // 3, 2 * span // 3), "LT-" + host.host_name.split("-")[-1])
    start = min(h.renamed_ms or 0 for h in hosts)
    return _Planned(scenario_id, cls, hosts, start, lambda f, r: [], [], timeline.end_ms)


def scenario_events(fleet: _Fleet, planned: list[_Planned]) -> tuple[dict[int, list[_Event]], list[dict[str, Any]]]:
    """Build the events of every planned scenario, grouped by day index, and their labels."""
    by_day: dict[int, list[_Event]] = {}
    labels = []
    for item in planned:
        rng = random.Random(f"{fleet.spec.seed}/{item.scenario_id}")
        for event in item.build(fleet, rng):
            by_day.setdefault(fleet.timeline.day_of(event.ms), []).append(event)
        labels.append(
            {
                "scenario_id": item.scenario_id,
                "scenario": item.cls.name,
                "kind": item.cls.kind,
                "expected": item.cls.expected,
                "description": item.cls.description,
                "host_ids": [h.host_id for h in item.hosts],
                "host_names": [h.host_name for h in item.hosts],
                "start": _format_time(item.start_ms),
                "end": _format_time(item.end_ms or item.start_ms),
                "destination_ips": item.destinations,
                "technique": TECHNIQUE if item.cls.kind == ATTACK else None,
            }
        )
    return by_day, labels
