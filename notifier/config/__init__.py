"""Configuration: ``rules.yaml`` read into frozen dataclasses, or every problem with its file:line.

``model`` declares each setting once (``settings``: how; ``values``: its converters);
``load`` holds ``load_config``/``check_config``; ``schema`` and the ``*_fields`` modules read
and check each section; ``yaml*`` is the YAML plumbing (lines, duplicate keys, ``${VAR}``,
size limits); ``secrets`` lints where secret values come from; ``reference`` writes
docs/settings.md from the declarations.
"""

from notifier.config.load import check_config, load_config
from notifier.config.model import (
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_CONFIG_BYTES,
    ClusterSettings,
    Config,
    DeliverySettings,
    LoggingSettings,
    Rate,
    Room,
    RoomlioSettings,
    Rule,
    ServerSettings,
    Webhook,
)

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MAX_CONFIG_BYTES",
    "ClusterSettings",
    "Config",
    "DeliverySettings",
    "LoggingSettings",
    "Rate",
    "Room",
    "RoomlioSettings",
    "Rule",
    "ServerSettings",
    "Webhook",
    "check_config",
    "load_config",
]
