"""How text is compared: normalisation, word tokens, and one index of every keyword.

Both keywords and message bodies are normalised (NFKC, case-fold, NFKC again) and split
into word tokens. A token is either

* a run of letters, digits and combining marks of a script written with spaces
  (Latin, Cyrillic, Greek, Arabic, Devanagari, Hangul …): ``refund``, ``hindī``; or
* one single character of a script written without spaces (Han, Hiragana, Katakana,
  Thai, Lao, Khmer, Myanmar), so a keyword in those scripts matches as a substring.

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

#: Scripts written without spaces between words: each character is a token.
_UNSPACED = (
    "\u0e00-\u0eff"            # Thai, Lao
    "\u1000-\u109f"            # Myanmar
    "\u1780-\u17ff"            # Khmer
    "\u2e80-\u2fdf"            # CJK radicals
    "\u3005-\u3007\u3021-\u3029\u3038-\u303c"  # ideographic iteration marks and numerals
    "\u3040-\u30ff\u31f0-\u31ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\U00020000-\U0003134f"    # Han, supplementary planes
)


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    """Built on first use: the combining marks take a scan of the Unicode tables."""
    marks = "".join(f"{chr(a)}-{chr(b)}" for a, b in _mark_ranges())
    # a mark of an unspaced script (Thai ั) is a token of its own, even after a Latin letter
    spaced = f"(?:[^\\W_{_UNSPACED}]|(?![{_UNSPACED}])[{marks}])+"
    return re.compile(f"[{_UNSPACED}]|{spaced}")


def _mark_ranges() -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    start = None
    # each span ends on a code point that is no mark, so no range runs on past it
    for cp in (*range(0x20000), *range(0xE0100, 0xE01F1), sys.maxunicode + 1):
        is_mark = cp <= sys.maxunicode and unicodedata.category(chr(cp)).startswith("M")
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            ranges.append((start, cp - 1))
            start = None
    return ranges


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
