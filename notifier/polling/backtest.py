"""Backtest: what the rules would have fired on over a room's real history.

``history`` reads a room through RoomHistory from ``since`` on (paging, the client's
retries, duplicate pages tolerated); ``Tally`` counts matches per rule and per webhook
and keeps a few samples. Nothing here delivers, and nothing reads or writes the state
store: the saved cursors are never touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from notifier.config import Config, Room
from notifier.errors import RoomlioTransientError
from notifier.events import CREATED, EDITED, is_edited
from notifier.polling.client import MAX_IDLE_PAGES, RoomlioClient
from notifier.polling.pagesize import PageBudget, sized_page
from notifier.rules import Matcher

__all__ = ["Sample", "Tally", "history"]

SAMPLES_PER_RULE = 3
_EXCERPT = 80


async def history(client: RoomlioClient, room: Room, *, since: str,
                  page_size: int) -> AsyncIterator[Mapping[str, Any]]:
    """Every message version of ``room`` created at or after ``since``, each once."""
    seen: set[tuple[str, str]] = set()
    cursor: str | None = None
    asked: set[str] = set()  # a nextCursor that comes back would loop for ever
    idle = 0
    turns = PageBudget().turns(page_size)  # one reader: no other room shares the budget
    while True:
        asked.add(cursor or "")
        page = await sized_page(client, room, turns, cursor, None if cursor else since)
        idle += 1
        for message in page.messages:
            version = (str(message["id"]), str(message.get("editedAt", "")))
            if version not in seen:
                seen.add(version)
                idle = 0
                yield message
        if not page.has_more:
            return
        last = str(page.messages[-1]["id"]) if page.messages else ""
        next_cursor = page.next_cursor or last
        if not next_cursor or next_cursor in asked or idle >= MAX_IDLE_PAGES:
            raise RoomlioTransientError("RoomHistory said hasMore but gave no usable nextCursor"
                                        f" (none, one it gave before, or {MAX_IDLE_PAGES}"
                                        " pages in a row with nothing new)")
        cursor = next_cursor


@dataclass(frozen=True)
class Sample:
    """One message a rule matched, for people to look at."""

    room: str
    id: str
    kind: str
    excerpt: str
    why: str


@dataclass
class Tally:
    """Counts of what would have fired, per rule and per webhook, with samples."""

    config: Config
    messages: int = 0
    per_rule: Counter[str] = field(default_factory=Counter)
    per_webhook: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    blocked_by: dict[str, Counter[str]] = field(default_factory=dict)
    """Per rule, how often each condition was the first one a message failed."""

    def add(self, matcher: Matcher, room: Room, message: Mapping[str, Any],
            names: Collection[str]) -> None:
        """Match ``message`` as created and, when it was edited, as its edited version."""
        self.messages += 1
        kinds = (CREATED, EDITED) if is_edited(message) else (CREATED,)
        routes = {rule.name: rule.notify for rule in self.config.rules}
        for kind in kinds:
            matched = matcher.explain(message, kind, names)
            webhooks = {w for m in matched for w in routes.get(m.rule, ())}
            self.per_webhook.update(webhooks)
            hit = {m.rule for m in matched}
            for rule in matcher.rule_names:
                if rule not in hit:
                    why = matcher.why_not(rule, message, kind, names) or "?"
                    self.blocked_by.setdefault(rule, Counter())[why] += 1
            for m in matched:
                self.per_rule[m.rule] += 1
                kept = self.samples.setdefault(m.rule, [])
                if len(kept) < SAMPLES_PER_RULE:
                    why = ", ".join((*m.keywords, *(f"/{p}/" for p in m.patterns)))
                    kept.append(Sample(room.name, str(message["id"]), kind,
                                       _excerpt(message.get("body")), why))

    def never_matched(self) -> list[str]:
        """Rules that matched nothing in the history read."""
        return [rule.name for rule in self.config.rules if not self.per_rule[rule.name]]

    def blocker(self, rule: str) -> str:
        """``link_type (100%)``: the condition that most often stopped ``rule``."""
        counts = self.blocked_by.get(rule)
        if not counts:
            return "no message"
        condition, n = counts.most_common(1)[0]
        return f"{condition} ({n / sum(counts.values()):.0%})"

    def as_json(self) -> dict[str, Any]:
        """The report as plain data (``--json``)."""
        return {
            "messages": self.messages,
            "rules": {rule.name: {"matches": self.per_rule[rule.name],
                                  "samples": [vars(s) for s in self.samples.get(rule.name, [])],
                                  "stopped_by": dict(self.blocked_by.get(rule.name, {}))}
                      for rule in self.config.rules},
            "webhooks": {name: self.per_webhook[name] for name in self.config.webhooks},
            "never_matched": self.never_matched(),
        }


def _excerpt(body: Any) -> str:
    text = " ".join(str(body or "").split())
    return text if len(text) <= _EXCERPT else text[:_EXCERPT - 1] + "…"
