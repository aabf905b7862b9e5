"""Payload formats, chosen by the webhook's ``format``: the registry of Format objects.

Each format is one module holding one ``Format`` (see ``base``): name, default rate,
signed or not, groupable or not, its keys' ``validate`` and ``build``. A new format is
one module plus one line in ``FORMATS``.

Config imports nothing from here (the layers go config → delivery), so its loader takes
the formats as an argument. ``load_config`` and ``check_config`` below are
``notifier.config``'s with ``FORMATS`` given: what ``notifier check``, ``run``, reload,
the delivery workers and the tests call, so all of them see the same problems with the
same file:line. Calling ``notifier.config.load_config`` needs ``formats=`` (no default,
so no caller silently skips a format's checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from notifier import config
from notifier.config import Config, Webhook
from notifier.delivery.formats import cloudevents, slack, standard, teams, template
from notifier.delivery.formats.base import Format, Formatter, Payload
from notifier.errors import Problem

__all__ = ["FORMATS", "Format", "Formatter", "Payload", "check_config", "formatter_for",
           "load_config"]

FORMATS: Mapping[str, Format] = MappingProxyType({
    "standard": standard.FORMAT,
    "slack": slack.FORMAT,
    "teams": teams.FORMAT,
    "template": template.FORMAT,
    "cloudevents": cloudevents.FORMAT,
})
"""Every format by name; the order is the order messages list them in."""


def formatter_for(webhook: Webhook) -> Formatter:
    """The payload function of ``webhook``."""
    return FORMATS[webhook.format].formatter(webhook)


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """``notifier.config.load_config`` with every format's rules (raises ConfigError)."""
    return config.load_config(path, env, formats=FORMATS)


def check_config(path: str, env: Mapping[str, str] | None = None) -> list[Problem]:
    """``notifier.config.check_config`` with every format's rules."""
    return config.check_config(path, env, formats=FORMATS)
