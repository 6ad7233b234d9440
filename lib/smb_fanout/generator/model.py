"""Data model, constants and time formatting of the fleet generator."""

from __future__ import annotations

import functools
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

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
    # Labelled scenario classes to inject (see generator/scenarios.py), each `scenario_repeats` times.
    scenarios: tuple[str, ...] = ()
    scenario_repeats: int = 1


@dataclass(frozen=True)
class GeneratedFleet:
    """Paths and counts of one generated fleet."""

    events_dir: Path
    labels_path: Path
    hosts_path: Path
    event_count: int
    attack_count: int
    scenarios_path: Path | None = None


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
    renamed_ms: int | None = None  # from then on the agent reports `renamed_json`
    renamed_json: str = ""

    def __post_init__(self) -> None:
        identity = {"host_id": self.host_id, "host_name": self.host_name}
        self.identity_json = _ENCODER.encode(identity)[1:-1]

    def rename(self, ms: int, new_name: str) -> None:
        """Report `new_name` with the same host id from `ms` on, as an agent does after a rename."""
        self.renamed_ms = ms
        self.renamed_json = _ENCODER.encode({"host_id": self.host_id, "host_name": new_name})[1:-1]

    def identity_at(self, ms: int) -> str:
        if self.renamed_ms is not None and ms >= self.renamed_ms:
            return self.renamed_json
        return self.identity_json

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
