"""The cluster part of ``notifier status``: instances, their rooms and lease ages (only
when the state is PostgreSQL; a SQLite state has one runner and no leases)."""

from __future__ import annotations

from typing import Any

__all__ = ["cluster_doc", "cluster_lines"]


async def cluster_doc(store: Any) -> dict[str, Any] | None:
    """Instances (live or not), each with its rooms and their lease ages, from any host."""
    if not hasattr(store, "cluster"):
        return None
    now, instances, leases = await store.cluster()
    rows = []
    for inst in instances:
        mine = [lease for lease in leases if lease["owner"] == inst["id"]]
        rows.append({
            "instance": inst["id"], "host": inst["host"], "pid": inst["pid"],
            "live": inst["expires_at"] > now,
            "heartbeat_expires_in": round(inst["expires_at"] - now, 1),
            "rooms": {lease["room"]: {
                "lease_age": round(now - (lease["acquired_at"] or now), 1),
                "expires_in": round(lease["expires_at"] - now, 1)} for lease in mine},
        })
    held = {lease["room"] for lease in leases if lease["expires_at"] > now}
    return {"instances": rows, "rooms_leased": len(held)}


def cluster_lines(doc: dict[str, Any] | None) -> list[str]:
    """The human-readable lines for ``cluster_doc``'s result."""
    if doc is None:
        return []
    lines = [f"instances: {sum(i['live'] for i in doc['instances'])} live, "
             f"{doc['rooms_leased']} room(s) leased"]
    for inst in doc["instances"]:
        ages = [r["lease_age"] for r in inst["rooms"].values()]
        oldest = f", oldest lease {max(ages):.0f}s" if ages else ""
        state = "live" if inst["live"] else "GONE (expired)"
        lines.append(f"  {inst['instance']:32} {state:15} {len(inst['rooms'])} room(s){oldest}")
        for room, lease in sorted(inst["rooms"].items()):
            lines.append(f"      {room}: lease age {lease['lease_age']:.0f}s, "
                         f"expires in {lease['expires_in']:.0f}s")
    return lines
