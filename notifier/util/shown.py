"""Remote text made fit for a log line, an error message or a terminal.

Chat messages, Roomlio's error answers and receivers' error bodies are written by other
parties. Any character that is not printable (``str.isprintable``: the C0 and C1
controls, DEL, line and paragraph separators, the bidirectional overrides and marks,
other format characters, lone surrogates, unassigned code points, spaces other than
" ") could end a line for some reader (terminals, ``str.splitlines``, log shippers),
repaint the operator's terminal, or hide what the text says; each is written as its
Python escape (``\\n``, ``\\x1b``, ``\\u2028``, ``\\U000e0041``) instead. One rule
serves the logs, the Roomlio client and delivery errors, so none lets through what
another escapes.
"""

from __future__ import annotations

__all__ = ["ELLIPSIS", "escape", "shown"]

#: What ends a text that was cut short.
ELLIPSIS = "…"


def _escaped(char: str) -> str:
    """One character as itself when printable, else as its Python escape."""
    return char if char.isprintable() else ascii(char)[1:-1]


def escape(text: str) -> str:
    """``text`` with every character that is not printable escaped."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(map(_escaped, text))


def shown(text: str, limit: int = 200) -> str:
    """``text`` escaped; when that is longer than ``limit`` characters, its first ``limit``
    at most (never cut in the middle of an escape), followed by ``…``."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    kept: list[str] = []
    room = limit
    for piece in map(_escaped, text):
        room -= len(piece)
        if room < 0:
            break
        kept.append(piece)
    return "".join(kept) + ELLIPSIS
