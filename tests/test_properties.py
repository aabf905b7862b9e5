"""Properties, checked on generated cases (hypothesis; profile "ci" small, "long" big).

* The tailer against a model of the Roomlio API: for any sequence of posts, edits, page
  sizes, cursor readings, API faults, store failures and restarts, what reaches the outbox
  is exactly what the model says must (every matching version current at a quiet moment)
  and nothing that it says must not (a version that never existed or matches no rule).
* Rules against a slow reference implementation written from the documentation.
* Config: any re-formatting of a valid file means the same; mutations that break it are
  reported with a line, and only ever as ConfigError.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import string
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from notifier.config import Room, RoomlioSettings, Rule
from notifier.delivery.formats import load_config
from notifier.errors import ConfigError, RoomlioCursorError, RoomlioTransientError, StoreError
from notifier.events import NEVER_EDITED
from notifier.polling.client import Page, parse_page
from notifier.polling.tailer import Tailer, routes_for
from notifier.rules import compile_rules, tokens
from notifier.store import RoomState
from notifier.store.sqlite import SQLiteStore
from notifier.testing.rooms import CursorError
from notifier.testing.rooms import Room as ModelRoom
from notifier.testing.rooms import format_time as model_time
from notifier.testing.rooms import parse_time as model_parse_time
from tests.conftest import SECRET, config_text

# -- the tailer against a model of the API ------------------------------------------------

#: body kind -> {webhook: rules it must list}
KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "refund": {"A": ("refunds",)},
    "URGENT": {"A": ("urgent",), "B": ("urgent",)},
    "refund, urgent": {"A": ("refunds", "urgent"), "B": ("urgent",)},
    "chat": {},
}
MODEL_RULES = (
    Rule("refunds", ("A",), keywords=("refund",)),
    Rule("urgent", ("A", "B"), keywords=("urgent",)),
)
API_FAULTS = ("error", "lost cursor", "duplicate", "shuffled duplicate", "reorder", "overlap",
              "has more, no cursor", "missing id")
ROOMS = 2
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class ModelApi:
    """RoomHistory in memory: the emulator's paging model behind the real page parser,
    spoiled by the faults queued in ``faults``."""

    def __init__(self, inclusive: bool, empty_cursor_at_end: bool) -> None:
        self.inclusive, self.empty_cursor_at_end = inclusive, empty_cursor_at_end
        self.rooms = {f"room{i}": ModelRoom(f"rm_{i}", f"room{i}", f"room{i}")
                      for i in range(ROOMS)}
        self.faults: list[str] = []

    async def room_history(self, room: Room, *, limit: int, start_cursor: str | None = None,
                           since: str | None = None) -> Page:
        model = self.rooms[room.name]
        fault = self.faults.pop(0) if self.faults else None
        if fault == "error":
            raise RoomlioTransientError("RoomHistory: HTTP 503 (injected)", status=503)
        if fault == "lost cursor" and start_cursor:
            raise RoomlioCursorError("RoomHistory: HTTP 400: invalid_cursor", status=400)
        try:
            page = model.page(limit=limit, cursor=start_cursor,
                              since=model_parse_time(since) if since else None,
                              inclusive=self.inclusive,
                              empty_cursor_at_end=self.empty_cursor_at_end)
        except CursorError as exc:
            raise RoomlioCursorError(f"RoomHistory: HTTP 400: {exc}", status=400) from None
        answer = _spoil(page.answer(), model, page.start, fault)
        return parse_page(json.loads(json.dumps(answer)))  # a copy, as off the wire


def _spoil(answer: dict[str, Any], room: ModelRoom, start: int, fault: str | None) -> Any:
    messages = answer["messages"]
    if fault == "duplicate":
        answer["messages"] = [m for m in messages for _ in range(2)]
    elif fault == "shuffled duplicate":
        answer["messages"] = [m for m in messages for _ in range(2)][::-1]
    elif fault == "reorder":
        answer["messages"] = messages[::-1]
    elif fault == "overlap" and start > 0:
        answer["messages"] = room.messages[max(0, start - 2):start] + messages
    elif fault == "has more, no cursor":
        answer.update(hasMore=True, nextCursor="")
    elif fault == "missing id":  # a broken copy heads the page: it is quarantined, the rest
        broken = {k: v for k, v in messages[0].items() if k != "id"} if messages else {
            "createdAt": model_time(T0)}
        answer["messages"] = [broken, *messages]
    return answer


class FailingStore:
    """The tailer's view of a store whose next commit fails when ``armed``."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner, self.armed = inner, False

    async def load_room(self, room: str) -> RoomState | None:
        return await self.inner.load_room(room)

    async def commit(self, state: Any, deliveries: Any) -> Any:
        return (await self.commit_page(state, deliveries, ()))[0]

    async def commit_page(self, state: Any, deliveries: Any, quarantine: Any) -> Any:
        if self.armed:
            self.armed = False
            raise StoreError("commit failed: disk I/O error (injected)")
        return await self.inner.commit_page(state, deliveries, quarantine)


