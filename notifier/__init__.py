"""roomlio-notifier: turn Roomlio's pull API into signed webhooks."""

from notifier.config import Config, load_config
from notifier.errors import ConfigError, NotifierError
from notifier.events import Event

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "Event", "NotifierError", "__version__", "load_config"]
