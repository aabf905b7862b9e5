"""roomlio-notifier: turn Roomlio's pull API into signed webhooks."""

from __future__ import annotations

from collections.abc import Mapping

from notifier.config import Config
from notifier.errors import ConfigError, NotifierError
from notifier.events import Event

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "Event", "NotifierError", "__version__", "load_config"]


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate ``path`` with every payload format's rules; raise ConfigError.

    The same as ``notifier.delivery.formats.load_config``, imported when called: every
    ``import notifier.<module>`` runs this file, and most need no formats (nor Jinja2).
    """
    from notifier.delivery.formats import load_config as load

    return load(path, env)
