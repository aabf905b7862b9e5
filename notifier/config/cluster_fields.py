"""The ``cluster:`` section and the form of a PostgreSQL ``state`` URL (pure, like schema).

Messages about the URL never echo it: it carries the database password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from notifier.config.fields import MISSING, Reader
from notifier.config.model import ClusterSettings
from notifier.config.settings import table

__all__ = ["CLUSTER_FIELDS", "POSTGRES_SCHEMES", "cluster_settings", "postgres_url_problem"]

#: ``state`` values with these prefixes (any case) are PostgreSQL URLs (as in notifier.store).
POSTGRES_SCHEMES = ("postgres://", "postgresql://")

CLUSTER_FIELDS = table(ClusterSettings)

_HINT = "write it as postgresql://user:${PASSWORD}@host:5432/database"


def postgres_url_problem(url: str) -> str | None:
    """What is wrong with the form of a PostgreSQL URL, or None (no connection is made)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"the PostgreSQL URL has an invalid port; {_HINT}"
    if not parts.hostname:
        return f"the PostgreSQL URL names no host; {_HINT}"
    if not parts.username:
        return f"the PostgreSQL URL names no user; {_HINT}"
    if not parts.path.strip("/") or "/" in parts.path.strip("/"):
        return f"the PostgreSQL URL names no database (or more than one); {_HINT}"
    if port == 0:
        return f"the PostgreSQL URL has an invalid port; {_HINT}"
    return None


def cluster_settings(r: Reader, value: Any) -> ClusterSettings:
    """The ``cluster:`` section (defaults when absent); heartbeat must beat the lease TTL."""
    if value is MISSING:
        return ClusterSettings()
    m = r.mapping(value, ("cluster",), tuple(CLUSTER_FIELDS))
    settings = ClusterSettings(**r.fields(m, ("cluster",), CLUSTER_FIELDS) if m else {})
    if settings.heartbeat * 2 > settings.lease_ttl:
        r.problem(("cluster", "heartbeat"),
                  f"must be at most half of cluster.lease_ttl ({settings.lease_ttl:g}s), so a "
                  "lease is renewed at least twice before it expires; lower it")
    return settings
