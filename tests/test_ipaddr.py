"""Tests of the IP address Column helpers, checked against Python's `ipaddress` module."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence

import pytest
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from smb_fanout.ipaddr import (
    BROADCAST_CIDRS,
    LINK_LOCAL_CIDRS,
    LOOPBACK_CIDRS,
    MULTICAST_CIDRS,
    NON_DESTINATION_CIDRS,
    UNSPECIFIED_CIDRS,
    ip_in_cidrs,
    is_broadcast,
    is_link_local,
    is_loopback,
    is_multicast,
    is_non_destination,
    is_unspecified,
    normalize_ip,
)

Predicate = Callable[[Column], Column]

# (raw value, expected normalize_ip result)
IPV4_CASES = [
    ("127.0.0.1", "127.0.0.1"),
    ("10.59.4.20", "10.59.4.20"),
    ("172.18.39.5", "172.18.39.5"),
    ("0.0.0.0", "0.0.0.0"),
    ("255.255.255.255", "255.255.255.255"),
    ("1.0.0.9", "1.0.0.9"),
]

# Sysmon writes IPv6 uncompressed, without leading zeros.
EXPANDED_IPV6_CASES = [
    ("0:0:0:0:0:0:0:1", "::1"),
    ("0:0:0:0:0:0:0:0", "::"),
    ("fe80:0:0:0:2d5b:5e4e:4bc4:6b6b", "fe80::2d5b:5e4e:4bc4:6b6b"),
    ("fe80:0:0:0:1c5f:2b3:4c5d:6e7f", "fe80::1c5f:2b3:4c5d:6e7f"),
    ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
    ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
    ("1:0:0:1:1:0:0:1", "1::1:1:0:0:1"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
    ("0:1:2:3:4:5:6:0", "0:1:2:3:4:5:6:0"),
]

# Windows Security events write IPv6 already compressed.
COMPRESSED_IPV6_CASES = [
    ("::1", "::1"),
    ("::", "::"),
    ("1::", "1::"),
    ("fe80::80ac:4126:fa58:1b81", "fe80::80ac:4126:fa58:1b81"),
    ("ff02::1:2", "ff02::1:2"),
    ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
    ("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"),
    ("1::2:0:0:3", "1::2:0:0:3"),
    ("1:0::0:1", "1::1"),
]

DECORATED_CASES = [
    ("FE80::80AC:4126:FA58:1B81", "fe80::80ac:4126:fa58:1b81"),
    ("FF02::1:2", "ff02::1:2"),
    ("fe80::1%12", "fe80::1"),
    ("fe80::1%eth0", "fe80::1"),
    ("[fe80::1%12]", "fe80::1"),
    ("[::1]", "::1"),
    ("[10.0.0.1]", "10.0.0.1"),
    ("  10.59.4.20\t", "10.59.4.20"),
    ("\n::1 ", "::1"),
]

MAPPED_IPV4_CASES = [
    ("::ffff:10.1.2.3", "10.1.2.3"),
    ("0:0:0:0:0:ffff:a01:203", "10.1.2.3"),
    ("::FFFF:A01:203", "10.1.2.3"),
    ("[::ffff:192.168.1.1%3]", "192.168.1.1"),
    ("::ffff:0.0.0.0", "0.0.0.0"),
]

# IPv6 with a dotted IPv4 tail that is not IPv4-mapped stays IPv6.
IPV4_TAIL_CASES = [
    ("64:ff9b::1.2.3.4", "64:ff9b::102:304"),
    ("::1.2.3.4", "::102:304"),
    ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"),
]

VALID_CASES = [
    *IPV4_CASES,
    *EXPANDED_IPV6_CASES,
    *COMPRESSED_IPV6_CASES,
    *DECORATED_CASES,
    *MAPPED_IPV4_CASES,
    *IPV4_TAIL_CASES,
]

INVALID_VALUES = [
    "",
    " ",
    "-",
    "abc",
    "1.2.3",
    "256.1.1.1",
    "010.1.1.1",
    "1.2.3.4.5",
    "1.2.3.-1",
    "10.0.0.1:445",
    "1.2.3.4%1",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::8",
    "1::2::3",
    ":::",
    ":1:2:3:4:5:6:7",
    "gggg::1",
    "12345::1",
    "fe80::1%",
    "fe80::1%1%2",
    "[::1",
    "::1]",
    "[::1]:445",
    "::ffff:256.1.1.1",
    "::ffff:01.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
]


def normalize_values(spark: SparkSession, values: Sequence[str | None]) -> list[str | None]:
    frame = spark.createDataFrame([(value,) for value in values], "ip string")
    return [row.ip for row in frame.select(normalize_ip(F.col("ip")).alias("ip")).collect()]


def apply_predicate(
    spark: SparkSession,
    predicate: Predicate,
    values: Sequence[str | None],
) -> list[bool | None]:
    frame = spark.createDataFrame([(value,) for value in values], "ip string")
    return [row.hit for row in frame.select(predicate(F.col("ip")).alias("hit")).collect()]


def python_normalize(value: str) -> str:
    """Apply the rules of `normalize_ip` with Python's `ipaddress` as the parser."""
    text = value.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        # Rebuilding from the integer drops the zone id.
        return str(ipaddress.IPv6Address(int(address)))
    return str(address)


