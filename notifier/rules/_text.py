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

ASCII text (most chat messages) takes an exact shortcut: NFKC leaves ASCII unchanged and
case-folds it as ``lower()`` does, and its tokens are then the runs of ``a-z0-9``, found
by one byte translation and a split (``token_keys``). The index works on tokens as UTF-8
bytes so that this shortcut never decodes; ``unicode_*`` are the long way round, which
the tests compare with it.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable

__all__ = [
    "ASCII_WORDS",
    "KeywordIndex",
    "contains",
    "normalize",
    "token_keys",
    "tokens",
    "unicode_normalize",
    "unicode_token_keys",
]

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
    # NFKC leaves ASCII unchanged, and case-folding ASCII is lower(): the same, quicker
    return text.lower() if text.isascii() else unicode_normalize(text)


def unicode_normalize(text: str) -> str:
    """``normalize`` without the ASCII shortcut (the property tests compare the two)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def tokens(text: str) -> list[str]:
    """The word tokens of ``text`` after normalisation."""
    return _token_pattern().findall(normalize(text))


#: Byte → itself for a-z and 0-9, its lower case for A-Z, a space for anything else.
ASCII_WORDS = bytes(c | 0x20 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122
                     else 32 for c in range(256))


def token_keys(text: str) -> list[bytes]:
    """``tokens(text)``, each as UTF-8 bytes: how the keyword index looks words up.

    ASCII text takes a shortcut: normalised, it is only lower-cased, and a token is then a
    run of ``a-z0-9``, so one byte translation and a split give the same tokens.
    """
    if text.isascii():
        return text.encode().translate(ASCII_WORDS).split()
    return unicode_token_keys(text)


def unicode_token_keys(text: str) -> list[bytes]:
    """``token_keys`` without the ASCII shortcut (the property tests compare the two)."""
    return [token.encode() for token in _token_pattern().findall(unicode_normalize(text))]


class KeywordIndex:
    """Every keyword of every rule: ``find`` names those a text holds in one pass over it.

    A keyword's key is its tokens joined by single spaces, in UTF-8 (``b"cancel my
    account"``); keywords that normalise alike share a key. One-token keywords are found
    by one set intersection with the text's tokens; a phrase is looked for only when its
    first token is there, as `` phrase `` in the text's tokens joined by spaces (tokens
    hold no spaces, so that is exactly "these tokens, consecutive"). The cost grows with
    the length of the text, not with the number of keywords or rules.
    """

    __slots__ = ("_phrases", "_singles", "_split", "_starts")

    def __init__(self, *, ascii_fast_path: bool = True) -> None:
        self._singles: set[bytes] = set()
        self._starts: set[bytes] = set()
        self._phrases: dict[bytes, list[tuple[bytes, bytes]]] = {}
        """first token → (the key padded with spaces, the key), one per phrase."""
        self._split = token_keys if ascii_fast_path else unicode_token_keys

    def __len__(self) -> int:
        return len(self._singles) + sum(map(len, self._phrases.values()))

    def keys(self) -> set[bytes]:
        """Every keyword's key."""
        return self._singles.union(key for entries in self._phrases.values()
                                   for _, key in entries)

    def add(self, keyword: str) -> bytes | None:
        """The key of ``keyword`` (one per distinct token sequence); None if it has no words."""
        toks = [token.encode() for token in tokens(keyword)]
        key = b" ".join(toks)
        if len(toks) == 1:
            self._singles.add(key)
        elif toks:
            entries = self._phrases.setdefault(toks[0], [])
            if all(key != known for _, known in entries):
                entries.append((b" " + key + b" ", key))
            self._starts.add(toks[0])
        return key or None

    @property
    def split_function(self) -> Callable[[str], list[bytes]]:
        """text → its tokens, as ``find_keys`` and ``keys`` spell them."""
        return self._split

    def find(self, text: str) -> set[bytes]:
        """Keys of every keyword present in ``text`` as whole words or phrases."""
        return self.find_keys(self._split(text))

    def find_keys(self, toks: list[bytes]) -> set[bytes]:
        """Keys of every keyword present in ``toks`` (from ``split_function``)."""
        found = self._singles.intersection(toks)
        starts = self._starts.intersection(toks) if self._starts else None
        if starts:
            joined = b" " + b" ".join(toks) + b" "
            found.update(key for first in starts for padded, key in self._phrases[first]
                         if padded in joined)
        return found


def contains(outer: Iterable[str], inner: Iterable[str]) -> bool:
    """Whether the token sequence ``inner`` occurs in ``outer`` (both already tokens)."""
    big, small = tuple(outer), tuple(inner)
    return any(big[i:i + len(small)] == small for i in range(len(big) - len(small) + 1))
