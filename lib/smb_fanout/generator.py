"""Deterministic generator of a labelled fleet of endpoint network events.

`generate_fleet` writes canonical JSON Lines (one connection or attempt per line),
`hosts.json` with the identity of every host and `labels.json` with the injected
SMB fan-out attacks (ATT&CK T1021.002). The same spec always produces byte-identical
files, because every random choice comes from a `random.Random` seeded with
`FleetSpec.seed` and the wall clock is never read.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

TECHNIQUE = "T1021.002"
ROLES = ("workstation", "file_server", "domain_controller", "printer")
SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
LATE_JOIN_DAYS = 5
# A host contacts at most this many SMB destinations for the first time per day.
# That is one below the detector's default `min_new_destinations` of 5, so the start
# of the history and a late joiner's first day do not look like a fan-out.
MAX_NEW_PER_DAY = 4
WEEKEND_ACTIVE = 0.12
ALWAYS_ON = 0.3
ORDINARY_FAILURE = 0.02
ATTACK_FAILURE = 0.3
INBOUND_LOGGED = 0.4
PRINTER_PER_DAY = 0.25
CHURN_PER_DAY = 0.04
GPO_REFRESH_MS = 90 * MINUTE_MS
DOMAIN = "CORP"
SYSTEM_USER = "NT AUTHORITY\\SYSTEM"
NETWORK_SERVICE = "NT AUTHORITY\\NETWORK SERVICE"
# RFC 5737 documentation ranges stand in for internet servers, so the data never
# names a real service and every address is outside the internal CIDRs.
PUBLIC_IPS = tuple(
    f"{prefix}.{last}" for prefix in ("192.0.2", "198.51.100", "203.0.113") for last in (14, 37, 80, 121, 200)
)
FIRST_NAMES = ("anna", "ben", "chloe", "david", "emma", "farid", "grace", "hugo", "ines", "jonas")
LAST_NAMES = ("meyer", "novak", "okafor", "petit", "quinn", "rossi", "silva", "tanaka", "weber")
_HOST_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "generator.smb-fanout")
_EPOCH = date(1970, 1, 1)
_ENCODER = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True)
class ExtraHost:
    """A host that must exist with a fixed identity, such as the source of a replayed trace."""

    host_id: str
    host_name: str
    ip: str
    role: str  # one of ROLES
    # IPs this host contacts over SMB in its ordinary history. When empty, the generator picks them by role.
    usual_smb_destinations: tuple[str, ...] = ()


@dataclass(frozen=True)
class FleetSpec:
    """Size, time range and attacks of a generated fleet."""

    workstations: int = 120
    file_servers: int = 4
    domain_controllers: int = 2
    printers: int = 3
    days: int = 35
    end: datetime = datetime(2026, 11, 30, tzinfo=UTC)  # exclusive end, timezone-aware
    seed: int = 7
    attacks: int = 3
    attack_days: int = 3
    attack_min_destinations: int = 8
    attack_max_destinations: int = 25
    late_joiners: int = 4
    subnet: str = "10.20.0.0/16"
    extra_hosts: tuple[ExtraHost, ...] = ()
    dhcp_changes: int = 3  # workstations whose IP changes once during the period
    window_hours: int = 5  # detector window; attacks start at least this long before `end`
    days_per_file: int = 7


@dataclass(frozen=True)
class GeneratedFleet:
    """Paths and counts of one generated fleet."""

    events_dir: Path
    labels_path: Path
    hosts_path: Path
    event_count: int
    attack_count: int


@dataclass(frozen=True)
class _Process:
    name: str
    path: str | None
    command_line: str | None
    causality_name: str
    causality_path: str | None


SVCHOST = r"C:\Windows\System32\svchost.exe"
LSASS = r"C:\Windows\System32\lsass.exe"
EDGE = r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"
POWERSHELL = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
# Windows attributes SMB client and server traffic to the kernel's System process (PID 4).
SMB_FROM_EXPLORER = _Process("System", None, None, "explorer.exe", r"C:\Windows\explorer.exe")
SMB_FROM_SVCHOST = _Process("System", None, None, "svchost.exe", SVCHOST)
SMB_FROM_SPOOLER = _Process("System", None, None, "spoolsv.exe", r"C:\Windows\System32\spoolsv.exe")
SMB_INBOUND = _Process("System", None, None, "System", None)
DNS_CLIENT = _Process("svchost.exe", SVCHOST, f"{SVCHOST} -k NetworkService -p -s Dnscache", "svchost.exe", SVCHOST)
WINDOWS_UPDATE = _Process("svchost.exe", SVCHOST, f"{SVCHOST} -k netsvcs -p -s wuauserv", "svchost.exe", SVCHOST)
LSASS_CLIENT = _Process("lsass.exe", LSASS, LSASS, "lsass.exe", LSASS)
BROWSER = _Process(
    "msedge.exe",
    EDGE,
    f'"{EDGE}" --type=utility --utility-sub-type=network.mojom.NetworkService',
    "msedge.exe",
    EDGE,
)
# Remote execution tools: (causality name, causality path, command line with {ip}).
ATTACK_TOOLS = (
    (
        "PsExec64.exe",
        r"C:\ProgramData\PsExec64.exe",
        r'PsExec64.exe \\{ip} -accepteula -s -d cmd.exe /c "ipconfig /all > C:\Windows\Temp\i.txt"',
    ),
    (
        "powershell.exe",
        POWERSHELL,
        "powershell.exe -NoProfile -NonInteractive -Command "
        r'"Copy-Item C:\ProgramData\upd.exe \\{ip}\ADMIN$\upd.exe"',
    ),
    ("cmd.exe", r"C:\Windows\System32\cmd.exe", r"cmd.exe /c net use \\{ip}\C$ /persistent:no"),
)


@dataclass(eq=False)
class _Host:
    host_id: str
    host_name: str
    role: str
    ips: list[str]
    user: str = SYSTEM_USER
    has_agent: bool = True
    extra: bool = False
    first_day: int = 0
    join_ms: int = 0
    ip_change_ms: int | None = None
    dns_server: str | None = None
    link_local: str | None = None
    usual_destinations: tuple[str, ...] = ()  # ordinary SMB destinations, MAX_NEW_PER_DAY introduced a day
    printer: str | None = None
    may_churn: bool = False  # may touch a new share or a colleague's workstation now and then
    always_on: bool = False
    never_contact: set[str] = field(default_factory=set)  # host ids kept out of ordinary traffic
    quiet_days: set[int] = field(default_factory=set)  # days without printer or churn contacts
    identity_json: str = field(init=False, default="")  # "host_id":…,"host_name":… members

    def __post_init__(self) -> None:
        identity = {"host_id": self.host_id, "host_name": self.host_name}
        self.identity_json = _ENCODER.encode(identity)[1:-1]

    def ip_at(self, ms: int) -> str:
        if self.ip_change_ms is not None and ms >= self.ip_change_ms:
            return self.ips[-1]
        return self.ips[0]

    def usual_destinations_on(self, day: int) -> tuple[str, ...]:
        return self.usual_destinations[: MAX_NEW_PER_DAY * (day - self.first_day + 1)]

    @property
    def settled_day(self) -> int:
        """First day after every usual destination has been introduced; churn starts here."""
        return self.first_day + max(1, math.ceil(len(self.usual_destinations) / MAX_NEW_PER_DAY))


@dataclass(frozen=True)
class _Timeline:
    """Generated period [start_ms, end_ms) in epoch milliseconds, cut into UTC calendar days."""

    start_ms: int
    end_ms: int

    @property
    def origin_ms(self) -> int:
        """Midnight UTC of the first day, which is at or before start_ms."""
        return self.start_ms - self.start_ms % DAY_MS

    @property
    def day_count(self) -> int:
        return -(-(self.end_ms - self.origin_ms) // DAY_MS)

    def day_ms(self, day: int) -> int:
        return self.origin_ms + day * DAY_MS

    def day_of(self, ms: int) -> int:
        return (ms - self.origin_ms) // DAY_MS

    def is_weekday(self, day: int) -> bool:
        return (_EPOCH + timedelta(milliseconds=self.day_ms(day))).weekday() < 5


@dataclass
class _Attack:
    attack_id: str
    host: _Host
    start_ms: int
    duration_ms: int
    targets: list[_Host]
    tool: tuple[str, str, str]
    user: str


@dataclass
class _Fleet:
    spec: FleetSpec
    timeline: _Timeline
    hosts: list[_Host]
    attacks: list[_Attack] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.agent_by_ip = {ip: h for h in self.hosts if h.has_agent for ip in h.ips}
        self.workstations = [h for h in self.hosts if h.role == "workstation"]
        self.file_servers = [h for h in self.hosts if h.role == "file_server"]
        self.role_by_ip = {ip: h.role for h in self.hosts for ip in h.ips}


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

    events_dir = out_dir / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    for old in events_dir.glob("events-*.jsonl"):
        old.unlink()
    attack_events, labels = _attack_events_by_day(fleet)
    event_count, first_seen = _write_events(fleet, attack_events, events_dir)

    hosts_path = out_dir / "hosts.json"
    labels_path = out_dir / "labels.json"
    _write_json(hosts_path, [_host_entry(host, first_seen) for host in fleet.hosts])
    _write_json(labels_path, labels)
    return GeneratedFleet(events_dir, labels_path, hosts_path, event_count, len(labels))


def _validate_spec(spec: FleetSpec) -> None:
    counts = ("workstations", "file_servers", "domain_controllers", "printers", "attacks")
    for name in (*counts, "late_joiners", "dhcp_changes"):
        if getattr(spec, name) < 0:
            raise ValueError(f"invalid FleetSpec.{name}={getattr(spec, name)}: must be >= 0")
    for name in ("days", "attack_days", "window_hours", "days_per_file"):
        if getattr(spec, name) < 1:
            raise ValueError(f"invalid FleetSpec.{name}={getattr(spec, name)}: must be >= 1")
    if spec.end.utcoffset() is None:
        raise ValueError(f"invalid FleetSpec.end={spec.end!r}: use a timezone-aware datetime")
    if spec.attack_days > spec.days or spec.window_hours >= spec.attack_days * 24:
        raise ValueError(
            f"invalid FleetSpec.attack_days={spec.attack_days}: must be <= days ({spec.days}) "
            f"and longer than window_hours ({spec.window_hours})"
        )
    if not 1 <= spec.attack_min_destinations <= spec.attack_max_destinations:
        raise ValueError(
            "invalid attack destination range "
            f"[{spec.attack_min_destinations}, {spec.attack_max_destinations}]: "
            "need 1 <= attack_min_destinations <= attack_max_destinations"
        )
    if spec.late_joiners > spec.workstations:
        raise ValueError(
            f"invalid FleetSpec.late_joiners={spec.late_joiners}: must be <= workstations ({spec.workstations})"
        )
    if spec.late_joiners and spec.days <= LATE_JOIN_DAYS:
        raise ValueError(f"invalid FleetSpec.days={spec.days}: must be > {LATE_JOIN_DAYS} when late_joiners > 0")
    _validate_extra_hosts(spec.extra_hosts)


def _validate_extra_hosts(extra_hosts: tuple[ExtraHost, ...]) -> None:
    for attribute in ("host_id", "host_name", "ip"):
        values = [getattr(extra, attribute) for extra in extra_hosts]
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate ExtraHost.{attribute} in {values}: give each extra host its own")
    for extra in extra_hosts:
        if extra.role not in ROLES:
            raise ValueError(f"invalid role {extra.role!r} of {extra.host_name}: use one of {ROLES}")
        for ip in (extra.ip, *extra.usual_smb_destinations):
            try:
                address = ipaddress.ip_address(ip)
            except ValueError as err:
                raise ValueError(f"invalid IP {ip!r} of extra host {extra.host_name}") from err
            if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
                raise ValueError(f"invalid IP {ip!r} of extra host {extra.host_name}: remove the scope ID")


def _plan_hosts(spec: FleetSpec, rng: random.Random, timeline: _Timeline) -> list[_Host]:
    try:
        network = ipaddress.ip_network(spec.subnet)
    except ValueError as err:
        raise ValueError(f"invalid FleetSpec.subnet={spec.subnet!r}: {err}") from err
    reserved = {extra.ip for extra in spec.extra_hosts}
    servers, first_free = _server_hosts(spec, network, reserved)
    workstation_ips = _workstation_ips(spec, network, first_free, reserved, rng)
    workstations = [
        _new_host(spec, f"WS-{number:04d}", "workstation", workstation_ips[number - 1])
        for number in range(1, spec.workstations + 1)
    ]
    hosts = servers + workstations + [_extra_host(extra) for extra in spec.extra_hosts]
    names = [host.host_name for host in hosts]
    if len(set(names)) != len(names):
        raise ValueError("an ExtraHost.host_name repeats a generated name: rename the extra host")
    _assign_destinations(hosts, rng)
    _schedule_joins(spec, workstations, workstation_ips[spec.workstations :], rng, timeline)
    return hosts


def _server_hosts(
    spec: FleetSpec, network: ipaddress.IPv4Network | ipaddress.IPv6Network, reserved: set[str]
) -> tuple[list[_Host], int]:
    """Place DCs, file servers and printers at consecutive addresses from offset 10.

    Returns the servers and the next free offset.
    """
    offset = 10
    servers: list[_Host] = []
    for role, prefix, count in (
        ("domain_controller", "DC", spec.domain_controllers),
        ("file_server", "FS", spec.file_servers),
        ("printer", "PRN", spec.printers),
    ):
        for number in range(1, count + 1):
            while offset < network.num_addresses - 1 and str(network[offset]) in reserved:
                offset += 1
            if offset >= network.num_addresses - 1:
                raise ValueError(f"subnet {spec.subnet} is too small for the servers: use a larger FleetSpec.subnet")
            servers.append(_new_host(spec, f"{prefix}-{number:02d}", role, str(network[offset])))
            offset += 1
    return servers, offset


def _workstation_ips(
    spec: FleetSpec,
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
    first_free: int,
    reserved: set[str],
    rng: random.Random,
) -> list[str]:
    # Workstations start at offset 256 (10.20.1.0 in the default subnet) when the subnet has room.
    needed = spec.workstations + spec.dhcp_changes
    start = max(first_free, 256) if network.num_addresses > 256 + needed + len(reserved) else first_free
    last = network.num_addresses - 2
    if last - start + 1 < needed + len(reserved):
        raise ValueError(
            f"subnet {spec.subnet} is too small for {needed} workstation addresses: use a larger FleetSpec.subnet"
        )
    picked = rng.sample(range(start, last + 1), needed + len(reserved))
    return [ip for ip in (str(network[o]) for o in picked) if ip not in reserved][:needed]


def _new_host(spec: FleetSpec, name: str, role: str, ip: str) -> _Host:
    host_id = str(uuid.uuid5(_HOST_ID_NAMESPACE, f"{spec.seed}/{name}"))
    # Printers run no endpoint agent, so they log no events and appear only as destinations.
    return _Host(host_id, name, role, [ip], has_agent=role != "printer")


def _extra_host(extra: ExtraHost) -> _Host:
    host = _Host(extra.host_id, extra.host_name, extra.role, [extra.ip], extra=True)
    host.has_agent = extra.role != "printer"
    host.usual_destinations = extra.usual_smb_destinations
    return host


def _assign_destinations(hosts: list[_Host], rng: random.Random) -> None:
    dcs = [h.ips[0] for h in hosts if h.role == "domain_controller"]
    shares = [h.ips[0] for h in hosts if h.role == "file_server"]
    printers = [h.ips[0] for h in hosts if h.role == "printer"]
    for host in hosts:
        home_dcs = rng.sample(dcs, min(2, len(dcs)))
        if host.role == "domain_controller":
            words = [rng.getrandbits(16) for _ in range(4)]
            host.link_local = "fe80::" + ":".join(f"{word:x}" for word in words)
        else:
            host.dns_server = home_dcs[0] if home_dcs else None
        if host.role == "workstation":
            host.user = f"{DOMAIN}\\{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}"
            host.always_on = rng.random() < ALWAYS_ON
        if host.usual_destinations or host.role == "domain_controller":
            continue
        if host.role != "workstation":
            host.usual_destinations = tuple(home_dcs)
            continue
        # Group Policy refreshes go to usual_destinations[0], so the DCs come first.
        home_shares = rng.sample(shares, min(rng.choice((1, 1, 2)), len(shares)))
        host.usual_destinations = (*home_dcs, *home_shares)
        host.printer = rng.choice(printers) if printers and rng.random() < 0.5 else None
        host.may_churn = not host.extra


def _schedule_joins(
    spec: FleetSpec,
    workstations: list[_Host],
    spare_ips: list[str],
    rng: random.Random,
    timeline: _Timeline,
) -> None:
    """Pick the late joiners, who log on first at 07-10 UTC of one of the last 5 days, and the DHCP changes."""
    late_start_ms = timeline.end_ms - LATE_JOIN_DAYS * DAY_MS
    join_days = [
        day
        for day in range(timeline.day_count)
        if late_start_ms <= timeline.day_ms(day) + 7 * HOUR_MS
        and timeline.day_ms(day) + 10 * HOUR_MS <= timeline.end_ms
    ]
    for host in rng.sample(workstations, spec.late_joiners):
        host.first_day = rng.choice(join_days)
        host.join_ms = timeline.day_ms(host.first_day) + rng.randrange(7 * HOUR_MS, 10 * HOUR_MS)
    settled = [host for host in workstations if host.first_day == 0]
    if spec.dhcp_changes > len(settled):
        raise ValueError(
            f"invalid FleetSpec.dhcp_changes={spec.dhcp_changes}: must be <= {len(settled)}, "
            "the number of workstations with full history"
        )
    span = timeline.end_ms - timeline.start_ms
    for host, new_ip in zip(rng.sample(settled, spec.dhcp_changes), spare_ips, strict=True):
        host.ip_change_ms = timeline.start_ms + rng.randrange(span // 4, 3 * span // 4)
        host.ips.append(new_ip)


def _plan_attacks(fleet: _Fleet, rng: random.Random) -> list[_Attack]:
    spec = fleet.spec
    candidates = [h for h in fleet.workstations if h.first_day == 0 and not h.extra]
    if spec.attacks > len(candidates):
        raise ValueError(
            f"invalid FleetSpec.attacks={spec.attacks}: only {len(candidates)} workstations "
            "with full history can attack (extra hosts never do)"
        )
    timeline = fleet.timeline
    earliest = timeline.end_ms - spec.attack_days * DAY_MS
    latest = timeline.end_ms - spec.window_hours * HOUR_MS
    attacks = []
    for number, attacker in enumerate(rng.sample(candidates, spec.attacks), start=1):
        start = rng.randrange(earliest, latest)
        duration = rng.randrange(HOUR_MS, 3 * HOUR_MS)
        targets = [h for h in fleet.workstations if h is not attacker and h.join_ms <= start]
        if len(targets) < spec.attack_min_destinations:
            raise ValueError(
                f"invalid FleetSpec.attack_min_destinations={spec.attack_min_destinations}: only "
                f"{len(targets)} workstations can be attack targets, so lower it or add workstations"
            )
        count = rng.randint(spec.attack_min_destinations, min(spec.attack_max_destinations, len(targets)))
        chosen = rng.sample(targets, count)
        attacker.never_contact.update(target.host_id for target in chosen)
        attacker.quiet_days.update(range(timeline.day_of(start), timeline.day_of(start + duration) + 1))
        user = rng.choice((attacker.user, f"{DOMAIN}\\adm.{rng.choice(LAST_NAMES)}"))
        tool = rng.choice(ATTACK_TOOLS)
        attacks.append(_Attack(f"attack-{number:03d}", attacker, start, duration, chosen, tool, user))
    return attacks


class _Event(NamedTuple):
    ms: int
    host: _Host
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    direction: str
    protocol: str
    outcome: str
    actor: str  # JSON members actor_process_name ... user_name, see _actor_json


class _Recorder:
    """Collects the events one host logs, plus the matching inbound events of its SMB peers."""

    def __init__(self, fleet: _Fleet, host: _Host, rng: random.Random) -> None:
        self.fleet = fleet
        self.host = host
        self.rng = rng
        self.events: list[_Event] = []
        self._pids: dict[str, int] = {}

    def connect(
        self,
        ms: int,
        remote_ip: str,
        remote_port: int,
        process: _Process,
        user: str,
        *,
        protocol: str = "tcp",
        outcome: str = "success",
        local_ip: str | None = None,
    ) -> int:
        """Record one outbound connection and return its ephemeral local port."""
        local_port = 49152 + self.rng.getrandbits(14)  # IANA dynamic ports 49152-65535
        local_ip = local_ip or self.host.ip_at(ms)
        actor = _actor_json(process, self._pid(process), user)
        self.events.append(
            _Event(ms, self.host, local_ip, local_port, remote_ip, remote_port, "outbound", protocol, outcome, actor)
        )
        return local_port

    def _pid(self, process: _Process) -> int:
        """Return PID 4 for System, else one multiple-of-4 PID per process name and day."""
        if process.name == "System":
            return 4
        return self._pids.setdefault(process.name, self.rng.randrange(600, 20000, 4))

    def smb(
        self,
        ms: int,
        remote_ip: str,
        process: _Process,
        user: str,
        *,
        port: int = 445,
        outcome: str = "success",
    ) -> None:
        """Record an SMB session and, for some successful ones, the peer agent's inbound event."""
        local_port = self.connect(ms, remote_ip, port, process, user, outcome=outcome)
        peer = self.fleet.agent_by_ip.get(remote_ip)
        if peer is None or outcome != "success" or self.rng.random() >= INBOUND_LOGGED:
            return
        client_ip = self.host.ip_at(ms)
        actor = _actor_json(SMB_INBOUND, 4, SYSTEM_USER)
        inbound_ms = ms + self.rng.randint(1, 40)
        self.events.append(
            _Event(inbound_ms, peer, remote_ip, port, client_ip, local_port, "inbound", "tcp", "success", actor)
        )