def python_rejects(value: str) -> bool:
    try:
        python_normalize(value)
    except ValueError:
        return True
    return False


def test_valid_table_matches_python() -> None:
    expected = [result for _, result in VALID_CASES]

    assert [python_normalize(raw) for raw, _ in VALID_CASES] == expected


def test_invalid_table_rejected_by_python() -> None:
    assert [value for value in INVALID_VALUES if not python_rejects(value)] == []


@pytest.mark.parametrize(
    "cases",
    [
        pytest.param(IPV4_CASES, id="ipv4"),
        pytest.param(EXPANDED_IPV6_CASES, id="expanded-ipv6"),
        pytest.param(COMPRESSED_IPV6_CASES, id="compressed-ipv6"),
        pytest.param(DECORATED_CASES, id="case-zone-brackets-whitespace"),
        pytest.param(MAPPED_IPV4_CASES, id="mapped-ipv4"),
        pytest.param(IPV4_TAIL_CASES, id="ipv4-tail"),
    ],
)
def test_normalize_valid_addresses(spark: SparkSession, cases: list[tuple[str, str]]) -> None:
    results = normalize_values(spark, [raw for raw, _ in cases])

    assert results == [expected for _, expected in cases]


def test_normalize_rejects_invalid_values(spark: SparkSession) -> None:
    results = normalize_values(spark, INVALID_VALUES)

    assert dict(zip(INVALID_VALUES, results, strict=True)) == dict.fromkeys(INVALID_VALUES)


def test_normalize_null_is_null(spark: SparkSession) -> None:
    assert normalize_values(spark, [None]) == [None]


def test_normalize_random_ipv6_matches_python(spark: SparkSession) -> None:
    # Mostly-zero hextets produce zero runs of every length, including ties.
    rng = random.Random(20240501)
    raws: list[str] = []
    for _ in range(150):
        hextets = [rng.choice([0, 0, 0, 1, rng.randrange(1 << 16)]) for _ in range(8)]
        address = ipaddress.IPv6Address(b"".join(h.to_bytes(2, "big") for h in hextets))
        raws.append(":".join(f"{h:x}" for h in hextets))
        raws.append(address.exploded)
        raws.append(address.compressed.upper())

    results = normalize_values(spark, raws)

    assert results == [python_normalize(raw) for raw in raws]


def test_normalize_is_idempotent(spark: SparkSession) -> None:
    once = [expected for _, expected in VALID_CASES]

    assert normalize_values(spark, once) == once


def test_normalize_plan_has_no_python(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("::1",)], "ip string")
    normalized = frame.select(normalize_ip(F.col("ip")).alias("ip"))
    plan = normalized.select(is_non_destination(F.col("ip")))

    assert "Python" not in plan._jdf.queryExecution().executedPlan().toString()


