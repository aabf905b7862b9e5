"""The delivery-operations part of the rules.yaml schema: retry schedules, the circuit
breaker, and auto-disable keys, shared by ``delivery`` and each webhook.

Pure, like ``schema``: converters raise Invalid, ``resolve_retry`` records Problems.
"""

from __future__ import annotations

from typing import Any

from notifier.config.fields import Conv, Invalid, Reader, boolean, duration, integer, parse_duration
from notifier.config.yaml import Path

__all__ = ["OPS_FIELDS", "check_breaker", "check_ordered", "ratio", "resolve_retry",
           "retry_schedule"]

_EXPONENTIAL_KEYS = ("max_attempts", "max_backoff")
#: What exponential backoff uses for a half not given (DeliverySettings' defaults).
EXPONENTIAL_DEFAULTS: dict[str, Any] = {"max_attempts": 12, "max_backoff": 600.0}


def ratio(value: Any, shown: str) -> float:
    """A share above 0 and at most 1: ``0.7`` or ``70%``."""
    number: Any = value
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 < number <= 1:
        raise Invalid(f"must be a share like 0.7 or 70% (above 0, at most 1) (got {shown})")
    return float(number)


def retry_schedule(value: Any, shown: str) -> tuple[float, ...]:
    """A non-empty list of durations: the wait before each retry."""
    if not isinstance(value, list) or not value:
        raise Invalid(f"must be a non-empty list of durations like [5s, 5m, 30m, 2h] "
                      f"(got {shown})")
    steps = []
    for i, item in enumerate(value):
        try:
            seconds = parse_duration(item)
        except ValueError:
            seconds = -1.0
        if seconds <= 0:
            raise Invalid(f"item {i} must be a duration greater than 0, like 5s or 2h")
        steps.append(seconds)
    return tuple(steps)


#: Keys that ``delivery`` and every webhook accept, beyond the original ones.
OPS_FIELDS: dict[str, Conv[Any]] = {
    "retry_schedule": retry_schedule,
    "breaker_window": integer(0, 10000),
    "breaker_threshold": ratio,
    "breaker_cooldown": duration(),
    "breaker_min_attempts": integer(1, 10000),
    "breaker_period": duration(),
    "disable_after": duration(allow_zero=True),
    "ordered": boolean,
}


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