@functools.lru_cache(maxsize=4096)
def _actor_json(process: _Process, pid: int, user: str) -> str:
    """Encode the process and user fields as JSON members, once per combination."""
    fields = {
        "actor_process_name": process.name,
        "actor_process_path": process.path,
        "actor_process_pid": pid,
        "actor_process_command_line": process.command_line,
        "actor_process_sha256": None,
        "causality_process_name": process.causality_name,
        "causality_process_path": process.causality_path,
        "user_name": user,
    }
    return _ENCODER.encode(fields)[1:-1]


def _event_line(event_id: str, event: _Event) -> str:
    """Format one canonical JSON line.

    Only the host identity and the process fields can contain characters that JSON
    escapes, and they arrive encoded. IPs are validated without scope IDs.
    """
    return (
        f'{{"event_id":"{event_id}","event_time":"{_format_time(event.ms)}",'
        f"{event.host.identity_json},"
        f'"local_ip":"{event.local_ip}","local_port":{event.local_port},'
        f'"remote_ip":"{event.remote_ip}","remote_port":{event.remote_port},'
        f'"direction":"{event.direction}","protocol":"{event.protocol}",'
        f'"outcome":"{event.outcome}",{event.actor}}}\n'
    )


def _host_day(fleet: _Fleet, host: _Host, day: int) -> list[_Event]:
    if not host.has_agent or day < host.first_day:
        return []
    rng = random.Random(f"{fleet.spec.seed}/{host.host_id}/{day}")
    recorder = _Recorder(fleet, host, rng)
    if host.role == "workstation":
        _workstation_day(recorder, day)
    else:
        _server_day(recorder, day)
    return recorder.events


