"""Redaction of credentials in process command lines, applied before any row is written.

The rules are applied to the command line of every written event and to the
raw text of every quarantined row. Each pattern keeps the option (group 1)
and replaces the secret that follows with `[REDACTED]`. The patterns are Java
regular expressions, case-insensitive. A secret is a quoted string or a run
of characters up to the next space or double quote, so a secret inside JSON
text does not swallow the closing quote.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

REDACTED = "[REDACTED]"
_SECRET = r"(\"[^\"]*\"|'[^']*'|[^\s\"]+)"

CREDENTIAL_PATTERNS: tuple[tuple[str, str], ...] = (
    # net use [Z:] \\host\share /user:NAME SECRET
    (
        rf"(?i)(\bnet(?:\.exe)?\s+use\b[^\r\n\"]*?/u(?:ser)?:[^\s\"]+\s+)(?![/\"])(?!\*(?:\s|$)){_SECRET}",
        rf"$1{REDACTED}",
    ),
    # net use [Z:] \\host\share SECRET /user:NAME
    (rf"(?i)(\bnet(?:\.exe)?\s+use\s+(?:[a-z]:\s+|\*\s+)?\\\\[^\s\"]+\s+)(?![/\"*]){_SECRET}", rf"$1{REDACTED}"),
    # net user NAME SECRET [/add]
    (rf"(?i)(\bnet1?(?:\.exe)?\s+user\s+[^\s/\"]+\s+)(?![/\"*]){_SECRET}", rf"$1{REDACTED}"),
    # PsExec, schtasks, evil-winrm, crackmapexec: -p SECRET, /p SECRET
    (rf"(?i)(\s[-/]p\s+){_SECRET}", rf"$1{REDACTED}"),
    # wmic /password:SECRET, cmdkey /pass:SECRET, /p:SECRET
    (rf"(?i)(\s/p(?:ass(?:word)?)?:){_SECRET}", rf"$1{REDACTED}"),
    # Mimikatz pass-the-hash and ticket options
    (rf"(?i)(\s/(?:ntlm|rc4|aes128|aes256):){_SECRET}", rf"$1{REDACTED}"),
    # --password=SECRET, --password SECRET, -Password SECRET, password=SECRET
    (rf"(?i)(-{{1,2}}pass(?:word|wd)?[=\s]+){_SECRET}", rf"$1{REDACTED}"),
    (rf"(?i)(\bpass(?:word|wd)?=){_SECRET}", rf"$1{REDACTED}"),
    # Impacket -hashes LM:NT, crackmapexec -H HASH
    (rf"(?i)(\s-(?:hashes|(?-i:H))\s+){_SECRET}", rf"$1{REDACTED}"),
    # PowerShell: ConvertTo-SecureString [-String] 'SECRET' -AsPlainText
    (rf"(?i)(ConvertTo-SecureString\s+(?:-String\s+)?){_SECRET}", rf"$1{REDACTED}"),
    # Impacket targets: [domain/]user:password@host
    (r"(?i)(\s[\w.\\-]+/?[\w.$-]*:)[^\s@:/\"]+(@[\w.-]+)", rf"$1{REDACTED}$2"),
)


def redact_command_line(column: Column) -> Column:
    """Replace passwords and hashes in a command line with `[REDACTED]`."""
    redacted = column
    for pattern, replacement in CREDENTIAL_PATTERNS:
        redacted = F.regexp_replace(redacted, pattern, replacement)
    return redacted
