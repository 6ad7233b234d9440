"""Normalization and classification of IP address strings as Spark Column expressions.

Every helper is built from Spark built-in functions, including higher-order
functions such as `transform` whose lambdas are compiled into Catalyst
expressions. No row is sent to a Python worker, so the helpers are cheap
enough to run on every network event.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from functools import reduce
from operator import or_

from pyspark.sql import Column
from pyspark.sql import functions as F

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_CIDRS: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
LINK_LOCAL_CIDRS: tuple[str, ...] = ("169.254.0.0/16", "fe80::/10")
MULTICAST_CIDRS: tuple[str, ...] = ("224.0.0.0/4", "ff00::/8")
UNSPECIFIED_CIDRS: tuple[str, ...] = ("0.0.0.0/32", "::/128")
BROADCAST_CIDRS: tuple[str, ...] = ("255.255.255.255/32",)
# Addresses that can never be the destination of an SMB session.
NON_DESTINATION_CIDRS: tuple[str, ...] = (
    LOOPBACK_CIDRS + LINK_LOCAL_CIDRS + MULTICAST_CIDRS + UNSPECIFIED_CIDRS + BROADCAST_CIDRS
)

# Java regular expressions for lowercase text. They end in `\z` because
# Java's `$` also matches before a final line break.
# Octets with leading zeros such as `010` are rejected, because some parsers
# read them as octal. Python's `ipaddress` (checked with 3.11) rejects them too.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_IPV4_PATTERN = rf"^{_IPV4}\z"
_IPV6_WITH_IPV4_TAIL_PATTERN = rf"^[0-9a-f:]*:{_IPV4}\z"
_HEXTET = r"[0-9a-f]{1,4}"
_HEXTET_LIST = rf"{_HEXTET}(?::{_HEXTET})*"
_FULL_IPV6_PATTERN = rf"^{_HEXTET}(?::{_HEXTET}){{7}}\z"
_COMPRESSED_IPV6_PATTERN = rf"^(?:{_HEXTET_LIST})?::(?:{_HEXTET_LIST})?\z"
# A zone id follows the last `%` of an IPv6 address. Like Python's
# `ipaddress`, a zone id must be non-empty and must not contain `%`.
_ZONE_ID_PATTERN = r"^([^%]*:[^%]*)%[^%]+\z"

# The characters that Java's `\s` matches. `btrim` with an explicit set is
# cheaper than a regular expression.
_WHITESPACE = " \t\n\r\f\u000b"
_HEXTET_COUNT = 8
# The first 96 bits of an IPv4-mapped IPv6 address `::ffff:a.b.c.d`, in hex.
_IPV4_MAPPED_PREFIX = "0" * 20 + "ffff"


def normalize_ip(col: Column) -> Column:
    """Convert an IP address string to one canonical form.

    The value is trimmed of ASCII whitespace, lowercased, and stripped of surrounding square
    brackets and of an IPv6 zone id (`fe80::1%12` becomes `fe80::1`). A valid
    IPv4 address is returned as is. An IPv4-mapped IPv6 address such as
    `::ffff:10.1.2.3` or `0:0:0:0:0:ffff:a01:203` becomes the plain IPv4
    address `10.1.2.3`. Any other IPv6 address, including one written with a
    dotted IPv4 tail such as `64:ff9b::1.2.3.4`, becomes the RFC 5952
    compressed form that `str(ipaddress.IPv6Address(...))` returns.

    Args:
        col: A string column, or a column that casts to string.

    Returns:
        A string column with the canonical address, or NULL when the value is
        NULL, empty, `-` or not a valid IPv4 or IPv6 address. IPv4 octets with
        leading zeros (`010.1.1.1`) are invalid.
    """
    as_text = col.cast("string")
    text = _strip_zone_id(_strip_brackets(F.lower(_trim_whitespace(as_text))))
    general = _let(
        text,
        lambda value: F.when(value.rlike(_IPV4_PATTERN), value).otherwise(_normalize_ipv6(value)),
    )
    # Most events carry a plain IPv4 address. Spark compiles this test to Java
    # but interprets `transform`, so such addresses skip the `transform`.
    return F.when(as_text.rlike(_IPV4_PATTERN), as_text).otherwise(general)


def ip_in_cidrs(ip: Column, cidrs: Sequence[str]) -> Column:
    """Test whether a normalized IP address lies in any of the given networks.

    The CIDRs are parsed once in Python. Each row is converted to a hex
    string (8 digits for IPv4, 32 for IPv6) and compared with the prefix of
    every network of the same family.

    Args:
        ip: A string column in the form that `normalize_ip` returns. Values
            with uppercase hex, brackets, a zone id or surrounding whitespace
            do not match.
        cidrs: IPv4 and IPv6 networks such as `10.0.0.0/8` or `fc00::/7`.
            IPv4-mapped IPv6 networks (`::ffff:0:0/96`) match no normalized
            address, because `normalize_ip` turns mapped addresses into IPv4.

    Returns:
        A boolean column that is false, never NULL, for a NULL or invalid `ip`.

    Raises:
        ValueError: a CIDR is invalid or has host bits set (`10.0.0.1/8`).
    """
    networks = [_parse_cidr(cidr) for cidr in cidrs]
    ipv4 = [network for network in networks if network.version == 4]
    ipv6 = [network for network in networks if network.version == 6]

    def matches_any_ipv6(digits: Column) -> Column:
        return reduce(or_, [_prefix_matches(digits, network) for network in ipv6])

    # IPv4 addresses take a compiled text test; only IPv6 text goes through
    # the interpreted `transform` of `_let`.
    in_ipv4 = _ipv4_in_networks(ip, ipv4) if ipv4 else F.lit(False)
    in_ipv6 = _let(_let(ip, _address_hex_digits), matches_any_ipv6) if ipv6 else F.lit(False)
    return F.coalesce(F.when(ip.rlike(_IPV4_PATTERN), in_ipv4).otherwise(in_ipv6), F.lit(False))


def is_loopback(ip: Column) -> Column:
    """Test whether a normalized IP address is a loopback address (`LOOPBACK_CIDRS`)."""
    return ip_in_cidrs(ip, LOOPBACK_CIDRS)


def is_link_local(ip: Column) -> Column:
    """Test whether a normalized IP address is link-local (`LINK_LOCAL_CIDRS`)."""
    return ip_in_cidrs(ip, LINK_LOCAL_CIDRS)


def is_multicast(ip: Column) -> Column:
    """Test whether a normalized IP address is a multicast address (`MULTICAST_CIDRS`)."""
    return ip_in_cidrs(ip, MULTICAST_CIDRS)


def is_unspecified(ip: Column) -> Column:
    """Test whether a normalized IP address is `0.0.0.0` or `::` (`UNSPECIFIED_CIDRS`)."""
    return ip_in_cidrs(ip, UNSPECIFIED_CIDRS)


def is_broadcast(ip: Column) -> Column:
    """Test whether a normalized IP address is the IPv4 limited broadcast `255.255.255.255`."""
    return ip_in_cidrs(ip, BROADCAST_CIDRS)


def is_non_destination(ip: Column) -> Column:
    """Test whether a normalized IP address can never be an SMB destination.

    True for loopback, link-local, multicast, unspecified and broadcast
    addresses (`NON_DESTINATION_CIDRS`). False for NULL.
    """
    return ip_in_cidrs(ip, NON_DESTINATION_CIDRS)


def _let(value: Column, body: Callable[[Column], Column]) -> Column:
    # Spark SQL has no `let`. A Column used several times is copied into the
    # plan and evaluated once per copy, so nested helpers would grow the plan
    # exponentially. Passing the value through a one-element `transform`
    # evaluates it once and gives `body` a cheap lambda variable.
    return F.get(F.transform(F.array(value), body), 0)


def _trim_whitespace(text: Column) -> Column:
    # F.trim removes only spaces, but logs also carry tabs and line breaks.
    return F.btrim(text, F.lit(_WHITESPACE))


def _strip_brackets(text: Column) -> Column:
    return F.regexp_replace(text, r"^\[(.*)\]\z", "$1")


def _strip_zone_id(text: Column) -> Column:
    # Only text with a `:` before the `%` loses its zone id, so `1.2.3.4%1`
    # stays invalid, as it is for Python's `ipaddress`.
    return F.regexp_replace(text, _ZONE_ID_PATTERN, "$1")


def _normalize_ipv6(text: Column) -> Column:
    hextets = _let(_replace_ipv4_tail(text), _expand_hextets)
    return _let(hextets, _format_hextets)


def _replace_ipv4_tail(text: Column) -> Column:
    """Rewrite a dotted IPv4 tail as two hextets, so `::ffff:1.2.3.4` becomes `::ffff:102:304`."""
    octets = F.split(F.substring_index(text, ":", -1), r"\.")

    def hextet(first_octet: int) -> Column:
        high = F.get(octets, first_octet).cast("int")
        low = F.get(octets, first_octet + 1).cast("int")
        return F.lower(F.hex(high * 256 + low))

    head = F.regexp_replace(text, r"[^:]*\z", "")
    rewritten = F.concat(head, hextet(0), F.lit(":"), hextet(2))
    return F.when(text.rlike(_IPV6_WITH_IPV4_TAIL_PATTERN), rewritten).otherwise(text)


def _expand_hextets(text: Column) -> Column:
    """Split IPv6 text into 8 four-digit lowercase hextets, or NULL when it is invalid.

    Expects text without a zone id or an IPv4 tail.
    """
    halves = F.split(text, "::")
    head = _split_hextets(F.get(halves, 0))
    tail = _split_hextets(F.get(halves, 1))
    # `::` must stand for at least one zero hextet, as in Python's `ipaddress`.
    elided_count = F.lit(_HEXTET_COUNT) - F.size(head) - F.size(tail)
    elided = F.array_repeat(F.lit("0"), elided_count)

    hextets = F.when(text.rlike(_FULL_IPV6_PATTERN), F.split(text, ":")).when(
        text.rlike(_COMPRESSED_IPV6_PATTERN) & (elided_count >= 1),
        F.concat(head, elided, tail),
    )
    return F.transform(hextets, lambda hextet: F.lpad(hextet, 4, "0"))


def _split_hextets(part: Column) -> Column:
    # One side of `::` may be empty, and splitting "" yields [""].
    return F.array_remove(F.split(part, ":"), "")


def _format_hextets(hextets: Column) -> Column:
    """Format 8 four-digit hextets as plain IPv4 when IPv4-mapped, else as compressed IPv6."""
    digits = F.concat_ws("", hextets)
    return (
        F.when(hextets.isNull(), F.lit(None).cast("string"))
        .when(digits.startswith(_IPV4_MAPPED_PREFIX), _mapped_ipv4(digits))
        .otherwise(_compress_hextets(hextets))
    )


def _mapped_ipv4(digits: Column) -> Column:
    """Convert the last 8 of 32 hex digits to dotted decimal."""
    octets = [F.conv(F.substring(digits, position, 2), 16, 10) for position in (25, 27, 29, 31)]
    return F.concat_ws(".", *octets)


def _compress_hextets(hextets: Column) -> Column:
    """Join hextets in the RFC 5952 form.

    Leading zeros are dropped, and the longest run of two or more zero
    hextets (the first one on a tie) is replaced by `::`.
    """
    short = F.transform(hextets, lambda hextet: F.regexp_replace(hextet, "^0{1,3}", ""))
    zero_flags = F.concat_ws("", F.transform(hextets, _zero_flag))
    return _let(zero_flags, lambda flags: _join_around_zero_run(short, flags))


def _zero_flag(hextet: Column) -> Column:
    # One character per hextet: "0" for a zero hextet, "1" otherwise.
    return F.when(hextet == "0000", "0").otherwise("1")


def _join_around_zero_run(short: Column, flags: Column) -> Column:
    run_length = F.array_max(F.transform(F.split(flags, "1"), F.length))
    # `instr` finds the first occurrence, which settles ties as RFC 5952 requires.
    run_start = F.instr(flags, F.repeat(F.lit("0"), run_length)) - 1
    before = F.filter(short, lambda _, index: index < run_start)
    after = F.filter(short, lambda _, index: index >= run_start + run_length)
    joined = F.concat(F.concat_ws(":", before), F.lit("::"), F.concat_ws(":", after))
    return F.when(run_length >= 2, joined).otherwise(F.concat_ws(":", short))


def _address_hex_digits(ip: Column) -> Column:
    """Convert a normalized address to 8 (IPv4) or 32 (IPv6) hex digits."""
    octets = F.split(ip, r"\.")
    ipv4_digits = F.concat(*[_octet_hex_digits(F.get(octets, index)) for index in range(4)])
    # Invalid text yields "", which no network prefix matches.
    ipv6_digits = F.concat_ws("", _expand_hextets(ip))
    return F.when(ip.rlike(_IPV4_PATTERN), ipv4_digits).otherwise(ipv6_digits)


def _ipv4_in_networks(ip: Column, networks: Sequence[_Network]) -> Column:
    """Test a valid dotted IPv4 address against IPv4 networks by comparing its leading octets as text.

    `substring_index` needs no regular expression or array, so the test stays cheap on every event.
    """
    whole_octet_prefixes: dict[int, list[str]] = {}
    tests: list[Column] = []
    for network in networks:
        octets = str(network.network_address).split(".")
        whole, partial_bits = divmod(network.prefixlen, 8)
        if not partial_bits:
            whole_octet_prefixes.setdefault(whole, []).append(".".join(octets[:whole]))
            continue
        # A prefix that ends inside an octet: whole octets as text, then the top bits of the next octet.
        next_octet = F.substring_index(F.substring_index(ip, ".", whole + 1), ".", -1).cast("int")
        shift = 8 - partial_bits
        top_bits = F.shiftright(next_octet, shift) == int(octets[whole]) >> shift
        tests.append(
            top_bits if not whole else (F.substring_index(ip, ".", whole) == ".".join(octets[:whole])) & top_bits
        )
    for whole, prefixes in sorted(whole_octet_prefixes.items()):
        tests.append(F.lit(True) if not whole else F.substring_index(ip, ".", whole).isin(prefixes))
    return reduce(or_, tests)


def _octet_hex_digits(octet: Column) -> Column:
    return F.lpad(F.lower(F.hex(octet.cast("int"))), 2, "0")


def _parse_cidr(cidr: str) -> _Network:
    try:
        return ipaddress.ip_network(cidr, strict=True)
    except ValueError as err:
        raise ValueError(f"invalid CIDR {cidr!r}: {err}") from err


def _prefix_matches(digits: Column, network: _Network) -> Column:
    """Compare the hex digits of an address with the network prefix.

    A prefix that ends inside a hex digit matches any digit that agrees in
    the masked bits, so `fc00::/7` allows `fc` and `fd`.
    """
    width = 8 if network.version == 4 else 32
    network_digits = f"{int(network.network_address):0{width}x}"
    whole_digits, partial_bits = divmod(network.prefixlen, 4)
    stem = network_digits[:whole_digits]
    prefixes = [stem]
    if partial_bits:
        first = int(network_digits[whole_digits], 16)
        partial_digits = range(first, first + 2 ** (4 - partial_bits))
        prefixes = [f"{stem}{digit:x}" for digit in partial_digits]

    prefix_length = len(prefixes[0])
    return (F.length(digits) == width) & F.substring(digits, 1, prefix_length).isin(prefixes)


def subnet_of(ip: Column, v4_prefix: int, v6_prefix: int) -> Column:
    """Return the network of a normalized address as CIDR text: `10.1.2.0/24`, or `fd00:0:0:1::/64`.

    The IPv6 prefix is rounded down to whole hextets. Text that is not an
    address gives NULL.
    """
    octets = F.split(ip, r"\.")
    as_int = F.aggregate(
        F.transform(octets, lambda octet: octet.cast("long")),
        F.lit(0).cast("long"),
        lambda acc, octet: acc * 256 + octet,
    )
    masked = F.shiftleft(F.shiftright(as_int, 32 - v4_prefix), 32 - v4_prefix)
    v4 = F.concat(
        F.concat_ws(".", *[(F.shiftright(masked, shift) % 256).cast("string") for shift in (24, 16, 8, 0)]),
        F.lit(f"/{v4_prefix}"),
    )
    kept = v6_prefix // 16
    hextets = F.slice(_expand_hextets(ip), 1, kept)
    v6 = F.concat(
        F.concat_ws(":", F.transform(hextets, lambda h: F.regexp_replace(h, "^0{1,3}", ""))),
        F.lit(f"::/{kept * 16}"),
    )
    return (
        F.when(ip.rlike(r"^\d{1,3}(\.\d{1,3}){3}$") & (F.size(octets) == 4), v4)
        .when(ip.contains(":") & (F.size(hextets) == kept), v6)
        .otherwise(F.lit(None).cast("string"))
    )