def _workstation_day(recorder: _Recorder, day: int) -> None:
    fleet, host, rng = recorder.fleet, recorder.host, recorder.rng
    day_ms = fleet.timeline.day_ms(day)
    weekday = fleet.timeline.is_weekday(day)
    # Workstations are active on every weekday, so each usual destination is contacted at
    # least every 3 days and does not become new again within a 30-day lookback.
    active = weekday or day < host.settled_day or rng.random() < WEEKEND_ACTIVE
    begin = day_ms + rng.randrange(7 * HOUR_MS, 9 * HOUR_MS + 30 * MINUTE_MS)
    if day == host.first_day and host.join_ms > day_ms:
        begin = host.join_ms
    finish = day_ms + rng.randrange(16 * HOUR_MS + 30 * MINUTE_MS, 19 * HOUR_MS)
    usual = host.usual_destinations_on(day)
    if active:
        for ip in usual:
            _ordinary_smb(recorder, begin + rng.randrange(MINUTE_MS), ip)
        weights = [3 if fleet.role_by_ip.get(ip) == "file_server" else 1 for ip in usual]
        for hour_ms in range(begin, finish, HOUR_MS):
            count = rng.randint(1, 4) if weekday else rng.randint(1, 2)
            for ip in rng.choices(usual, weights, k=count) if usual else ():
                _ordinary_smb(recorder, hour_ms + rng.randrange(HOUR_MS), ip)
            _client_noise(recorder, hour_ms)
        if day >= host.settled_day and day not in host.quiet_days:
            _occasional_smb(recorder, begin, finish)
    if host.always_on and usual:
        skip = (begin - HOUR_MS, finish + HOUR_MS) if active else (0, 0)
        first = max(day_ms, host.join_ms)
        for ms in _refresh_times(rng, first, day_ms + DAY_MS):
            if not skip[0] <= ms < skip[1]:
                _ordinary_smb(recorder, ms, usual[0])


