"""Validation and quoting of catalog, schema and table names before they reach SQL."""

from __future__ import annotations

import re

# Unity Catalog allows more characters in quoted names, but names from
# configuration are restricted to letters, digits and underscores so that no
# value can change the meaning of a SQL statement.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


def validate_identifier(name: str) -> str:
    """Return `name` unchanged when it is a safe SQL identifier.

    Raises:
        ValueError: the name is empty, too long, or has characters other than
            letters, digits and underscores.
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"invalid identifier {name!r}: use 1-255 letters, digits or underscores, not starting with a digit"
        )
    return name


def quote_identifier(name: str) -> str:
    """Validate `name` and wrap it in backticks."""
    return f"`{validate_identifier(name)}`"


def qualified_name(*parts: str) -> str:
    """Join validated parts into a backtick-quoted `a`.`b`.`c` name."""
    return ".".join(quote_identifier(part) for part in parts)
