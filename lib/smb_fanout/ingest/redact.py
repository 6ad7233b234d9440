"""Redaction of credentials in process command lines, applied before any row is written."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

REDACTED = "[REDACTED]"

# Each pattern keeps the option (group 1) and replaces the secret that follows.
# Java regular expressions, case-insensitive.
CREDENTIAL_PATTERNS: tuple[tuple[str, str], ...] = (
    # net use \\host\share SECRET /user:NAME  and  net use \\host /user:NAME SECRET
    (r"(?i)(\bnet(?:\.exe)?\s+use\s+\S+\s+/user:\S+\s+)(?!/)\S+", rf"$1{REDACTED}"),
    (r"(?i)(\bnet(?:\.exe)?\s+use\s+\\\\\S+\s+)(?!/)(\S+)(\s+/user:)", rf"$1{REDACTED}$3"),
    # PsExec and similar: -p SECRET, /p:SECRET
    (r"(?i)(\s-p\s+)(\"[^\"]*\"|\S+)", rf"$1{REDACTED}"),
    (r"(?i)(\s/p(?:assword)?:)(\"[^\"]*\"|\S+)", rf"$1{REDACTED}"),
    # --password=SECRET, --password SECRET, -password SECRET, password=SECRET
    (r"(?i)(-{1,2}pass(?:word|wd)?[=\s]+)(\"[^\"]*\"|\S+)", rf"$1{REDACTED}"),
    (r"(?i)(\bpass(?:word|wd)?=)(\"[^\"]*\"|\S+)", rf"$1{REDACTED}"),
    # Impacket: -hashes LM:NT, and user:password@host targets
    (r"(?i)(-hashes\s+)\S+", rf"$1{REDACTED}"),
    (r"(?i)(\s[\w.\\-]+/?[\w.-]*:)[^\s@:/]+(@[\w.-]+)", rf"$1{REDACTED}$2"),
)


def redact_command_line(column: Column) -> Column:
    """Replace passwords and hashes in a command line with `[REDACTED]`."""
    redacted = column
    for pattern, replacement in CREDENTIAL_PATTERNS:
        redacted = F.regexp_replace(redacted, pattern, replacement)
    return redacted
