"""The rules.yaml schema: which keys exist, what each must hold, how sections build.

Pure: it reads a parsed Doc and returns the Config (or the problems found). The tables of
keys and converters are read from the declarations in ``model`` (see ``settings``), so
adding a setting is one line there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import fields, replace
from typing import Any

from notifier.config.cluster_fields import POSTGRES_SCHEMES, cluster_settings, postgres_url_problem
from notifier.config.delivery_fields import check_breaker, resolve_retry
from notifier.config.fields import (
    MISSING,
    Conv,
    Invalid,
    Reader,
    choice,
    describe_type,
    is_hidden,
    text,
)
from notifier.config.format_fields import FormatRules
from notifier.config.model import (
    DEFAULT_STATE,
    MESSAGE_TYPES,
    RULE_EVENTS,
    USER_TYPES,
    Config,
    DeliverySettings,
    Room,
    RoomlioSettings,
    Rule,
)
from notifier.config.rule_fields import RULE_EXTRA_KEYS, read_rule_extras
from notifier.config.server_fields import logging_settings, server_settings
from notifier.config.settings import declared, table
from notifier.config.values import AUTO_WORKERS
from notifier.config.webhook_fields import webhooks as read_webhooks
from notifier.config.yaml import Doc, Path
from notifier.errors import Problem

__all__ = ["auto_workers", "build", "unsupported_state"]

_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")



def unsupported_state(location: str) -> str | None:
    """Why ``location`` cannot hold the state, or None (a PostgreSQL URL: checks its form)."""
    if location.lower().startswith(POSTGRES_SCHEMES):
        return postgres_url_problem(location)
    return None


def _state_location(base_dir: str) -> Conv[str]:
    def convert(value: Any, shown: str) -> str:
        location = text(value, shown).strip()
        reason = unsupported_state(location)
        if reason is not None:
            raise Invalid(reason)
        if location.lower().startswith(POSTGRES_SCHEMES):
            return location
        scheme = _URL_SCHEME.match(location)
        if scheme is not None and scheme[1].lower() == "sqlite":
            path = location[scheme.end():]
            if not path.startswith("/") or not path.strip("/"):
                raise Invalid("write a SQLite URL as sqlite:///absolute/path/notifier.db")
            return "/" + path.lstrip("/")
        if scheme is not None:  # never echo the URL itself: it may carry a password
            name = "" if is_hidden(shown) else f" '{scheme[1]}'"
            raise Invalid(f"unsupported state URL scheme{name}; use a SQLite file path")
        if location == ":memory:":
            return location
        return os.path.normpath(os.path.join(base_dir, os.path.expanduser(location)))

    return convert


ROOMLIO_FIELDS = table(RoomlioSettings)
_ROOMLIO_REQUIRED = tuple(key for key, s in declared(RoomlioSettings).items()
                          if s.default is NO_DEFAULT)
DELIVERY_FIELDS = table(DeliverySettings)
_DELIVERY_DEFAULTS = DeliverySettings()
TOP_KEYS = tuple(f.name for f in fields(Config) if f.name != "path")
ROOM_KEYS = tuple(declared(Room))
RULE_KEYS = ("name", "events", "rooms", "message_type", "user_type", "keywords", "notify",
             *RULE_EXTRA_KEYS)


def _is_secret(path: Path) -> bool:
    return path[:2] in (("roomlio", "api_key"), ("server", "admin_token")) or (
        len(path) > 2 and path[0] == "webhooks" and path[2] in ("secret", "headers"))


def _roomlio(r: Reader, value: Any) -> RoomlioSettings:
    m = r.mapping(value, ("roomlio",), tuple(ROOMLIO_FIELDS), required=_ROOMLIO_REQUIRED)
    values = r.fields(m, ("roomlio",), ROOMLIO_FIELDS) if m is not None else {}
    return RoomlioSettings(**{"base_url": "", "api_key": "", **values})


def _rooms(r: Reader, value: Any) -> tuple[tuple[Room, ...], list[str]]:
    """The rooms, and how each may be named in messages (${VAR} for a hidden one)."""
    first: dict[str, int] = {}
    rooms: list[Room] = []
    labels: list[str] = []
    for i, item in enumerate(r.sequence(value, ("rooms",))):
        room = _room(r, item, ("rooms", i))
        if room is None:
            continue
        name_path: Path = ("rooms", i, "id" if room.id is not None else "key")
        label = r.show(room.name, name_path)
        if room.name in first:
            r.problem(name_path, f"duplicate room {label} (also rooms[{first[room.name]}])")
            continue
        first[room.name] = i
        rooms.append(room)
        labels.append(label.removeprefix("the value from ") if is_hidden(label) else room.name)
    return tuple(rooms), labels


def _room(r: Reader, item: Any, path: Path) -> Room | None:
    m = r.mapping(item, path, ROOM_KEYS)
    if m is None:
        return None
    given = {key: r.value(m, path, key, text, None) for key in ROOM_KEYS if key in m}
    if len(given) != 1:
        r.problem(path, "give exactly one of id or key, not both" if given
                  else "needs an id or a key, like: - id: rm_bvr0h6tnf4q1u52mfit0")
        return None
    if None in given.values():
        return None
    return Room(**given)


def _delivery(r: Reader, value: Any) -> DeliverySettings:
    m = r.mapping(value, ("delivery",), tuple(DELIVERY_FIELDS))
    settings = r.fields(m, ("delivery",), DELIVERY_FIELDS) if m else {}
    resolve_retry(r, m, ("delivery",), settings, default=_DELIVERY_DEFAULTS.retry_schedule)
    defaults = DeliverySettings(**settings)
    breaker = {key: getattr(defaults, key) for key in ("breaker_window", "breaker_min_attempts")}
    check_breaker(r, m, ("delivery",), breaker)
    return replace(defaults, **breaker)


def _rules(r: Reader, value: Any, rooms: tuple[Room, ...], room_labels: list[str],
           webhooks: list[str]) -> tuple[Rule, ...]:
    first: dict[str, int | None] = {}
    rules: list[Rule] = []
    for i, item in enumerate(r.sequence(value, ("rules",))):
        rule = _rule(r, item, ("rules", i), _rule_filters(rooms, room_labels), webhooks)
        if rule is None:
            continue
        if rule.name in first:
            name_path: Path = ("rules", i, "name")
            r.problem(name_path, f"duplicate rule name {r.show(rule.name, name_path)} "
                                 f"(first at line {first[rule.name]})")
        first.setdefault(rule.name, rule.line)
        rules.append(rule)
    return tuple(rules)


def _rule_filters(rooms: tuple[Room, ...], labels: list[str]) -> dict[str, Conv[str]]:
    """The converter of each optional rule filter (a room check only if rooms loaded)."""
    names = [room.name for room in rooms]
    return {
        "events": choice(sorted(RULE_EVENTS), "event"),
        "rooms": choice(names, "room", "configured", labels) if rooms else text,
        "message_type": choice(sorted(MESSAGE_TYPES), "message type"),
        "user_type": choice(sorted(USER_TYPES), "user type"),
        "keywords": text,
    }


def _rule(r: Reader, item: Any, path: Path, filters: dict[str, Conv[str]],
          webhooks: list[str]) -> Rule | None:
    m = r.mapping(item, path, RULE_KEYS, required=("name", "notify"))
    if m is None:
        return None
    given = {key: r.values(m, path, key, conv) for key, conv in filters.items()}
    notify = choice(webhooks, "webhook", "known") if webhooks else text
    sets: dict[str, Any] = {key: frozenset(given[key] or ()) if given[key] is not None else None
            for key in ("rooms", "message_type", "user_type")}
    name = r.value(m, path, "name", text, "")
    return Rule(
        name=name,
        notify=r.values(m, path, "notify", notify) or (),
        events=frozenset(given["events"] or ()) if given["events"] is not None else RULE_EVENTS,
        keywords=given["keywords"] or (),
        line=r.doc.line(path),
        **sets,
        **read_rule_extras(r, m, path, name),
    )


def build(doc: Doc, path: str,
          formats: Mapping[str, FormatRules]) -> tuple[Config | None, list[Problem]]:
    """The Config in ``doc`` (None if its top level is not a mapping) and its problems."""
    r = Reader(doc, path, _is_secret)
    if not isinstance(doc.data, dict):
        r.problem((), "the top level must be a mapping with roomlio, rooms, webhooks and rules "
                      f"(got {describe_type(doc.data)})")
        return None, r.problems
    top = r.mapping(doc.data, (), TOP_KEYS, required=("roomlio", "rooms", "webhooks", "rules"))
    return (_build(r, top, path, formats) if top is not None else None), r.problems


def auto_workers() -> int:
    """``delivery.workers: auto``: one worker per core this process may run on, but one
    core, which the main process keeps (so 0 on one core, 1 on two)."""
    return min(64, max(0, len(os.sched_getaffinity(0)) - 1))


def _build(r: Reader, top: dict[str, Any], path: str,
           formats: Mapping[str, FormatRules]) -> Config:
    base_dir = os.path.dirname(os.path.abspath(path))
    rooms, room_labels = _rooms(r, top.get("rooms", MISSING))
    delivery = _delivery(r, top.get("delivery", MISSING))
    webhooks = top.get("webhooks", MISSING)
    state = r.value(top, (), "state", _state_location(base_dir),
                    os.path.join(base_dir, DEFAULT_STATE))
    shared_file = not (state == ":memory:" or state.lower().startswith(POSTGRES_SCHEMES))
    if delivery.workers == AUTO_WORKERS:
        delivery = replace(delivery, workers=auto_workers() if shared_file else 0)
    elif delivery.workers and not shared_file:
        r.problem(("delivery", "workers"), "delivery workers share a SQLite state file; with "
                  "PostgreSQL run more instances instead (and not with state: ':memory:')")
    return Config(
        path=path,
        roomlio=_roomlio(r, top.get("roomlio", MISSING)),
        rooms=rooms,
        state=state,
        delivery=delivery,
        webhooks=read_webhooks(r, webhooks, delivery, formats),
        rules=_rules(r, top.get("rules", MISSING), rooms, room_labels,
                     list(webhooks) if isinstance(webhooks, dict) else []),
        server=server_settings(r, top.get("server", MISSING)),
        logging=logging_settings(r, top.get("logging", MISSING)),
        ops_webhook=r.value(top, (), "ops_webhook", choice(
            list(webhooks) if isinstance(webhooks, dict) else [], "webhook", "known"), None),
        cluster=cluster_settings(r, top.get("cluster", MISSING)),
    )
