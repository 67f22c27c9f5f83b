"""The id rule: what a customer or item id may be, in every layer (ingest, Redis, API, exports).

An id is any non-empty Unicode string of at most :data:`MAX_ID_LENGTH` characters (code
points) that

- contains no control character (Unicode category Cc: U+0000-U+001F and U+007F-U+009F;
  so no tab, newline or NUL),
- neither starts nor ends with whitespace (Unicode White_Space: space, no-break space,
  U+2000-U+200A, ideographic space, ...), so no two ids differ only by invisible padding,
- is encodable as UTF-8 (no lone surrogates).

Everything else is fine: spaces inside, parentheses, commas, slashes, quotes, ``#``, ``%``,
``?``, ``&``, ``+``, ``{}``, non-ASCII letters (``tropical fruit``, ``liquor (appetizer)``,
``sku,1``, ``Größe-42``, ``商品123``). Ids are compared byte for byte (no case folding, no
Unicode normalisation): ``é`` written precomposed and decomposed are two ids.

Ingest strips padding around a field before checking it (a padded export is fine, the
stored id is stripped); every other layer rejects a padded id. The rule keeps the store's
separators safe: the Redis encoding joins ids with U+001F and newlines, which no id holds.

This module is the rule's only definition. :func:`check_id` checks one value (the API,
the store, the CLI); :data:`ID_PATTERN` is the same rule as a regular expression, valid in
Python ``re`` and in polars (Rust ``regex``), for the vectorised ingest check
(``features.validate``), used together with a length check (``len_chars() <= MAX_ID_LENGTH``).
Standard library only: the serving process imports it.
"""

from __future__ import annotations

import re

__all__ = ["ID_PATTERN", "MAX_ID_LENGTH", "WHITESPACE", "check_id", "is_valid_id"]

MAX_ID_LENGTH = 256
"""Longest id, in characters (Unicode code points; at most 1,024 UTF-8 bytes)."""

_CONTROL = r"\x00-\x1f\x7f-\x9f"
"""Unicode Cc, as a character-class body."""

WHITESPACE = (
    "\t\n\v\f\r\x85"  # (controls)
    " \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
"""Unicode White_Space (what Python's ``str.strip()`` and polars' ``strip_chars()`` remove,
apart from controls, which are excluded anyway)."""

_SPACE = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""The White_Space characters that are not controls, as a character-class body."""

ID_PATTERN = rf"^[^{_CONTROL}{_SPACE}](?:[^{_CONTROL}]*[^{_CONTROL}{_SPACE}])?$"
"""The rule without its length limit: a first and a last character that are neither control
nor whitespace, only non-control characters between. Written with ``\\xhh``/``\\uhhhh``
escapes only, which Python ``re`` and Rust ``regex`` read alike. In Python use it with
:func:`re.fullmatch` (``$`` alone would also match before a final newline)."""

_ID_RE = re.compile(ID_PATTERN)
_CONTROL_RE = re.compile(f"[{_CONTROL}]")
_SURROGATE_RE = re.compile("[\\ud800-\\udfff]")  # (Python strings only: polars has none)


def check_id(value: object, what: str = "id") -> str:
    """``value`` when it is a valid id, else :class:`ValueError` naming ``what`` and the
    problem (empty, too long, which control character where, padding, not UTF-8)."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if (
        len(value) <= MAX_ID_LENGTH
        and _ID_RE.fullmatch(value)
        and (value.isascii() or not _SURROGATE_RE.search(value))
    ):
        return value
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{what} has {len(value)} characters; at most {MAX_ID_LENGTH} are allowed")
    found = _CONTROL_RE.search(value)
    if found:
        char = found.group()
        raise ValueError(
            f"{what} {_shown(value)} contains the control character U+{ord(char):04X} "
            f"at position {found.start()}; "
            "ids may not contain control characters (tab, newline, ...)"
        )
    if value[0] in WHITESPACE or value[-1] in WHITESPACE:
        raise ValueError(
            f"{what} {_shown(value)} starts or ends with whitespace; ids may not be padded"
        )
    surrogate = _SURROGATE_RE.search(value)
    if surrogate:
        raise ValueError(
            f"{what} {_shown(value)} is not valid Unicode (a lone surrogate at position "
            f"{surrogate.start()}): it cannot be written as UTF-8"
        )
    raise ValueError(f"{what} {_shown(value)} is not a valid id")  # pragma: no cover


def is_valid_id(value: object) -> bool:
    """Whether :func:`check_id` accepts ``value``."""
    try:
        check_id(value)
    except ValueError:
        return False
    return True


def _shown(value: str, limit: int = 60) -> str:
    """``value`` for a message: its repr (escapes shown), cut after ``limit`` characters."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."
