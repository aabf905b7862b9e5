"""The PostgreSQL store's room leases: which instance tails which room.

A lease is claimed with ``FOR UPDATE SKIP LOCKED``, renewed by a heartbeat, and fences the
holder's commits (``check_leases``). Every time here is the database's clock (``NOW``), so
hosts whose clocks disagree still agree on who holds what.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from notifier.errors import LeaseLost
from notifier.store.postgres.schema import NOW

__all__ = ["check_leases", "claim_rooms", "cluster", "heartbeat", "leave", "release_rooms"]


async def check_leases(conn: Any, rooms: set[str], instance: str) -> None:
    """Raise LeaseLost unless ``instance`` holds the lease of every one of ``rooms``
    (inside the caller's transaction)."""
    # FOR SHARE: a takeover (an UPDATE of the lease) waits for this commit, so the new
    # holder reads the cursor this commit writes, never one from before it.
    held = await conn.fetch(
        "SELECT room FROM notifier_leases WHERE room = ANY($1::text[]) AND owner = $2"
        f" AND expires_at > {NOW} FOR SHARE", list(rooms), instance)
    lost = rooms - {r["room"] for r in held}
    if lost:
        raise LeaseLost(lost)


async def heartbeat(conn: Any, instance: str, host: str, pid: int,
                    ttl: float) -> tuple[set[str], int]:
    """Register or renew ``instance`` and its leases; return (rooms held, live instances)."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO notifier_instances (id, host, pid, started_at, expires_at)"
            f" VALUES ($1, $2, $3, {NOW}, {NOW} + $4) ON CONFLICT (id) DO UPDATE"
            " SET expires_at = excluded.expires_at", instance, host, pid, ttl)
        # A lease renewed after it expired is safe: it is renewed only if nobody took it,
        # and then nobody tailed the room in between.
        held = await conn.fetch(
            f"UPDATE notifier_leases SET expires_at = {NOW} + $2 WHERE owner = $1"
            " RETURNING room", instance, ttl)
        live = await conn.fetchval(
            f"SELECT count(*) FROM notifier_instances WHERE expires_at > {NOW}")
        await conn.execute(f"DELETE FROM notifier_instances WHERE expires_at < {NOW} - 86400")
    return {r["room"] for r in held}, int(live)


async def claim_rooms(conn: Any, instance: str, rooms: Sequence[str], limit: int,
                      ttl: float) -> list[str]:
    """Take up to ``limit`` of ``rooms`` that nobody holds (or whose lease expired)."""
    if limit <= 0 or not rooms:
        return []
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO notifier_leases (room, expires_at) SELECT unnest($1::text[]), 0"
            " ON CONFLICT (room) DO NOTHING", list(rooms))
        taken = await conn.fetch(
            "WITH free AS (SELECT room FROM notifier_leases WHERE room = ANY($1::text[])"
            f" AND (owner IS NULL OR expires_at <= {NOW}) ORDER BY random() LIMIT $2"
            " FOR UPDATE SKIP LOCKED)"
            f" UPDATE notifier_leases AS l SET owner = $3, acquired_at = {NOW},"
            f" expires_at = {NOW} + $4, fence = l.fence + 1 FROM free"
            " WHERE l.room = free.room RETURNING l.room", list(rooms), limit, instance, ttl)
    return sorted(r["room"] for r in taken)


async def release_rooms(conn: Any, instance: str, rooms: Collection[str]) -> None:
    """Give up ``instance``'s leases on ``rooms``."""
    await conn.execute("UPDATE notifier_leases SET owner = NULL, expires_at = 0"
                       " WHERE owner = $1 AND room = ANY($2::text[])", instance, list(rooms))


async def leave(conn: Any, instance: str) -> None:
    """Release every lease of ``instance`` and unregister it."""
    async with conn.transaction():
        await conn.execute("UPDATE notifier_leases SET owner = NULL, expires_at = 0"
                           " WHERE owner = $1", instance)
        await conn.execute("DELETE FROM notifier_instances WHERE id = $1", instance)


async def cluster(conn: Any) -> tuple[float, list[Any], list[Any]]:
    """(database now, instances, leases held) for ``notifier status``."""
    now = await conn.fetchval(f"SELECT {NOW}")
    instances = await conn.fetch("SELECT id, host, pid, started_at, expires_at"
                                 " FROM notifier_instances ORDER BY id")
    leases = await conn.fetch("SELECT room, owner, acquired_at, expires_at"
                              " FROM notifier_leases WHERE owner IS NOT NULL"
                              " ORDER BY owner, room")
    return now, list(instances), list(leases)
