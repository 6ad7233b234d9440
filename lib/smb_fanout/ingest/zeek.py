"""Adapter for Zeek logs: `conn.log`, and the SMB-layer logs as evidence of SMB sessions.

Zeek writes TSV with `#fields` headers or JSON Lines. JSON field names are
dotted (`id.orig_h`, Zeek and Corelight) or underscored (`id_orig_h`, HELK
and Mordor), and some shippers nest them (`"id": {"orig_h": ...}`). The log
type comes from `_path`, `@stream`, the TSV `#path` line or the file name.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from smb_fanout.ingest.columns import (
    adapter_output,
    blank_to_null,
    field,
    first_field,
    nested,
    protocol_name,
    value,
    with_values,
)
from smb_fanout.ingest.normalize import parse_event_time
from smb_fanout.ipaddr import normalize_ip

CONN_LOG = "conn"
# Logs written per SMB or RPC exchange; each names the TCP connection it ran on.
# A `conn.log` row of the same connection wins over them (lower priority value).
EVIDENCE_LOGS = {"smb_mapping": 1, "ntlm": 2, "smb_files": 3, "dce_rpc": 4}
_LOG_NAME_PATTERN = r"(conn|smb_mapping|smb_files|ntlm|dce_rpc)"

# conn_state values of a connection that was established (`SF`, `S1`-`S3`,
# `RSTO`, `RSTR`) or not (`S0` no answer, `REJ` refused, the half-open
# states). `OTH` (midstream traffic) and unknown states stay `unknown`.
SUCCESS_STATES = ("SF", "S1", "S2", "S3", "RSTO", "RSTR")
FAILURE_STATES = ("S0", "REJ", "RSTOS0", "RSTRH", "SH", "SHR")
_SECONDS_PER_DAY = 86400


def _id_field(name: str) -> Column:
    """One of the connection id fields (`orig_h`, `orig_p`, `resp_h`, `resp_p`) in any naming."""
    return F.coalesce(first_field(f"id.{name}", f"id_{name}"), nested("id", f"$.{name}"))


def log_type() -> Column:
    """The Zeek log a row comes from, in lowercase."""
    file_name = F.regexp_extract(F.col("source_file"), r"([^/\\]+)$", 1)
    from_name = blank_to_null(F.regexp_extract(F.lower(file_name), _LOG_NAME_PATTERN, 1))
    from_fields = F.when(field("conn_state").isNotNull(), F.lit(CONN_LOG))
    return F.lower(
        F.coalesce(field("_path"), field("@stream"), blank_to_null(F.col("_zeek_path")), from_name, from_fields)
    )


def _epoch_day(ts: Column) -> Column:
    """The UTC day number of a Zeek `ts` (epoch seconds or ISO-8601), independent of the session time zone."""
    return F.floor(F.unix_micros(parse_event_time(ts)) / (_SECONDS_PER_DAY * 1_000_000))


def zeek_events(df: DataFrame) -> DataFrame:
    """Adapt Zeek `conn` and SMB-layer log rows to canonical outbound events of the originator.

    Needs `_parsed`, `_zeek_path` and `source_file`. Zeek's originator is
    the initiator, so each row is an outbound event of host `ip:<id.orig_h>`.
    The event id is the connection's 5-tuple and UTC day, not Zeek's `uid`:
    two sensors give one connection different uids, and the SMB-layer logs
    of a connection then count once, with its `conn.log` row when there is one.
    """
    df = with_values(
        df,
        {
            "kind": log_type(),
            "orig_h": _id_field("orig_h"),
            "orig_p": _id_field("orig_p"),
            "resp_h": _id_field("resp_h"),
            "resp_p": _id_field("resp_p"),
            "ts": field("ts"),
        },
    )
    kind = value("kind")
    is_conn = kind == CONN_LOG
    is_evidence = kind.isin(*EVIDENCE_LOGS)
    orig_p, resp_h, resp_p, ts = value("orig_p"), value("resp_h"), value("resp_p"), value("ts")
    orig_h = value("orig_h")
    protocol = F.when(is_conn, protocol_name(field("proto"))).otherwise(F.lit("tcp"))
    df = with_values(df, {"orig_ip": normalize_ip(orig_h), "resp_ip": normalize_ip(resp_h), "day": _epoch_day(ts)})

    state = F.upper(field("conn_state"))
    ntlm_success = F.lower(field("success"))
    outcome = (
        F.when(is_conn & state.isin(*SUCCESS_STATES), F.lit("success"))
        .when(is_conn & state.isin(*FAILURE_STATES), F.lit("failure"))
        .when(is_conn, F.lit("unknown"))
        .when(ntlm_success.isin("f", "false"), F.lit("failure"))
        .otherwise(F.lit("success"))
    )
    normalized_orig = value("orig_ip")
    connection = (normalized_orig, orig_p, value("resp_ip"), resp_p, protocol, value("day"))
    event_key = F.when(
        normalized_orig.isNotNull() & resp_h.isNotNull() & ts.isNotNull(),
        F.sha2(F.concat_ws("|", F.lit("zeek"), *connection), 256),
    )
    domain_user = F.when(field("username").isNotNull(), F.concat_ws("\\", field("domainname"), field("username")))
    # The NTLM user name sometimes carries a password typed as `user:password`.
    user_name = F.regexp_replace(domain_user, r":.*$", ":[REDACTED]")
    priority = F.when(is_conn, F.lit(0))
    for name, rank in EVIDENCE_LOGS.items():
        priority = priority.when(kind == name, F.lit(rank))

    columns = {
        "event_id": event_key,
        "event_time": ts,
        "host_id": F.when(orig_h.isNotNull(), F.concat(F.lit("ip:"), F.coalesce(normalized_orig, orig_h))),
        "local_ip": orig_h,
        "local_port": orig_p,
        "remote_ip": resp_h,
        "remote_port": resp_p,
        "direction": F.lit("outbound"),
        "protocol": protocol,
        "outcome": outcome,
        "user_name": user_name,
        "_priority": priority,
    }
    reason = F.when(kind.isNull(), F.lit("unknown_zeek_log")).when(
        ~(is_conn | is_evidence), F.concat(F.lit("unsupported_zeek_log:"), kind)
    )
    source_format = F.when(is_conn, F.lit("zeek_conn")).otherwise(F.lit("zeek_smb"))
    return adapter_output(df, columns, reason, source_format)
