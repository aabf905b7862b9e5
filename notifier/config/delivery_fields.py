"""The checks across delivery keys, shared by ``delivery`` and each webhook: the retry
policy (a schedule or exponential backoff), the circuit breaker's bounds, ordering.

Pure, like ``schema``: these record Problems. The keys themselves are declared in
``model`` (``DeliverySettings``), their converters in ``values``.
"""

from __future__ import annotations

from typing import Any

from notifier.config.fields import Reader
from notifier.config.model import EXPONENTIAL_DEFAULTS
from notifier.config.yaml import Path

__all__ = ["check_breaker", "check_ordered", "resolve_retry"]

_EXPONENTIAL_KEYS = tuple(EXPONENTIAL_DEFAULTS)


def resolve_retry(r: Reader, m: dict[str, Any] | None, path: Path, settings: dict[str, Any],
                  *, default: tuple[float, ...] | None) -> None:
    """Settle ``settings``' retry policy from the keys given in ``m``.

    An explicit ``retry_schedule`` wins; ``max_attempts``/``max_backoff`` choose exponential
    backoff; neither keeps ``default`` (the inherited policy). With a schedule,
    ``max_attempts`` and ``max_backoff`` are derived from it, so they always tell the truth.
    """
    given = m or {}
    exponential = [key for key in _EXPONENTIAL_KEYS if key in given]
    if "retry_schedule" in given and exponential:
        r.problem((*path, "retry_schedule"),
                  f"give either retry_schedule or {' and '.join(exponential)}, not both")
    if "retry_schedule" not in given:
        settings["retry_schedule"] = None if exponential else default
    if exponential and default is not None:  # leaving a schedule: the unset half is reset
        for key, value in EXPONENTIAL_DEFAULTS.items():
            settings.setdefault(key, value) if key in given else settings.update({key: value})
    schedule = settings.get("retry_schedule")
    if schedule:
        settings["max_attempts"] = len(schedule) + 1
        settings["max_backoff"] = max(schedule)


def check_ordered(r: Reader, path: Path, settings: dict[str, Any], group_wait: float) -> None:
    """An ordered webhook sends one delivery per room at a time: nothing left to group."""
    if settings.get("ordered") and group_wait > 0:
        r.problem((*path, "group_wait"), "an ordered webhook sends one event per room at a "
                                         "time, so there is nothing to group; remove "
                                         "group_wait or set ordered: false")


def check_breaker(r: Reader, m: dict[str, Any] | None, path: Path,
                  settings: dict[str, Any]) -> None:
    """``breaker_min_attempts`` given above ``breaker_window`` could never open the breaker;
    an inherited one is lowered to the window (a small window judges all it holds)."""
    window, least = settings.get("breaker_window"), settings.get("breaker_min_attempts")
    if not isinstance(window, int) or not isinstance(least, int):
        return  # one of them is invalid, and reported already
    if window == 0 or least <= window:
        return
    if "breaker_min_attempts" in (m or {}):
        r.problem((*path, "breaker_min_attempts"),
                  f"is {least}, more than breaker_window ({window}): the breaker could "
                  f"never open; lower it or raise breaker_window")
    else:
        settings["breaker_min_attempts"] = window