class World:
    """The model: messages and their versions; what must and what may be delivered."""

    def __init__(self, api: ModelApi) -> None:
        self.api = api
        self.now = T0
        self.current: dict[str, dict[str, Any]] = {}
        self.kind_of: dict[tuple[str, str], str] = {}
        self.required: set[tuple[str, str, str]] = set()
        self.serial = 0

    def post(self, room: int, kind: str, advance: int) -> None:
        self.now += timedelta(seconds=advance)
        self.serial += 1
        model = self.api.rooms[f"room{room}"]
        message_id = f"msg_{self.serial:06d}"  # ids sort by creation, as Roomlio's
        message = {"id": message_id, "userID": "usr_1", "username": "", "userType": "member",
                   "messageType": "user", "body": f"{kind} {self.serial}", "links": [],
                   "roomID": model.id, "roomName": model.name,
                   "createdAt": model_time(self.now), "editedAt": NEVER_EDITED}
        model.append(message, self.now)
        self._record(message, kind)

    def edit(self, back: int, kind: str) -> None:
        """Edit the ``back``-th most recent message (0: the newest)."""
        if not self.current:
            return
        ids = sorted(self.current)
        message = self.current[ids[max(0, len(ids) - 1 - back)]]
        self.now += timedelta(seconds=1)
        self.serial += 1
        message["body"] = f"{kind} {self.serial} (edited)"
        message["editedAt"] = model_time(self.now)
        self._record(message, kind)

    def _record(self, message: dict[str, Any], kind: str) -> None:
        self.current[message["id"]] = message
        self.kind_of[message["id"], message["editedAt"]] = kind

    def quiet(self) -> None:
        """A quiet moment: every current matching version must now be delivered."""
        self.required |= {(webhook, m["id"], m["editedAt"]) for m in self.current.values()
                          for webhook in KINDS[self.kind_of[m["id"], m["editedAt"]]]}

    def rules_for(self, webhook: str, message_id: str, edited_at: str) -> tuple[str, ...] | None:
        kind = self.kind_of.get((message_id, edited_at))
        return None if kind is None else KINDS[kind].get(webhook)

    def clock(self) -> float:
        return (self.now + timedelta(seconds=1)).timestamp()


def _action(what: str) -> st.SearchStrategy[tuple[Any, ...]]:
    room = st.integers(0, ROOMS - 1)
    kind = st.sampled_from(list(KINDS))
    return {
        "post": st.tuples(st.just("post"), room, kind, st.integers(0, 1)),
        "edit": st.tuples(st.just("edit"), st.integers(0, 3), kind),
        "poll": st.tuples(st.just("poll"), room),
        "scan": st.tuples(st.just("scan"), room),
        "fault": st.tuples(st.just("fault"), st.sampled_from(API_FAULTS)),
    }.get(what, st.just((what,)))


#: Posts, edits and quiet moments most often: they make the cases that can lose something.
ACTIONS = st.lists(st.sampled_from(
    ["post"] * 4 + ["edit"] * 3 + ["quiet"] * 2 + ["poll", "scan", "fault", "fault",
                                                   "store fault", "restart"],
).flatmap(_action), max_size=50)


