"""How text is compared: normalisation, word tokens, and one index of every keyword.

Both keywords and message bodies are normalised (NFKC, case-fold, NFKC again) and split
into word tokens. A token is either

* a run of letters, digits and combining marks of a script written with spaces
  (Latin, Cyrillic, Greek, Arabic, Devanagari, Hangul …): ``refund``, ``hindī``; or
* one single letter, digit or mark of a script written without spaces (Han, Hiragana,
  Katakana, Thai, Lao, Khmer, Myanmar), so a keyword in those scripts matches as a
  substring.

Everything else (spaces, punctuation, emoji, symbols, ``_``) separates tokens, and a
change between the two kinds is a boundary too: ``refund`` matches "退款refund请求" and
"refund🙂", while ``退款`` matches "我要退款了". A keyword matches a run of consecutive
tokens equal to its own tokens, so a whole keyword never matches part of a word.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Iterable

__all__ = ["KeywordIndex", "contains", "normalize", "tokens"]

#: Scripts written without spaces between words: each letter, digit or mark is a token.
_UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),                      # Thai, Lao
    (0x1000, 0x109F),                      # Myanmar
    (0x1780, 0x17FF),                      # Khmer
    (0x2E80, 0x2FDF),                      # CJK radicals
    (0x3005, 0x3007), (0x3021, 0x3029), (0x3038, 0x303C),  # ideographic marks, numerals
    (0x3040, 0x30FF), (0x31F0, 0x31FF),    # Hiragana, Katakana
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),  # Han
    (0x20000, 0x3134F),                    # Han, supplementary planes
)


def _char_class(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(f"{chr(a)}-{chr(b)}" for a, b in ranges)


def _unspaced(cp: int) -> bool:
    return any(a <= cp <= b for a, b in _UNSPACED_RANGES)


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    """Built on first use: the combining marks take a scan of the Unicode tables."""
    unspaced = _char_class(_UNSPACED_RANGES)
    inside, outside = _mark_ranges()
    one = f"(?=[{unspaced}])(?:[^\\W_]|[{_char_class(inside)}])"
    run = f"(?:[^\\W_{unspaced}]|[{_char_class(outside)}])+"
    return re.compile(f"{one}|{run}")


def _mark_ranges() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The combining marks' code point ranges: inside the unspaced scripts, and outside."""
    inside: list[tuple[int, int]] = []
    outside: list[tuple[int, int]] = []
    start = previous = -1
    current: list[tuple[int, int]] | None = None
    # marks live below U+20000 and in U+E0100..E01EF (variation selectors) only
    for cp in (*range(0x20000), *range(0xE0100, 0xE01F0), sys.maxunicode + 1):
        is_mark = cp <= sys.maxunicode and unicodedata.category(chr(cp)).startswith("M")
        kind = (inside if _unspaced(cp) else outside) if is_mark else None
        if kind is not current or cp != previous + 1:
            if current is not None:
                current.append((start, previous))
            start, current = cp, kind
        previous = cp
    return inside, outside


def normalize(text: str) -> str:
    """NFKC, then case-fold (ß → ss, ﬁ → fi, Ｒ → r): how all text is compared."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def tokens(text: str) -> list[str]:
    """The word tokens of ``text`` after normalisation."""
    return _token_pattern().findall(normalize(text))


class KeywordIndex:
    """Every keyword of every rule, indexed by its first token: one pass finds them all.

    The cost of ``find`` grows with the length of the text and the number of keywords
    sharing a first token, not with the number of keywords or rules.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[str, ...], int] = {}
        self._by_first: dict[str, list[tuple[tuple[str, ...], int]]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, keyword: str) -> int | None:
        """The id of ``keyword`` (one per distinct token sequence); None if it has no words."""
        toks = tuple(tokens(keyword))
        if not toks:
            return None
        kid = self._ids.get(toks)
        if kid is None:
            kid = self._ids[toks] = len(self._ids)
            self._by_first.setdefault(toks[0], []).append((toks, kid))
        return kid

    def find(self, text: str) -> set[int]:
        """Ids of every keyword present in ``text`` as whole words or phrases."""
        return self.find_tokens(tokens(text))

    def find_tokens(self, toks: list[str]) -> set[int]:
        """Ids of every keyword present in the token list ``toks``."""
        found: set[int] = set()
        by_first = self._by_first
        for i, tok in enumerate(toks):
            for kw, kid in by_first.get(tok, ()):
                if len(kw) == 1 or tuple(toks[i:i + len(kw)]) == kw:
                    found.add(kid)
        return found


def contains(outer: Iterable[str], inner: Iterable[str]) -> bool:
    """Whether the token sequence ``inner`` occurs in ``outer`` (both already tokens)."""
    big, small = tuple(outer), tuple(inner)
    return any(big[i:i + len(small)] == small for i in range(len(big) - len(small) + 1))
