"""How a rules.yaml setting is declared: once, on the dataclass field that holds it.

``setting(default, conv, doc)`` is a dataclass field whose metadata carries the rest of the
declaration. The field gives the name and the type; its default is the default. The
schema's converter tables and known-key lists (``table``, ``declared``), and the reference
in docs/settings.md (``python -m notifier.config.reference``) are read from these fields,
so adding a setting is adding one field in ``model``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from notifier.config.fields import Conv

__all__ = ["Setting", "declared", "inherit", "one_or_list", "setting", "table"]

_KEY = "notifier.setting"


@dataclass(frozen=True)
class Setting:
    """One key of rules.yaml, as its dataclass field declares it."""

    key: str
    """The key in rules.yaml (the field's name unless the declaration says otherwise)."""
    conv: Conv[Any] | None
    """Reads and checks a value; None where the section's reader decides (rule filters)."""
    doc: str
    """What the setting is for, in one line (the reference's last column)."""
    default: Any
    """The default, or ``dataclasses.MISSING`` when the key is required."""
    kind: str
    """What a value looks like, for the reference (the converter's first docstring line)."""
    shown: str = ""
    """How the reference shows the default, when the value alone would not say it."""


def setting(default: Any, conv: Conv[Any] | None, doc: str, *, kind: str = "",
            key: str = "", shown: str = "",
            repr: bool = True,
            factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field declaring a setting (``dataclasses.MISSING``: required).

    ``key`` is the rules.yaml key when it is not the field's name; ``kind`` says what a value
    looks like when the converter's docstring does not; ``shown`` is the default as the
    reference says it, when the value would not (None meaning "every room").
    """
    meta = {_KEY: (key, conv, doc, kind, shown)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, repr=repr, metadata=meta)
    return dataclasses.field(default=default, repr=repr, metadata=meta)


def inherit(section: type, name: str) -> Any:
    """The field ``name`` of ``section`` again, same default and declaration: for a class
    whose values start as ``section``'s (a webhook's delivery settings start as
    ``delivery``'s), so that the default and the doc stay written once."""
    source = next(f for f in dataclasses.fields(section) if f.name == name)
    return dataclasses.field(default=source.default, repr=source.repr,
                             metadata={**source.metadata, _KEY + ".name": name})


def declared(cls: type) -> dict[str, Setting]:
    """The settings declared on ``cls``'s fields, by rules.yaml key, in field order."""
    out: dict[str, Setting] = {}
    for f in dataclasses.fields(cls):
        if _KEY not in f.metadata:
            continue
        if f.metadata.get(_KEY + ".name", f.name) != f.name:
            raise TypeError(f"{cls.__name__}.{f.name} inherits the setting "
                            f"{f.metadata[_KEY + '.name']}: the names must match")
        key, conv, doc, kind, shown = f.metadata[_KEY]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        out[key or f.name] = Setting(key or f.name, conv, doc, default,
                                     kind or _kind_of(conv), shown)
    return out


def table(cls: type, *, skip: tuple[str, ...] = ()) -> dict[str, Conv[Any]]:
    """The converter of each setting of ``cls`` (but ``skip``), as ``Reader.fields`` takes."""
    return {key: s.conv for key, s in declared(cls).items()
            if s.conv is not None and key not in skip}


def one_or_list(what: str | Iterable[str]) -> str:
    """A ``kind`` for a key that takes one value or a list: of ``what`` (words saying what,
    or the values allowed)."""
    if isinstance(what, str):
        return f"One or a list of {what}"
    return f"One or a list of: {', '.join(sorted(what))}"


def _kind_of(conv: Conv[Any] | None) -> str:
    doc = (getattr(conv, "__doc__", None) or "").strip().splitlines()
    return doc[0].rstrip(".") if doc else ""
