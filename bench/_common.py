"""Shared pieces of the benchmarks: configs, subprocess control, /proc readings."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
API_KEY = "bench-key"
SECRET = "whsec_" + base64.b64encode(b"b" * 32).decode()


def config_yaml(roomlio_url: str, sink_url: str, rooms: list[str], state: str, *,
                workers: int | str = 0, http_client: str = "auto", **roomlio: Any) -> str:
    """A notifier config: every message containing 'refund' goes to the sink; ``workers``
    delivery worker processes POST for it (0: the notifier's own process does), with
    ``http_client`` (left out when "auto", so that an older tree reads the config too)."""
    client = {} if http_client == "auto" else {"http_client": http_client}
    return yaml.safe_dump({
        "roomlio": {"base_url": roomlio_url, "api_key": API_KEY, "poll_interval": "1s",
                    "page_size": 1000, "start_from": "beginning", "edit_lookback": 0,
                    **roomlio},
        "rooms": [{"key": r} for r in rooms],
        "state": state,
        "delivery": {"allow_private_urls": True, "max_in_flight": 64, "timeout": "30s",
                     "workers": workers, **client},
        "webhooks": {"sink": {"url": sink_url, "secret": SECRET}},
        "rules": [{"name": "bench", "keywords": ["refund"], "notify": ["sink"]}],
    })


async def start_notifier(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier", "run", "--config", str(config), "--log-level",
        "ERROR", stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    await proc.wait()


def preload(emu: Any, rooms: list[str], messages: int, matching: int | None = None) -> None:
    """Post ``messages`` messages in each room, ``matching`` of them (all by default)
    matching the config_yaml rule ('refund'), spread evenly, the room's last message one of
    them: the last delivery then comes after every message was polled (with the matching
    ones first, a run at 5% ended after each room's first page)."""
    matching = messages if matching is None else matching
    for room in rooms:
        emu.add_room(key=room)
        for i in range(messages):
            hit = i * matching // messages != (i + 1) * matching // messages
            emu.post(room, f"refund please, order {i}" if hit else f"hello {i}")


def code_env(before: str | None, label: str,
             env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a contender: a label ending "(before)" imports the notifier
    package from the folder ``before`` (ahead of the installed one) rather than this tree."""
    env = dict(os.environ if env is None else env)
    if before and label.endswith("(before)"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [before, env.get("PYTHONPATH")]))
    return env


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def write_results(name: str, report: dict[str, Any]) -> Path:
    report.update(date=time.strftime("%Y-%m-%d"), machine=platform.platform(),
                  cpus=os.cpu_count(), command=" ".join(sys.argv))
    out = HERE / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return out


median = statistics.median