def _ordinary_smb(recorder: _Recorder, ms: int, ip: str) -> None:
    """Record an ordinary SMB session: Group Policy to a DC, mapped drives elsewhere."""
    outcome = "failure" if recorder.rng.random() < ORDINARY_FAILURE else "success"
    if recorder.fleet.role_by_ip.get(ip) == "domain_controller":
        recorder.smb(ms, ip, SMB_FROM_SVCHOST, SYSTEM_USER, outcome=outcome)
    else:
        recorder.smb(ms, ip, SMB_FROM_EXPLORER, recorder.host.user, outcome=outcome)


def _refresh_times(rng: random.Random, first_ms: int, stop_ms: int) -> list[int]:
    """Return Group Policy refresh times: every 90 minutes, with up to 30 minutes of jitter."""
    times = []
    ms = first_ms + rng.randrange(GPO_REFRESH_MS)
    while ms < stop_ms - MINUTE_MS:
        times.append(ms)
        ms += GPO_REFRESH_MS + rng.randrange(-30 * MINUTE_MS, 30 * MINUTE_MS)
    return times


def _client_noise(recorder: _Recorder, hour_ms: int) -> None:
    """Record one busy hour of DNS, Kerberos, LDAP and HTTPS traffic."""
    rng, host = recorder.rng, recorder.host
    for _ in range(rng.randint(1, 2)):
        ms = hour_ms + rng.randrange(HOUR_MS - MINUTE_MS)
        if host.dns_server:
            recorder.connect(ms, host.dns_server, 53, DNS_CLIENT, NETWORK_SERVICE, protocol="udp")
        recorder.connect(ms + rng.randrange(5, 500), rng.choice(PUBLIC_IPS), 443, BROWSER, host.user)
    if host.dns_server and rng.random() < 0.3:
        recorder.connect(hour_ms + rng.randrange(HOUR_MS), host.dns_server, 88, LSASS_CLIENT, SYSTEM_USER)
    if host.dns_server and rng.random() < 0.2:
        recorder.connect(hour_ms + rng.randrange(HOUR_MS), host.dns_server, 389, LSASS_CLIENT, SYSTEM_USER)


