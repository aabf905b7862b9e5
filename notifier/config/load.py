"""Reading rules.yaml: the file (size-limited, UTF-8), its YAML, then the schema.

``load_config`` returns a Config or raises ConfigError with every problem found;
``check_config`` lists the problems without raising. The YAML plumbing (lines, duplicate
keys, ${VAR}) lives in ``yaml``, the settings in ``model``, how sections build in ``schema``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from notifier.config.format_fields import FormatRules
from notifier.config.model import MAX_CONFIG_BYTES, Config
from notifier.config.yaml import parse
from notifier.errors import ConfigError, Problem

__all__ = ["check_config", "load_config"]


def _too_big(path: str, size: str) -> Problem:
    return Problem(path, None, "", f"file is {size} bytes; the limit is "
                                   f"{MAX_CONFIG_BYTES:,} bytes (10 MiB): split off what "
                                   "makes it so large")


def _read(path: str) -> str | Problem:
    try:
        with open(path, encoding="utf-8-sig") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                return _too_big(path, f"{size:,}")
            text = file.read(MAX_CONFIG_BYTES + 1)  # a pipe or a file still growing
            if len(text) > MAX_CONFIG_BYTES:
                return _too_big(path, f"more than {MAX_CONFIG_BYTES:,}")
            return text
    except FileNotFoundError:
        return Problem(path, None, "", "file not found")
    except UnicodeDecodeError as exc:
        return Problem(path, None, "", f"not UTF-8 text (bad byte at offset {exc.start})")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Problem(path, None, "", f"cannot read the file: {reason}")


def _load(path: str, env: Mapping[str, str] | None,
          formats: Mapping[str, FormatRules]) -> tuple[Config | None, list[Problem]]:
    source = _read(path)
    if isinstance(source, Problem):
        return None, [source]
    doc, problems = parse(source, path, os.environ if env is None else env)
    if doc is None:
        return None, problems
    if doc.data is None:
        return None, [Problem(path, None, "", "the file is empty; it needs roomlio, rooms, "
                                              "webhooks and rules")]
    from notifier.config.schema import build  # here: keeps `import notifier.config` light

    config, schema_problems = build(doc, path, formats)
    problems = sorted(problems + schema_problems, key=lambda p: p.line or 0)
    return (None, problems) if problems else (config, [])


def check_config(path: str, env: Mapping[str, str] | None = None, *,
                 formats: Mapping[str, FormatRules]) -> list[Problem]:
    """Every problem in ``path`` (empty when it is valid); never raises for a bad file.

    ``formats`` are the payload formats a webhook may name (config knows none itself):
    ``notifier.delivery.formats.FORMATS``, whose ``check_config`` passes them.
    """
    return _load(path, env, formats)[1]


def load_config(path: str, env: Mapping[str, str] | None = None, *,
                formats: Mapping[str, FormatRules]) -> Config:
    """Load and validate ``path``; raise ConfigError listing every problem found.

    ``formats`` as for ``check_config``; ``notifier.delivery.formats.load_config`` is
    this function with the notifier's formats.
    """
    config, problems = _load(path, env, formats)
    if config is None:
        raise ConfigError(problems)
    return config
