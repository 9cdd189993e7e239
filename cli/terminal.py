"""Text for a terminal: what kassa prints never carries a control character of its data.

Item names and store ids come from the registers, and an escape sequence in one would
retitle or recolour the terminal, or a newline break a table. :func:`printable` writes every
control character (C0, DEL, C1) and every bidirectional override as a visible escape
(``\\x1b``, ``\\u202e``); the CLI's tables, lists, error lines and human-readable log lines go
through it.
"""

from __future__ import annotations

import json
import logging
from typing import Final

_BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_ESCAPES: Final = {
    code: _escape(chr(code))
    for code in [*range(0x20), *range(0x7F, 0xA0), *map(ord, _BIDI_CONTROLS)]
}


def printable(text: str) -> str:
    """``text`` with each control character written as a visible escape."""
    return text.translate(_ESCAPES)


_JSON_ESCAPES: Final = {code: f"\\u{code:04x}" for code in _ESCAPES if code >= 0x7F}


def printable_json(value: object) -> str:
    """``value`` as JSON for a terminal: characters JSON allows raw but a terminal obeys
    (DEL, C1, bidirectional overrides) are written as ``\\u`` escapes too."""
    return json.dumps(value, ensure_ascii=False).translate(_JSON_ESCAPES)


def printable_lines(text: str) -> str:
    """Like :func:`printable`, but line breaks stay line breaks (a multi-line message)."""
    return "\n".join(printable(line) for line in text.split("\n"))


class PrintableFormatter(logging.Formatter):
    """A log formatter whose lines carry no control character (see :func:`printable`)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(super().format(record))