def _occasional_smb(recorder: _Recorder, begin: int, finish: int) -> None:
    """Record the occasional printer job and benign churn: 1-2 destinations outside the usual ones."""
    fleet, host, rng = recorder.fleet, recorder.host, recorder.rng
    if host.printer and rng.random() < PRINTER_PER_DAY:
        port = rng.choice((445, 139))
        recorder.smb(rng.randrange(begin, finish), host.printer, SMB_FROM_SPOOLER, host.user, port=port)
    if not host.may_churn or rng.random() >= CHURN_PER_DAY:
        return
    ms = rng.randrange(begin, finish)
    destinations = set()
    for _ in range(rng.randint(1, 2)):
        share = rng.choice(fleet.file_servers) if fleet.file_servers else None
        if share is not None and share.ips[0] not in host.usual_destinations and rng.random() < 0.5:
            destinations.add(share.ips[0])
            continue
        colleague = rng.choice(fleet.workstations)
        if colleague is not host and colleague.join_ms <= ms and colleague.host_id not in host.never_contact:
            destinations.add(colleague.ip_at(ms))
    for ip in sorted(destinations):
        for _ in range(rng.randint(1, 3)):
            recorder.smb(ms + rng.randrange(HOUR_MS), ip, SMB_FROM_EXPLORER, host.user)


