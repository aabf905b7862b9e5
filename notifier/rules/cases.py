"""Rule unit tests: cases read from YAML, each a message and the rules it must (not) match.

Pure: ``read_cases`` turns a parsed Doc into Cases (or problems with file:line);
``run_case`` checks one against a Matcher and says what differs. A case's message is
partial: ``complete_message`` fills the fields it leaves out with defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from notifier.config import Config
from notifier.config.fields import MISSING, Reader, choice, text
from notifier.config.yaml import Doc, Path
from notifier.errors import Problem
from notifier.events import NEVER_EDITED
from notifier.rules import Matcher, RuleMatch

__all__ = [
    "Case",
    "CaseResult",
    "complete_message",
    "describe",
    "read_cases",
    "room_names",
    "run_case",
    "summary",
]

CASE_KEYS = ("name", "message", "room", "event", "match", "no_match")
_EDITED_AT = "2026-01-01T00:05:00Z"


def complete_message(partial: Mapping[str, Any], *, index: int = 0,
                     room_id: str = "rm_test", edited: bool = False) -> dict[str, Any]:
    """A Roomlio-shaped message: ``partial`` over defaults for every field."""
    return {
        "id": f"msg_{index + 1}", "userID": "usr_case", "visibility": "", "username": "",
        "first": "", "last": "", "roomName": "", "userType": "member", "body": "",
        "messageType": "user", "links": [], "roomID": room_id,
        "createdAt": "2026-01-01T00:00:00Z",
        "editedAt": _EDITED_AT if edited else NEVER_EDITED, **partial,
    }


def room_names(config: Config, room: str | None) -> frozenset[str]:
    """The names a message's room goes by: ``room`` as given, else the first configured."""
    if room is not None:
        return frozenset({room})
    return frozenset({config.rooms[0].name}) if config.rooms else frozenset()


@dataclass(frozen=True)
class Case:
    """One rule unit test."""

    name: str
    line: int | None
    message: Mapping[str, Any]
    rooms: frozenset[str]
    kind: str
    match: tuple[str, ...]
    no_match: tuple[str, ...]


@dataclass(frozen=True)
class CaseResult:
    """A case run: ``diff`` is empty when it passed."""

    case: Case
    matched: tuple[str, ...]
    diff: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.diff


def read_cases(doc: Doc, file: str, config: Config) -> tuple[list[Case], list[Problem]]:
    """The cases in ``doc`` (a list, or a mapping with ``cases:``), checked against ``config``."""
    r = Reader(doc, file, lambda _path: False)
    data, base = doc.data, cast(Path, ())
    if isinstance(data, dict) and set(data) == {"cases"}:
        data, base = data["cases"], ("cases",)
    rule = choice([x.name for x in config.rules], "rule", "rules in the config")
    cases = []
    for i, item in enumerate(r.sequence(data if data is not None else [], base)):
        path: Path = (*base, i)
        m = r.mapping(item, path, CASE_KEYS, required=("message",))
        if m is None:
            continue
        message = m.get("message", MISSING)
        if not isinstance(message, dict):
            r.problem((*path, "message"), "must be a mapping of message fields, like "
                                          "{body: 'refund please', userType: member}")
            continue
        room = r.value(m, path, "room", text, None)
        names = room_names(config, room)
        room_id = next((n for n in sorted(names) if n.startswith("rm_")), "rm_test")
        kind = r.value(m, path, "event", choice(("created", "edited"), "event"), "created")
        cases.append(Case(
            name=r.value(m, path, "name", text, f"case {i + 1}"), line=doc.line(path),
            message=complete_message(message, index=i, room_id=room_id,
                                     edited=kind == "edited"),
            rooms=names, kind=f"message.{kind}",
            match=r.values(m, path, "match", rule) or (),
            no_match=r.values(m, path, "no_match", rule) or ()))
    return cases, r.problems


def run_case(matcher: Matcher, case: Case) -> CaseResult:
    """Run ``case``; each expectation not met becomes one readable line of the diff."""
    explained = {m.rule: m for m in matcher.explain(case.message, case.kind, case.rooms)}
    diff = []
    for rule in case.match:
        if rule not in explained:
            failed = matcher.why_not(rule, case.message, case.kind, case.rooms)
            diff.append(f"- expected {rule} to match; it did not (failed: {failed})")
    for rule in case.no_match:
        if rule in explained:
            diff.append(f"+ expected {rule} not to match; it did ({describe(explained[rule])})")
    return CaseResult(case, tuple(explained), tuple(diff))


def describe(match: RuleMatch) -> str:
    """``keywords: refund; regex: /order \\d+/`` for a RuleMatch (or ``no text condition``)."""
    parts = []
    if match.keywords:
        parts.append("keywords: " + ", ".join(match.keywords))
    if match.patterns:
        parts.append("regex: " + ", ".join(f"/{p}/" for p in match.patterns))
    return "; ".join(parts) or "no text condition"


def summary(results: Sequence[CaseResult]) -> str:
    """``3 passed, 1 failed``."""
    failed = sum(not r.ok for r in results)
    return f"{len(results) - failed} passed, {failed} failed"

