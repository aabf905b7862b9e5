"""A decoded JSON page's fields looked up by the page's own key objects.

A JSON decoder gives every object of a page the same key objects (orjson caches them),
and a dict finds a key that *is* the object it holds without comparing text: looking a
page's fields up by its first message's own keys costs about half as much as by string
constants equal to them. Any other key object finds the same value, only slower.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_KEYS", "own_keys"]

#: A first message with more keys than this is not searched for the page's key objects.
MAX_KEYS = 64


def own_keys(first: object, names: Sequence[str]) -> tuple[str, ...]:
    """``names``, each replaced by the key of ``first`` equal to it where ``first`` is a
    dict that has one (of at most ``MAX_KEYS`` keys); the names themselves otherwise."""
    if type(first) is not dict or len(first) > MAX_KEYS:
        return tuple(names)
    own = {key: key for key in first}
    return tuple(own.get(name, name) for name in names)