def _server_day(recorder: _Recorder, day: int) -> None:
    """Record a server's day: Group Policy refreshes, DNS, updates and, on DCs, self-connections."""
    fleet, host, rng = recorder.fleet, recorder.host, recorder.rng
    day_ms = fleet.timeline.day_ms(day)
    usual = host.usual_destinations_on(day)
    for ms in _refresh_times(rng, day_ms, day_ms + DAY_MS):
        if usual:
            _ordinary_smb(recorder, ms, rng.choice(usual))
        if host.dns_server:
            recorder.connect(ms + 50, host.dns_server, 53, DNS_CLIENT, NETWORK_SERVICE, protocol="udp")
            recorder.connect(ms + 90, host.dns_server, 88, LSASS_CLIENT, SYSTEM_USER)
    if rng.random() < 0.5:
        ms = day_ms + rng.randrange(DAY_MS - MINUTE_MS)
        recorder.connect(ms, rng.choice(PUBLIC_IPS), 443, WINDOWS_UPDATE, SYSTEM_USER)
    if host.role != "domain_controller" or host.link_local is None:
        return
    # A DC opens SMB sessions to itself over loopback and link-local addresses (SYSVOL, DFS).
    # The detector must not count them as destinations.
    for local_ip in ("127.0.0.1", host.link_local):
        for _ in range(rng.randint(1, 4)):
            ms = day_ms + rng.randrange(DAY_MS - MINUTE_MS)
            recorder.connect(ms, local_ip, 445, SMB_FROM_SVCHOST, SYSTEM_USER, local_ip=local_ip)
    for peer in fleet.hosts:
        if peer.role == "domain_controller" and peer is not host and rng.random() < 0.5:
            ms = day_ms + rng.randrange(DAY_MS - MINUTE_MS)
            recorder.connect(ms, peer.ips[0], 135, LSASS_CLIENT, SYSTEM_USER)


