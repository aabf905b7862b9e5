"""What a poll saves: a page that changes nothing costs no transaction; anything else is
committed, cursor and all, as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from notifier.config import Room, RoomlioSettings, Rule
from notifier.polling.pages import Page, parse_page
from notifier.polling.tailer import Tailer, routes_for
from notifier.rules import compile_rules
from notifier.store import RoomState
from notifier.store.sqlite import SQLiteStore

RULES = [Rule(name="refunds", keywords=("refund",), notify=("crm",))]


def message(i: int, body: str = "hello") -> dict[str, Any]:
    return {"id": f"msg_{i:04d}", "body": body, "createdAt": f"2026-11-25T10:00:{i:02d}Z"}


class Answers:
    """RoomHistory as a queue of answers (each a page's JSON body), the last one repeated."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)

    async def room_history(self, room: Room, **_: Any) -> Page:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return parse_page(answer)


class Counting(SQLiteStore):
    """The SQLite store, counting page commits."""

    commits = 0

    async def commit_page(self, *args: Any) -> Any:
        self.commits += 1
        return await super().commit_page(*args)


async def test_a_quiet_rooms_poll_commits_nothing_and_the_next_message_is_saved(
        tmp_path: Path) -> None:
    """A poll that finds nothing new leaves the store alone; a new message, a matching one,
    and a defective one without an id (which moves no cursor) are each committed."""
    end = {"messages": [], "hasMore": False, "nextCursor": ""}
    client = Answers({"messages": [message(1), message(2)], "hasMore": False}, end, end,
                     {"messages": [message(3, "refund please")], "hasMore": False}, end,
                     {"messages": [{"body": "no id"}], "hasMore": False}, end)
    settings = RoomlioSettings(base_url="http://unused", api_key="k", start_from="beginning")
    async with Counting(str(tmp_path / "state.db")) as store:
        tailer = Tailer(Room(key="r1"), client=client, store=store,  # type: ignore[arg-type]
                        matcher=compile_rules(RULES), routes=routes_for(RULES),
                        settings=settings, on_enqueued=lambda added: None)
        commits = []
        for _ in range(7):
            await tailer.poll()
            commits.append(store.commits)
        assert commits == [2, 2, 2, 3, 3, 4, 4]  # the first: the new room's initial state
        assert await store.load_room("r1") == RoomState(
            "r1", "msg_0003", "msg_0003", "2026-11-25T10:00:03Z")
        assert (await store.stats()).outbox == 1 and (await store.stats()).quarantined == 1
