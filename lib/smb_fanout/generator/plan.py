"""Planning of the generated fleet: hosts, addresses, join days and injected attacks."""

from __future__ import annotations

import ipaddress
import random
import uuid

from smb_fanout.generator.model import (
    _HOST_ID_NAMESPACE,
    ALWAYS_ON,
    ATTACK_TOOLS,
    DAY_MS,
    DOMAIN,
    FIRST_NAMES,
    HOUR_MS,
    LAST_NAMES,
    LATE_JOIN_DAYS,
    ROLES,
    ExtraHost,
    FleetSpec,
    _Attack,
    _Fleet,
    _Host,
    _Timeline,
)
from smb_fanout.generator.scenarios import CLASSES as SCENARIO_CLASSES


def _validate_spec(spec: FleetSpec) -> None:
    counts = ("workstations", "file_servers", "domain_controllers", "printers", "attacks")
    for name in (*counts, "late_joiners", "dhcp_changes"):
        if getattr(spec, name) < 0:
            raise ValueError(f"invalid FleetSpec.{name}={getattr(spec, name)}: must be >= 0")
    for name in ("days", "attack_days", "window_hours", "days_per_file", "scenario_repeats"):
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
    unknown = sorted(set(spec.scenarios) - set(SCENARIO_CLASSES))
    if unknown:
        raise ValueError(
            f"invalid FleetSpec.scenarios: unknown scenario class {', '.join(unknown)}: "
            f"use one of {', '.join(SCENARIO_CLASSES)}"
        )
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