def _attack_events_by_day(fleet: _Fleet) -> tuple[dict[int, list[_Event]], list[dict[str, Any]]]:
    """Build every attack's events, grouped by day index, and the matching labels."""
    by_day: dict[int, list[_Event]] = {}
    labels = []
    for attack in fleet.attacks:
        rng = random.Random(f"{fleet.spec.seed}/{attack.attack_id}")
        recorder = _Recorder(fleet, attack.host, rng)
        name, path, command = attack.tool
        offsets = sorted(rng.randrange(attack.duration_ms) for _ in attack.targets)
        destinations = []
        for target, offset in zip(attack.targets, [0, *offsets[1:]], strict=True):
            ms = attack.start_ms + offset
            ip = target.ip_at(ms)
            destinations.append((ip, target.host_id))
            # The canonical schema has one command-line field. System has no command line,
            # so the field carries the attack tool's, the causality process of the session.
            process = _Process("System", None, command.format(ip=ip), name, path)
            for _ in range(rng.randint(1, 3)):
                outcome = "failure" if rng.random() < ATTACK_FAILURE else "success"
                port = 445 if rng.random() < 0.9 else 139
                recorder.smb(ms, ip, process, attack.user, port=port, outcome=outcome)
                ms += rng.randrange(500, 20 * SECOND_MS)
        own_times = [event.ms for event in recorder.events if event.host is attack.host]
        for event in recorder.events:
            by_day.setdefault(fleet.timeline.day_of(event.ms), []).append(event)
        labels.append(
            {
                "attack_id": attack.attack_id,
                "host_id": attack.host.host_id,
                "host_name": attack.host.host_name,
                "start": _format_time(min(own_times)),
                "end": _format_time(max(own_times)),
                "destination_ips": [ip for ip, _ in destinations],
                "destination_host_ids": [host_id for _, host_id in destinations],
                "technique": TECHNIQUE,
            }
        )
    return by_day, labels


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


def _format_time(ms: int) -> str:
    """Format epoch milliseconds as ISO-8601 UTC with millisecond precision and `Z`."""
    days, ms_of_day = divmod(ms, DAY_MS)
    seconds, millis = divmod(ms_of_day, SECOND_MS)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    day_text = _date_text(days)
    return f"{day_text}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


@functools.lru_cache(maxsize=64)
def _date_text(days_since_epoch: int) -> str:
    return (_EPOCH + timedelta(days=days_since_epoch)).isoformat()


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
