"""Events of one host and day: ordinary SMB, noise, inbound records and attacks."""

from __future__ import annotations

import functools
import random
from typing import Any, NamedTuple

from smb_fanout.generator.model import (
    _ENCODER,
    ATTACK_FAILURE,
    BROWSER,
    CHURN_PER_DAY,
    DAY_MS,
    DNS_CLIENT,
    GPO_REFRESH_MS,
    HOUR_MS,
    INBOUND_LOGGED,
    LSASS_CLIENT,
    MINUTE_MS,
    NETWORK_SERVICE,
    ORDINARY_FAILURE,
    PRINTER_PER_DAY,
    PUBLIC_IPS,
    SECOND_MS,
    SMB_FROM_EXPLORER,
    SMB_FROM_SPOOLER,
    SMB_FROM_SVCHOST,
    SMB_INBOUND,
    SYSTEM_USER,
    TECHNIQUE,
    WEEKEND_ACTIVE,
    WINDOWS_UPDATE,
    _Fleet,
    _format_time,
    _Host,
    _Process,
)


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
        f"{event.host.identity_at(event.ms)},"
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