async def _run_model(actions: list[tuple[Any, ...]], inclusive: bool, empty_at_end: bool,
                     page_size: int) -> tuple[World, list[Any]]:
    api = ModelApi(inclusive, empty_at_end)
    world = World(api)
    store = SQLiteStore(":memory:")
    await store.open()
    failing = FailingStore(store)
    settings_ = RoomlioSettings(base_url="http://model", api_key="k", page_size=page_size,
                                start_from="beginning", edit_lookback=30 * 86400.0)
    matcher, routes = compile_rules(MODEL_RULES), routes_for(MODEL_RULES)

    def tailers() -> list[Tailer]:
        return [Tailer(Room(key=f"room{i}"), client=api, store=failing,  # type: ignore[arg-type]
                       matcher=matcher, routes=routes, settings=settings_,
                       on_enqueued=lambda added: None, clock=world.clock)
                for i in range(ROOMS)]

    async def attempt(tailer: Tailer, scan: bool) -> None:
        # the service logs these and polls again later
        with contextlib.suppress(RoomlioTransientError, RoomlioCursorError, StoreError):
            await (tailer.scan_edits() if scan else tailer.poll())

    async def quiet() -> None:
        api.faults.clear()
        failing.armed = False
        for tailer in current:
            await tailer.poll()
            await tailer.scan_edits()
        world.quiet()

    try:
        current = tailers()
        for action in actions:
            match action:
                case ("post", room, kind, advance):
                    world.post(room, kind, advance)
                case ("edit", pick, kind):
                    world.edit(pick, kind)
                case ("poll" | "scan" as what, room):
                    await attempt(current[room], what == "scan")
                case ("fault", fault):
                    api.faults.append(fault)
                case ("store fault",):
                    failing.armed = True
                case ("restart",):
                    current = tailers()
                case ("quiet",):
                    await quiet()
        await quiet()
        outbox = [d for d, *_ in await store.outbox(limit=1_000_000)]
    finally:
        await store.close()
    return world, outbox


@pytest.mark.parametrize("cursor_mode", ["inclusive", "exclusive"])
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(actions=ACTIONS, empty_at_end=st.booleans(), page_size=st.integers(1, 4))
def test_the_tailer_delivers_exactly_the_models_matching_versions(
        cursor_mode, actions, empty_at_end, page_size):
    """Every version current at a quiet moment is in the outbox once per webhook, with
    the right rules; nothing else is."""
    world, outbox = asyncio.run(_run_model(actions, cursor_mode == "inclusive", empty_at_end,
                                           page_size))
    got: dict[tuple[str, str, str], Any] = {}
    for delivery in outbox:
        message = delivery.event.message
        key = (delivery.webhook, message["id"], message["editedAt"])
        note(f"delivered {key} as {delivery.event.kind}")
        assert key not in got, f"{key} twice in the outbox"
        got[key] = delivery
        assert world.rules_for(*key) == delivery.rules, f"{key}: wrong or no rules"
        if message["editedAt"] == NEVER_EDITED:
            assert delivery.event.kind == "message.created"
    assert world.required <= set(got), f"lost: {sorted(world.required - set(got))}"


# -- rules against a slow reference ------------------------------------------------------

