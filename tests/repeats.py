"""Which duplicates a chaos run may show, and why: the faults that can repeat a delivery.

A receiver accepts one webhook-id twice only if the notifier did not learn of the first
2xx (no answer seen: a timeout, a cut connection), could not record it (a store error
after the 2xx), or was stopped in between (a crash). Faults on the Roomlio side cannot do
it: a page read twice yields the same event, queued once under the same id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from notifier.delivery.sender import AttemptReport
from notifier.testing import WebhookReceiver

__all__ = ["NO_REPEATS", "Repeats", "UnseenAnswers", "crashed", "unexplained", "unrecorded"]


@dataclass(frozen=True)
class Repeats:
    """Which webhook-ids the faults of a run may have had accepted more than once:
    ``allowed`` maps each to the extra acceptances the run's faults explain (None: any)."""

    cause: str
    allowed: Mapping[str, int] | None


NO_REPEATS = Repeats("nothing in this run can repeat a delivery", {})


def crashed(cause: str) -> Repeats:
    """A process killed or stopped mid-delivery: any 2xx may have gone unrecorded."""
    return Repeats(cause, None)


class UnseenAnswers:
    """An ``on_attempt`` hook that counts, per webhook-id, the attempts that ended with no
    answer the notifier saw (a timeout, a cut connection) and those it saw a 2xx for.

    Only an attempt with no answer seen may have been accepted unbeknown to the notifier;
    an answer it saw (an error, say) means the receiver did not accept that attempt. And
    once it has seen a 2xx, it must not send that id again (no store fault here)."""

    def __init__(self) -> None:
        self.unseen: Counter[str] = Counter()
        self.seen_ok: Counter[str] = Counter()

    def __call__(self, report: AttemptReport) -> None:
        if report.status is None:
            self.unseen[report.delivery.id] += 1
        elif 200 <= report.status < 300:
            self.seen_ok[report.delivery.id] += 1

    def repeats(self) -> Repeats:
        """The repeats these attempts explain (none for an id seen 2xx twice)."""
        allowed = {wid: n for wid, n in self.unseen.items() if self.seen_ok[wid] <= 1}
        return Repeats("attempts whose answer the notifier did not see", allowed)


def unrecorded(records: Iterable[logging.LogRecord]) -> Repeats:
    """Per webhook-id, the outcomes the notifier logged it could not save (a store error
    after a 2xx sends the delivery again, by design: a duplicate, never a loss)."""
    counts: Counter[str] = Counter()
    for record in records:
        if "cannot record the outcome of" in str(record.msg) and isinstance(record.args, tuple):
            counts[str(record.args[1])] += 1
    return Repeats("outcomes the store failed to record", counts)


def unexplained(rx: WebhookReceiver, repeats: Repeats) -> list[str]:
    """The webhook-ids accepted more often than ``repeats`` explains, described."""
    if repeats.allowed is None:
        return []
    counts = Counter(r.webhook_id for r in rx.received if r.webhook_id is not None)
    return [f"{wid} accepted {n} times, {repeats.allowed.get(wid, 0)} repeat(s) explained"
            for wid, n in sorted(counts.items()) if n - 1 > repeats.allowed.get(wid, 0)]
