"""The Jinja2 environment of ``format: template``: immutable sandbox and a render budget.

A template runs on the event loop, once per delivery, over text a chat user wrote. The
sandbox keeps it from Python internals; ``ImmutableSandboxedEnvironment`` also keeps it
from changing the event it renders (``message.links.append(…)``), which every other
webhook of the event shares. The budget keeps it from freezing the loop or filling
memory: every loop iteration and every call is a step (at most ``MAX_STEPS``, and the
clock is read every few steps against ``MAX_SECONDS``), ``range`` gives at most
``MAX_RANGE`` numbers, and no operation may build a string or list over ``MAX_OUTPUT``
(``'x' * n``, ``center``/``indent``/``replace``/``join``, ``%`` and ``format`` widths are
checked before they run). ``render`` caps the output itself.

Loops are counted by rewriting each ``{% for %}`` of the parsed template to iterate
through ``budget_iter`` (imported by the compiled code, so a template cannot shadow it);
calls are counted in ``Environment.call``, which the sandbox routes every call through.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["MAX_OUTPUT", "MAX_RANGE", "MAX_SECONDS", "MAX_STEPS", "BudgetEnvironment",
           "BudgetExceeded", "budget", "budget_iter"]

MAX_STEPS = 100_000
"""Loop iterations plus calls in one render."""
MAX_SECONDS = 0.25
MAX_RANGE = 10_000
MAX_OUTPUT = 4 * 1024 * 1024
"""Characters in the rendered body, and in any one string or list built on the way."""
_CLOCK_EVERY = 64
_MAX_POWER_BITS = 100_000
"""``a ** b`` of ints may have at most this many bits (a 30,000-digit number)."""
_WIDTH = re.compile(r"%[^a-zA-Z%]*?(?:\*|\d{7,})|\{[^{}:]*:[^{}]*\d{7,}")
"""A ``%`` or ``{:}`` field asking for a width or precision of a million or more. (It may
see message text: each ``%`` or ``{`` scans only up to the next one, so it is linear.)"""


class BudgetExceeded(SecurityError):
    """A template went over its render budget; the message names the limit."""


class _Budget:
    __slots__ = ("deadline", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise BudgetExceeded(f"over the render budget of {MAX_STEPS:,} steps (loop "
                                 "iterations and calls)")
        if self.steps % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            raise BudgetExceeded(f"over the render budget of {MAX_SECONDS * 1000:.0f} ms")


_CURRENT: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "template_budget", default=None)


@contextlib.contextmanager
def budget() -> Iterator[None]:
    """A fresh budget for the render inside the ``with`` block."""
    token = _CURRENT.set(_Budget())
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _tick() -> None:
    current = _CURRENT.get()
    if current is not None:  # None while compiling: Jinja folds constants then
        current.tick()


def budget_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """``iterable``, one step per item (every ``{% for %}`` iterates through this)."""
    for item in iterable:
        _tick()
        yield item


def _too_big(size: int, what: str) -> None:
    if size > MAX_OUTPUT:
        raise BudgetExceeded(f"{what} would be {size:,} long, over the render budget's "
                             f"{MAX_OUTPUT:,}")


def _check_width(fmt: Any) -> None:
    """A format string (``%``, ``|format``, ``.format``) must not ask for a huge field."""
    if isinstance(fmt, str) and _WIDTH.search(fmt):
        raise BudgetExceeded("a format width of a million or more is over the render budget")


def _width(value: Any) -> int:
    return len(value) if isinstance(value, str) else \
        value if isinstance(value, int) and not isinstance(value, bool) else 0


def _expected_size(name: str, subject: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> int:
    """How long the result of ``name`` on ``subject`` would be, for the operations that
    can multiply their input (0 for the others: they are checked once done)."""
    text = subject if isinstance(subject, str) else ""
    first = args[0] if args else None
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(len(text), _width(first if first is not None else kwargs.get("width")))
    if name == "expandtabs":
        return len(text) + text.count("\t") * _width(first if first is not None else 8)
    if name == "indent":
        width = first if first is not None else kwargs.get("width", 4)
        return len(str(subject)) + _width(width) * (str(subject).count("\n") + 1)
    if name == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        old, new = args[0], args[1]
        count = str(subject).count(old) if old else len(str(subject)) + 1
        return len(str(subject)) + count * max(0, len(new) - len(old))
    if name == "join" and isinstance(subject, str) and isinstance(first, Sized):
        return len(subject) * max(0, len(first) - 1)
    if name == "join" and isinstance(first, str) and isinstance(subject, Sized):
        return len(first) * max(0, len(subject) - 1)
    return 0


def _budgeted_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        _tick()
        # filters get the environment, context or eval context first when they ask
        plain = tuple(a for a in args
                      if not isinstance(a, BudgetEnvironment | Context | nodes.EvalContext))
        if plain:
            if name == "format":
                _check_width(plain[0])
            _too_big(_expected_size(name, plain[0], plain[1:], kwargs), f"|{name}")
        result = func(*args, **kwargs)
        if isinstance(result, str | list):
            _too_big(len(result), f"|{name}")
        return result

    return run


class BudgetEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, every loop and call counted, sizes checked."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _budgeted_filter(name, f) for name, f in self.filters.items()}
        self.globals["range"] = _range

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        """Register ``func`` as filter ``name``, budgeted like the built-in ones."""
        self.filters[name] = _budgeted_filter(name, func)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            counted = nodes.ImportedName(f"{__name__}.budget_iter", lineno=loop.lineno)
            loop.iter = nodes.Call(counted, [loop.iter], [], None, None, lineno=loop.lineno)
        return tree

    def call(__self, __context: Context, __obj: Any,
             *args: Any, **kwargs: Any) -> Any:
        """Call ``__obj`` from the template: one step, its size arguments checked."""
        _tick()
        # str.format comes wrapped by the sandbox (its formatter): look at what it wraps
        subject = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        name = getattr(__obj, "__name__", "")
        if name in ("format", "format_map"):
            _check_width(subject)
        if subject is not None:
            _too_big(_expected_size(name, subject, args, kwargs), f".{name}()")
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**`` and ``%``, refused before they build something too big."""
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int):
                    _too_big(len(seq) * n, "a repeated string or list")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and left.bit_length() * right > _MAX_POWER_BITS:
                raise BudgetExceeded(f"{left} ** {right} is over the render budget")
        elif operator == "%":
            _check_width(left)
        return super().call_binop(context, operator, left, right)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise BudgetExceeded(f"range() of {len(numbers):,} numbers is over the render "
                             f"budget's {MAX_RANGE:,}")
    return numbers