_UNSPACED_RANGES = [(0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x2E80, 0x2FDF),
                    (0x3005, 0x3007), (0x3021, 0x3029), (0x3038, 0x303C), (0x3040, 0x30FF),
                    (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
                    (0x20000, 0x3134F)]


def ref_normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def ref_tokens(text: str) -> list[str]:
    """Written from the documentation, one character at a time."""
    out: list[str] = []
    run = ""
    for ch in ref_normalize(text):
        unspaced = any(a <= ord(ch) <= b for a, b in _UNSPACED_RANGES)
        wordish = (ch.isalnum() and ch != "_") or unicodedata.category(ch).startswith("M")
        if wordish and not unspaced:
            run += ch
            continue
        if run:
            out.append(run)
            run = ""
        if unspaced and wordish:
            out.append(ch)
    if run:
        out.append(run)
    return out


def ref_has(text_tokens: list[str], keyword: str) -> bool:
    kw = ref_tokens(keyword)
    return bool(kw) and any(text_tokens[i:i + len(kw)] == kw
                            for i in range(len(text_tokens) - len(kw) + 1))


def ref_match(rule: Rule, message: Mapping[str, Any], kind: str, rooms: set[str]) -> bool:
    toks = ref_tokens(str(message.get("body") or ""))
    links = message.get("links") or []
    checks = [
        kind.removeprefix("message.") in rule.events,
        rule.rooms is None or bool(rule.rooms & (rooms | {message.get("roomID")})),
        rule.message_type is None or message.get("messageType") in rule.message_type,
        rule.user_type is None or message.get("userType") in rule.user_type,
        rule.users is None or message.get("userID") in rule.users,
        rule.exclude_users is None or message.get("userID") not in rule.exclude_users,
        rule.has_links is None or bool(links) is rule.has_links,
        rule.link_type is None or any(link.get("type") in rule.link_type for link in links),
        not rule.keywords or any(ref_has(toks, k) for k in rule.keywords),
        not rule.keywords_all or all(ref_has(toks, k) for k in rule.keywords_all),
        not any(ref_has(toks, k) for k in rule.exclude_keywords),
    ]
    return all(checks)


WORDS = ["refund", "REFUND", "Refund!", "réfund", "re\u0301fund", "ｒｅｆｕｎｄ", "refunded",
         "cancel", "my", "account", "straße", "STRASSE", "ﬁle", "file", "İstanbul", "istanbul",
         "ΐ", "ι\u0308\u0301", "नमस्ते", "न", "退款", "退", "款", "refund🙂", "_refund_",
         "ＵＲＧＥＮＴ", "urgent", "ǅemal", "džemal", "x²", "x2", "\u0e2a\u0e31", "a\u0e31"]
TEXT = st.lists(st.sampled_from(WORDS) | st.text(max_size=4), max_size=8).flatmap(
    lambda words: st.lists(st.sampled_from([" ", "  ", ", ", "\n", "-", "", "."]),
                           min_size=len(words), max_size=len(words)).map(
        lambda seps: "".join(w + s for w, s in zip(words, seps, strict=True))))
KEYWORD = st.sampled_from([*WORDS, "cancel my account", "refund please", "退款", "x 2"]) \
    | st.text(string.ascii_letters + "ßİ ", min_size=1, max_size=6)
OPTIONAL_SET = lambda values: st.none() | st.frozensets(st.sampled_from(values), min_size=1)  # noqa: E731

RULES = st.builds(
    lambda i, **kw: Rule(name=f"r{i}", notify=("w",), **kw),
    st.integers(0, 10**6),
    events=st.frozensets(st.sampled_from(["created", "edited"]), min_size=1),
    rooms=OPTIONAL_SET(["rm_1", "support", "rm_2"]),
    message_type=OPTIONAL_SET(["user", "offline", "system"]),
    user_type=OPTIONAL_SET(["admin", "member", "embed", "embed_insecure"]),
    users=OPTIONAL_SET(["usr_a", "usr_b"]),
    exclude_users=OPTIONAL_SET(["usr_a", "usr_b"]),
    has_links=st.none() | st.booleans(),
    link_type=OPTIONAL_SET(["image", "file"]),
    keywords=st.lists(KEYWORD, max_size=3).map(tuple),
    keywords_all=st.lists(KEYWORD, max_size=2).map(tuple),
    exclude_keywords=st.lists(KEYWORD, max_size=2).map(tuple),
)
MESSAGES = st.fixed_dictionaries({
    "id": st.just("msg_1"), "body": TEXT,
    "roomID": st.sampled_from(["rm_1", "rm_2"]),
    "messageType": st.sampled_from(["user", "offline", "system"]),
    "userType": st.sampled_from(["admin", "member", "embed", "embed_insecure"]),
    "userID": st.sampled_from(["usr_a", "usr_b", "usr_c"]),
    "links": st.lists(st.fixed_dictionaries({"id": st.just("lnk_1"),
                                             "type": st.sampled_from(["image", "file"]),
                                             "url": st.just("https://x.example/a.png")}),
                      max_size=2),
})


@given(rules=st.lists(RULES, min_size=1, max_size=4, unique_by=lambda r: r.name),
       message=MESSAGES, kind=st.sampled_from(["message.created", "message.edited"]),
       rooms=st.sets(st.sampled_from(["rm_1", "support", "other"]), max_size=2))
def test_matching_agrees_with_a_slow_reference(rules, message, kind, rooms):
    """The compiled matcher names exactly the rules the reference says match."""
    expected = tuple(r.name for r in rules if ref_match(r, message, kind, rooms))
    assert compile_rules(rules).match(message, kind, rooms) == expected


@given(text=TEXT | st.text(st.characters(codec="utf-8"), max_size=12))
def test_words_are_split_as_the_documentation_says(text):
    """Tokens agree with the reference on mixed scripts, marks, symbols and spacing."""
    assert tokens(text) == ref_tokens(text)


@given(text=TEXT, keyword=KEYWORD)
def test_a_keyword_matches_the_same_under_case_and_width_changes(text, keyword):
    """NFKC forms and case-folded or upper-cased ASCII give the same answer."""
    matcher = compile_rules([Rule("r", ("w",), keywords=(keyword,))])

    def hit(body: str) -> bool:
        return bool(matcher.match({"body": body}, "message.created", set()))

    variants = [unicodedata.normalize("NFKC", text), unicodedata.normalize("NFKD", text),
                text.casefold(), ref_normalize(text)]
    if text.isascii():
        variants += [text.upper(), text.lower()]
    for variant in variants:
        assert hit(variant) == hit(text), f"{text!r} and {variant!r} disagree"
    assert hit(keyword) or not ref_tokens(keyword), "a keyword does not match itself"


# -- config ------------------------------------------------------------------------------

ENV = {"TEST_API_KEY": "key-" + "a" * 20, "TEST_SECRET": SECRET}


def _base_document() -> dict[str, Any]:
    text = config_text("https://api.roomlio.example/rpc", "https://hooks.example.com",
                       rooms=["support", "sales"], roomlio={"page_size": 20},
                       delivery={"timeout": "5s", "allow_private_urls": False})
    document = yaml.safe_load(text)
    document["rooms"].append({"id": "rm_bvr0h6tnf4q1u52mfit0"})
    document["rules"].append({"name": "system-notes", "message_type": ["system"],
                              "user_type": ["admin"], "events": ["created"],
                              "rooms": ["support"], "notify": ["mod"]})
    return document


def _shuffled(value: Any, rng: random.Random) -> Any:
    """The same YAML meaning with every mapping's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _decorate(text: str, rng: random.Random) -> str:
    """Comments and blank lines between lines, comments after some."""
    out = []
    for line in text.splitlines():
        if rng.random() < 0.2:
            out.append(rng.choice(["", "# a comment", "   # indented comment", "  "]))
        if rng.random() < 0.2 and line.strip() and not line.rstrip().endswith(":"):
            line += "   # trailing comment"
        elif rng.random() < 0.2:
            line += "  "
        out.append(line)
    return "\n".join(out) + "\n"


def _meaning(path: Path) -> Any:
    config = load_config(str(path), ENV)
    return dataclasses.replace(config, rules=tuple(dataclasses.replace(r, line=None)
                                                   for r in config.rules))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), flow=st.booleans(), indent=st.integers(2, 6),
       width=st.integers(40, 200))
def test_any_formatting_of_a_valid_file_has_the_same_meaning(tmp_path, seed, flow, indent,
                                                             width):
    """Key order, flow or block style, indentation, comments and blank lines change nothing."""
    rng = random.Random(seed)
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(_base_document(), sort_keys=False))
    other = tmp_path / "other.yaml"
    text = yaml.safe_dump(_shuffled(_base_document(), rng), sort_keys=False, indent=indent,
                          width=width, default_flow_style=flow or None)
    other.write_text(text if flow else _decorate(text, rng))
    assert dataclasses.replace(_meaning(other), path="") == \
        dataclasses.replace(_meaning(base), path="")


_PIECES = [":", " ", "-", "[", "]", "{", "}", "#", "'", '"', "&a", "*a", "!!str ", "|", ">",
           "\t", "${", "${NOPE}", "%", "@", "`", ",", "?", "\\", "é", "\x00", "0", "-1", "yes",
           "~", "1e9", "99999999999999999999"]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_broken_file_is_reported_by_line_and_only_as_config_error(tmp_path, data):
    """A mutated file loads, or fails with ConfigError whose every problem names its file
    and, when it is about a place in the file, the line."""
    lines = yaml.safe_dump(_base_document(), sort_keys=False).splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["delete", "duplicate", "splice", "dedent", "indent"]))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "splice":
            at = data.draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + data.draw(st.sampled_from(_PIECES)) + lines[i][at:]
        elif op == "dedent":
            lines[i] = lines[i].removeprefix("  ")
        else:
            lines[i] = "  " + lines[i]
    path = tmp_path / "rules.yaml"
    path.write_text("\n".join(lines) + "\n")
    try:
        load_config(str(path), ENV)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            note(str(problem))
            assert str(problem).startswith(f"{path}:"), str(problem)
            assert problem.line is not None and 1 <= problem.line <= len(lines) + 1, \
                f"no usable line: {problem}"
            assert SECRET not in str(problem) and ENV["TEST_API_KEY"] not in str(problem)
