"""Realistic support-chat traffic for ``notifier demo``: posts and edits in emulator rooms.

Members ask for refunds, shout URGENT, cancel accounts or just chat; agents answer;
the system announces things; now and then someone attaches a screenshot or edits a
recent message (often to add "refund", which turns a non-matching message into a match).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass

from notifier.testing.emulator import RoomlioEmulator
from notifier.util.aio import sleep_unless

__all__ = ["simulate_chatter"]


@dataclass(frozen=True, slots=True)
class _Person:
    username: str
    first: str
    last: str
    user_type: str


_MEMBERS = (
    _Person("alice", "Alice", "Moreau", "member"),
    _Person("bkumar", "Bhavin", "Kumar", "member"),
    _Person("chen.li", "Chen", "Li", "member"),
    _Person("dmitri", "Dmitri", "Volkov", "embed"),
    _Person("eva_s", "Eva", "Santos", "member"),
    _Person("", "", "", "embed_insecure"),
)
_AGENTS = (
    _Person("dana", "Dana", "Support", "admin"),
    _Person("sam", "Sam", "Billing", "admin"),
)

_REFUNDS = (
    "I want a refund for order #{order}",
    "Can I get a refund? Order #{order} arrived broken",
    "still waiting on my refund for #{order}...",
    "How long do refunds take? Order {order}",
)
_URGENT = (
    "URGENT: the checkout is down",
    "urgent!! I was charged twice for order #{order}",
    "This is urgent, I can't log in and my payment went through",
)
_CANCEL = (
    "cancel my account",
    "How do I cancel my subscription?",
    "Please cancel my account, I'm moving to another provider",
)
_CHATTER = (
    "hi, anyone there?",
    "thanks!",
    "What are your opening hours on Sunday?",
    "Does the jacket come in blue?",
    "ok great, that worked",
    "Where can I change my delivery address?",
    "lol no worries",
)
_REPLIES = (
    "Thanks for reaching out, I'm looking into it now.",
    "Your order #{order} shipped yesterday, tracking is in your inbox.",
    "Could you send me the email address on the account?",
    "Done! Anything else I can help with?",
)
_NOTICES = (
    "{agent} joined the conversation",
    "Conversation assigned to the billing team",
    "{agent} left the conversation",
)
_OFFLINE = (
    "Sent while you were offline: is anybody there? I need help with order #{order}",
    "Left a message: please call me back about my refund",
)
_SCREENSHOT = ("Here's a screenshot of the error", "see attached", "this is what I get")
_EDIT_ADDITIONS = (" - actually I'd like a refund", " (refund please)", " URGENT", "!!")


async def simulate_chatter(emu: RoomlioEmulator, rooms: Sequence[str], *, rate: float,
                          rng: random.Random, stop: asyncio.Event) -> int:
    """Post (and edit) messages in ``rooms`` at about ``rate`` per second until ``stop``.

    Intervals are exponential (a Poisson process), so traffic comes in bursts and lulls
    as real chat does. Returns the number of posts and edits made.
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0 messages per second, not {rate}")
    if not rooms:
        raise ValueError("give at least one room to chatter in")
    recent: list[tuple[str, str]] = []  # (message id, body) of recent member messages
    actions = 0
    while True:
        if await sleep_unless(stop, rng.expovariate(rate)):
            return actions
        try:
            if recent and rng.random() < 0.07:
                message_id, body = recent.pop(rng.randrange(len(recent)))
                emu.edit(message_id, body + rng.choice(_EDIT_ADDITIONS))
            else:
                _post_one(emu, rng.choice(rooms), rng, recent)
        except KeyError:
            continue  # the room (or the edited message's room) was deleted meanwhile
        actions += 1


def _post_one(emu: RoomlioEmulator, room: str, rng: random.Random,
              recent: list[tuple[str, str]]) -> None:
    roll = rng.random()

    def fill(template: str) -> str:
        return template.format(order=rng.randrange(1000, 99999),
                               agent=rng.choice(_AGENTS).first)

    if roll < 0.15:
        agent = rng.choice(_AGENTS)
        _say(emu, room, agent, fill(rng.choice(_REPLIES)))
        return
    if roll < 0.22:
        emu.post(room, fill(rng.choice(_NOTICES)), user_type="admin", message_type="system")
        return
    member = rng.choice(_MEMBERS)
    if roll < 0.27:
        _say(emu, room, member, fill(rng.choice(_OFFLINE)), message_type="offline")
        return
    if roll < 0.32:
        url = f"https://img.example.com/{rng.getrandbits(48):012x}.png"
        _say(emu, room, member, rng.choice(_SCREENSHOT), links=(url,))
        return
    pool = rng.choices((_REFUNDS, _URGENT, _CANCEL, _CHATTER), weights=(3, 1, 1, 6))[0]
    message = _say(emu, room, member, fill(rng.choice(pool)))
    recent.append((str(message["id"]), str(message["body"])))
    del recent[:-20]


def _say(emu: RoomlioEmulator, room: str, person: _Person, body: str, *,
         message_type: str = "user", links: tuple[str, ...] = ()) -> dict[str, object]:
    return emu.post(room, body, user_type=person.user_type, message_type=message_type,
                    username=person.username, first=person.first, last=person.last,
                    links=links)
