"""Making server text safe for a terminal. Pure.

A server controls its header bytes, and a terminal obeys escape sequences: ``\\x1b]52;...`` can set
the clipboard, ``\\x1b[2J`` clears the screen, a C1 ``\\x9b`` is a CSI on some terminals, and bidi
overrides reorder what a person reads. Every such character is shown as an escape instead.
"""

from __future__ import annotations

_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_UNSAFE = [c for c in range(0x20) if c != 0x09] + [0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_INVISIBLE = (0x00AD, *range(0x200B, 0x200E), 0x2060, 0xFEFF)
"""Characters that take no room on a screen (soft hyphen, zero-width space and joiners, word
joiner, byte-order mark): shown, so that a line holding one is seen to differ and ``grep`` on
what is seen finds it."""


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_TERMINAL_TABLE = {code: _escape(code) for code in (*_UNSAFE, *_BIDI, *_INVISIBLE)}
_JSON_TABLE = {
    code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0), *_BIDI, 0x2028, 0x2029)
}


def terminal_safe(text: str) -> str:
    """``text`` with every control, C1 and bidi-control character shown as ``\\xNN``/``\\uNNNN``."""
    if text.isprintable():
        # The common case, checked in C: every character escaped here is one that Python counts
        # as not printable (Cc, Cf, Zl, Zp), while translate() looks each character up in a dict.
        return text
    return text.translate(_TERMINAL_TABLE)


def cell_safe(text: str) -> str:
    """``terminal_safe``, and a tab shown as ``\\t`` too: for the views laid out in cells (the
    pretty blocks, the table), where a terminal would widen a tab to its next stop and push
    the rest of the line past the width, to be cut off unseen."""
    if text.isprintable():  # as in terminal_safe: a tab is not printable either
        return text
    return text.translate(_CELL_TABLE)


_CELL_TABLE = {**_TERMINAL_TABLE, 0x09: "\\t"}


def shown_target(text: str) -> str:
    """A target as the first field of a plain line: terminal-safe, and quoted (``'a b'``, ``''``)
    when it is empty or holds whitespace, so that the line never starts with a space and
    ``cut -d' ' -f1`` or ``awk '{print $1}'`` still finds the whole target there."""
    safe = terminal_safe(text)
    if safe and " " not in safe and safe.isprintable():  # the common case, checked in C
        return safe
    if safe and not any(char.isspace() for char in safe):
        return safe
    return f"'{safe}'"


def json_safe(encoded: str) -> str:
    """Escape, inside encoded JSON, what ``json.dumps`` leaves raw but a terminal would obey
    (DEL, C1, bidi controls, line separators). The JSON still decodes to the exact text."""
    if encoded.isascii() and "\x7f" not in encoded:
        return encoded  # the common case, checked in C: nothing to escape
    return encoded.translate(_JSON_TABLE)
