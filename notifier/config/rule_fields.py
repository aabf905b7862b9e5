"""The rule keys beyond the core ones: their converters, read by ``schema._rule``.

Pure, like the rest of the schema: each converter raises Invalid with the fix.
"""

from __future__ import annotations

import re
from typing import Any

from notifier.config.fields import Conv, Invalid, Reader, boolean, choice, describe, text
from notifier.config.model import LINK_TYPES
from notifier.config.yaml import Path
from notifier.util.regex import PatternError, compile_pattern

__all__ = ["LINK_TYPES", "RULE_EXTRA_KEYS", "read_rule_extras"]

RULE_EXTRA_KEYS = ("keywords_all", "exclude_keywords", "regex", "has_links", "link_type",
                   "users", "exclude_users")
_USER_ID = re.compile(r"usr_[0-9a-z]+")


def _user_id(value: Any, shown: str) -> str:
    user = text(value, shown).strip()
    if not _USER_ID.fullmatch(user):
        raise Invalid(f"must be a Roomlio user id like usr_bvr0h6tnf4q1u52mfisg (got {shown})")
    return user


def _pattern(rule: str) -> Conv[str]:
    def convert(value: Any, shown: str) -> str:
        pattern = text(value, shown)
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            raise Invalid(f"rule {describe(rule)}: invalid regex {shown}: {exc}") from None
        return pattern

    return convert


def read_rule_extras(r: Reader, m: dict[str, Any], path: Path, name: str) -> dict[str, Any]:
    """The Rule fields of the extra keys present in ``m`` (as Rule(**…) arguments)."""
    out: dict[str, Any] = {}
    for key, conv in (("keywords_all", text), ("exclude_keywords", text),
                      ("regex", _pattern(name))):
        if key in m:
            out[key] = r.values(m, path, key, conv) or ()
    for key, conv in (("link_type", choice(LINK_TYPES, "link type")),
                      ("users", _user_id), ("exclude_users", _user_id)):
        if key in m:
            out[key] = frozenset(r.values(m, path, key, conv) or ())
    if "has_links" in m:
        out["has_links"] = r.value(m, path, "has_links", boolean, None)
    return out