# Rows of (CIDR, normalized address, expected membership) just inside and
# just outside each network.
CIDR_EDGE_CASES = [
    ("10.0.0.0/8", "10.0.0.0", True),
    ("10.0.0.0/8", "10.255.255.255", True),
    ("10.0.0.0/8", "9.255.255.255", False),
    ("10.0.0.0/8", "11.0.0.0", False),
    ("172.16.0.0/12", "172.16.0.0", True),
    ("172.16.0.0/12", "172.31.255.255", True),
    ("172.16.0.0/12", "172.15.255.255", False),
    ("172.16.0.0/12", "172.32.0.0", False),
    ("fc00::/7", "fc00::", True),
    ("fc00::/7", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True),
    ("fc00::/7", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False),
    ("fc00::/7", "fe00::", False),
    ("fe80::/10", "fe80::", True),
    ("fe80::/10", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True),
    ("fe80::/10", "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False),
    ("fe80::/10", "fec0::", False),
    ("2001:db8::/126", "2001:db8::", True),
    ("2001:db8::/126", "2001:db8::3", True),
    ("2001:db8::/126", "2001:db8::4", False),
    ("2001:db8::/126", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", False),
    ("192.168.1.7/32", "192.168.1.7", True),
    ("192.168.1.7/32", "192.168.1.8", False),
    ("::1/128", "::1", True),
    ("::1/128", "::", False),
    ("0.0.0.0/0", "255.255.255.255", True),
    ("0.0.0.0/0", "::1", False),
    ("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True),
    ("::/0", "10.0.0.1", False),
]


def membership(spark: SparkSession, cases: Sequence[tuple[str, str]]) -> list[bool]:
    """Evaluate `ip_in_cidrs(ip, [cidr])` for each (CIDR, address) pair in one query."""
    cidrs = sorted({cidr for cidr, _ in cases})
    addresses = sorted({ip for _, ip in cases})
    frame = spark.createDataFrame([(ip,) for ip in addresses], "ip string")
    columns = [ip_in_cidrs(F.col("ip"), [cidr]).alias(f"c{i}") for i, cidr in enumerate(cidrs)]
    rows = {row.ip: row for row in frame.select("ip", *columns).collect()}
    return [rows[ip][f"c{cidrs.index(cidr)}"] for cidr, ip in cases]


def test_cidr_edge_table_matches_python() -> None:
    expected = [member for _, _, member in CIDR_EDGE_CASES]

    assert [python_membership(cidr, ip) for cidr, ip, _ in CIDR_EDGE_CASES] == expected


def test_ip_in_cidrs_edges(spark: SparkSession) -> None:
    results = membership(spark, [(cidr, ip) for cidr, ip, _ in CIDR_EDGE_CASES])

    assert results == [expected for _, _, expected in CIDR_EDGE_CASES]


# Prefix lengths with every remainder modulo 4 (a prefix that ends inside a
# hex digit) and the family boundaries. Testing all 160 lengths is several
# times slower, because each ip_in_cidrs call builds its expression through py4j.
IPV4_PREFIX_LENGTHS = (1, 2, 3, 4, 6, 9, 12, 15, 16, 19, 24, 26, 31, 32)
IPV6_PREFIX_LENGTHS = (1, 2, 3, 4, 7, 10, 17, 32, 47, 64, 65, 98, 126, 127, 128)
AddressType = type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
FAMILIES: list[tuple[int, AddressType, tuple[int, ...]]] = [
    (32, ipaddress.IPv4Address, IPV4_PREFIX_LENGTHS),
    (128, ipaddress.IPv6Address, IPV6_PREFIX_LENGTHS),
]


def network_edge_cases(rng: random.Random) -> list[tuple[str, str]]:
    """Return (CIDR, normalized address) pairs at the edges of random networks.

    For each prefix length, the pairs hold the first and last addresses of a
    random network and the neighbors just outside it.
    """
    cases: list[tuple[str, str]] = []
    for bits, address_type, prefix_lengths in FAMILIES:
        for prefix_length in prefix_lengths:
            seed = address_type(rng.randrange(1 << bits))
            network = ipaddress.ip_network((seed, prefix_length), strict=False)
            first = int(network.network_address)
            last = int(network.broadcast_address)
            for value in (first - 1, first, last, last + 1):
                if 0 <= value < 1 << bits:
                    cases.append((str(network), python_normalize(str(address_type(value)))))
    return cases


def python_membership(cidr: str, ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    network = ipaddress.ip_network(cidr)
    return address.version == network.version and address in network


def test_ip_in_cidrs_random_network_edges(spark: SparkSession) -> None:
    cases = network_edge_cases(random.Random(7))

    assert membership(spark, cases) == [python_membership(cidr, ip) for cidr, ip in cases]


def test_ip_in_cidrs_any_of_several(spark: SparkSession) -> None:
    cidrs = ["10.0.0.0/8", "172.16.0.0/12", "fc00::/7"]
    values = ["10.1.2.3", "172.20.0.1", "fd12::1", "192.168.0.1", "fe80::1"]

    results = apply_predicate(spark, lambda ip: ip_in_cidrs(ip, cidrs), values)

    assert results == [True, True, True, False, False]


def test_ip_in_cidrs_same_prefix_length(spark: SparkSession) -> None:
    cidrs = ["10.0.0.0/8", "12.0.0.0/8", "192.168.0.0/16", "192.170.0.0/16", "0.0.0.0/32"]
    values = ["10.9.9.9", "11.0.0.1", "12.255.255.255", "192.168.3.4", "192.169.0.1", "192.170.255.0", "0.0.0.0"]

    results = apply_predicate(spark, lambda ip: ip_in_cidrs(ip, cidrs), values)

    assert results == [True, False, True, True, False, True, True]


def test_ip_in_cidrs_null_and_invalid_false(spark: SparkSession) -> None:
    values = [None, "", "-", "abc", "1.2.3", "gggg::1", "FE80::1", "10.0.0.1\n", "fe80::1\n"]

    results = apply_predicate(spark, lambda ip: ip_in_cidrs(ip, ["0.0.0.0/0", "::/0"]), values)

    assert results == [False] * len(values)


def test_ip_in_cidrs_uncompressed_ipv6_matches(spark: SparkSession) -> None:
    values = ["fe80:0:0:0:0:0:0:1", "fec0:0:0:0:0:0:0:1"]

    results = apply_predicate(spark, lambda ip: ip_in_cidrs(ip, ["fe80::/10"]), values)

    assert results == [True, False]


def test_ip_in_cidrs_empty_list_false(spark: SparkSession) -> None:
    results = apply_predicate(spark, lambda ip: ip_in_cidrs(ip, []), ["10.0.0.1", None])

    assert results == [False, False]


@pytest.mark.parametrize("cidr", ["10.0.0.1/8", "10.0.0.0/33", "fe80::1/10", "nope", ""])
def test_ip_in_cidrs_rejects_invalid_cidr(cidr: str) -> None:
    with pytest.raises(ValueError, match="invalid CIDR"):
        ip_in_cidrs(F.col("ip"), [cidr])


PREDICATE_INPUTS = [
    "127.0.0.1",
    "127.255.255.255",
    "128.0.0.1",
    "::1",
    "::2",
    "169.254.1.1",
    "169.255.0.1",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "224.0.0.251",
    "239.255.255.250",
    "240.0.0.1",
    "ff02::1:2",
    "feff::1",
    "0.0.0.0",
    "0.0.0.1",
    "::",
    "255.255.255.255",
    "255.255.255.254",
    "10.59.4.20",
    "172.18.39.5",
    "2001:db8::1",
    None,
]

PREDICATE_HITS = {
    is_loopback: ["127.0.0.1", "127.255.255.255", "::1"],
    is_link_local: ["169.254.1.1", "fe80::1", "febf::1"],
    is_multicast: ["224.0.0.251", "239.255.255.250", "ff02::1:2"],
    is_unspecified: ["0.0.0.0", "::"],
    is_broadcast: ["255.255.255.255"],
}


PREDICATE_PARAMS = [pytest.param(p, hits, id=p.__name__) for p, hits in PREDICATE_HITS.items()]
ALL_PREDICATES = [*PREDICATE_HITS, is_non_destination]


@pytest.mark.parametrize(("predicate", "hits"), PREDICATE_PARAMS)
def test_predicate_flags_expected_addresses(
    spark: SparkSession,
    predicate: Predicate,
    hits: list[str],
) -> None:
    results = apply_predicate(spark, predicate, PREDICATE_INPUTS)

    assert [ip for ip, hit in zip(PREDICATE_INPUTS, results, strict=True) if hit] == hits


@pytest.mark.parametrize("predicate", ALL_PREDICATES, ids=lambda predicate: predicate.__name__)
def test_predicate_never_returns_null(spark: SparkSession, predicate: Predicate) -> None:
    assert None not in apply_predicate(spark, predicate, PREDICATE_INPUTS)


def test_predicate_hits_match_python() -> None:
    addresses = [ipaddress.ip_address(ip) for ip in PREDICATE_INPUTS if ip is not None]
    python_hits = {
        is_loopback: [str(a) for a in addresses if a.is_loopback],
        is_link_local: [str(a) for a in addresses if a.is_link_local],
        is_multicast: [str(a) for a in addresses if a.is_multicast],
        is_unspecified: [str(a) for a in addresses if a.is_unspecified],
        is_broadcast: [str(a) for a in addresses if str(a) == "255.255.255.255"],
    }

    assert python_hits == PREDICATE_HITS


def test_non_destination_is_union(spark: SparkSession) -> None:
    results = apply_predicate(spark, is_non_destination, PREDICATE_INPUTS)
    union = {ip for hits in PREDICATE_HITS.values() for ip in hits}

    assert [ip for ip, hit in zip(PREDICATE_INPUTS, results, strict=True) if hit] == [
        ip for ip in PREDICATE_INPUTS if ip in union
    ]


def test_non_destination_cidrs_are_union() -> None:
    union = LOOPBACK_CIDRS + LINK_LOCAL_CIDRS + MULTICAST_CIDRS + UNSPECIFIED_CIDRS
    assert sorted(NON_DESTINATION_CIDRS) == sorted(union + BROADCAST_CIDRS)
