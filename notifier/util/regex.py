"""Rule patterns compiled with RE2: matching time linear in the text, whatever the pattern.

A chat user writes the text a rule's ``regex`` is searched in. With a backtracking engine
(Python's ``re``) a pattern like ``^(\\w+\\s?)*$`` takes exponential time on a 30-character
message and freezes the event loop; RE2 (as Prometheus and Alertmanager use, via Go's
``regexp``) never backtracks, at the price of refusing backreferences and lookaround.
``compile_pattern`` turns RE2's refusal into a message that says why and what to write.

Patterns are case-insensitive and searched (unanchored) in the normalised text, as
UTF-8 bytes: ``search`` takes the bytes so a message is encoded once for all patterns.
A pattern that is a plain ASCII word or phrase skips the engine (``in`` on the text).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

# re2 is imported by the first pattern compiled, not here: a config of keywords only never
# loads it, nor the C++ runtime it brings (bench/RESULTS.md, "Memory at 10,000 rooms, again").
if TYPE_CHECKING:
    import re2
    from re2 import _re2

__all__ = ["SYNTAX_URL", "LinearPattern", "PatternError", "compile_pattern"]

SYNTAX_URL = "https://github.com/google/re2/wiki/Syntax"
_MAX_MEM = 8 << 20
"""RE2's own default: a pattern whose compiled program needs more is refused."""
_LITERAL = re.compile(r"[A-Za-z0-9 ]+")

#: RE2's error text → why the pattern is refused and what to write instead.
_HINTS = (
    (re.compile(r"invalid perl operator: \(\?<?[=!]"),
     "lookahead and lookbehind are not supported; match the text itself, or put "
     "what must be absent in exclude_keywords"),
    (re.compile(r"invalid perl operator: \(\?P$"),  # RE2 stops at the P of (?P=name)
     "backreferences are not supported; spell out what may repeat"),
    (re.compile(r"invalid escape sequence: \\[1-9]"),
     "backreferences (\\1 …) are not supported; spell out what may repeat"),
    (re.compile(r"invalid escape sequence: \\Z"), "write \\z for the end of the text"),
    (re.compile(r"bad repetition operator: .[+]"),
     "possessive quantifiers are not needed: RE2 never backtracks; drop the second +"),
    (re.compile(r"invalid perl operator: \(\?>"),
     "atomic groups are not needed: RE2 never backtracks; write the group plainly"),
    (re.compile(r"invalid repetition size"), "a repeat count is at most 1000"),
    (re.compile(r"pattern too large"),
     "the compiled pattern is too large; shorten it or split it into several patterns"),
)


class PatternError(ValueError):
    """A pattern RE2 refuses; the message says why and what to write instead."""


class LinearPattern:
    """One compiled rule pattern: ``search(text_utf8)`` in time linear in the text."""

    __slots__ = ("_literal", "_regexp", "_unanchored", "pattern")

    def __init__(self, pattern: str, regexp: _re2.RE2 | None) -> None:
        self.pattern = pattern
        self._regexp = regexp
        self._unanchored = type(regexp).Anchor.UNANCHORED if regexp is not None else None
        self._literal = pattern.lower().encode() if regexp is None else b""

    def search(self, text: bytes) -> bool:
        """Whether the pattern occurs in ``text`` (the normalised text, UTF-8 encoded)."""
        if self._regexp is None:
            return self._literal in text
        # the C++ binding directly: re2.compile's wrapper adds a generator, a Match
        # object and offset decoding per call, more than RE2's own work on a chat line
        spans: list[tuple[int, int]] = self._regexp.Match(self._unanchored, text, 0, len(text))
        return spans[0][0] >= 0


def _options() -> re2.Options:
    import re2

    options = re2.Options()
    options.case_sensitive = False
    options.never_capture = True  # only "is it there" is asked: no groups to track
    options.log_errors = False  # a refused pattern is reported by check, not on stderr
    options.max_mem = _MAX_MEM
    return options


def compile_pattern(pattern: str) -> LinearPattern:
    """Compile ``pattern`` (RE2 syntax, case-insensitive); raise PatternError explaining a
    refusal."""
    from re2 import _re2

    regexp = _re2.RE2(pattern.encode(), _options())
    if not regexp.ok():
        raise PatternError(_explain(regexp.error()))
    # the literal shortcut: the normalised text is case-folded, and an ASCII letter,
    # digit or space matches case-insensitively only its own folded self
    return LinearPattern(pattern, None if _LITERAL.fullmatch(pattern) else regexp)


def _explain(error: bytes | str) -> str:
    text = error.decode(errors="replace") if isinstance(error, bytes) else error
    hint = next((hint for found, hint in _HINTS if found.search(text)), None)
    why = "rules use RE2 syntax, whose matching time is linear in the message length"
    return f"{text}: {hint}; {why} ({SYNTAX_URL})" if hint else \
        f"{text}; {why} ({SYNTAX_URL})"
