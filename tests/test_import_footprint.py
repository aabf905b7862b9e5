"""What ``notifier run`` loads: a library only some configs need is imported by those only.

cryptography (ed25519 ``whsk_`` keys) and re2 (rule ``regex`` patterns) are large native
extensions, Jinja2 (``format: template``) a large package; a process that signs with
``whsec_`` secrets and matches keywords must not pay for them (issue 16: 10,000 rooms
< 80 MB; bench/RESULTS.md, "Memory at 10,000 rooms, again").
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from notifier.testing import RoomlioEmulator, WebhookReceiver
from tests.conftest import API_KEY, SECRET, TEST_ENV, config_text

#: ``notifier run`` as the CLI runs it, printing the top-level modules it had loaded on exit.
CHILD = ("import atexit, runpy, sys\n"
         "atexit.register(lambda: print(' '.join(sorted({m.split('.')[0] "
         "for m in sys.modules})), flush=True))\n"
         "sys.argv = ['notifier', 'run', '--config', sys.argv[1], '--log-level', 'ERROR']\n"
         "runpy.run_module('notifier', run_name='__main__')\n")
ED25519_SEED = "whsk_" + base64.b64encode(b"s" * 32).decode()
KEYWORDS = [{"name": "refunds", "keywords": ["refund"], "notify": ["crm"]}]


async def _loaded(tmp_path: Path, emu: RoomlioEmulator, rx: WebhookReceiver,
                  **config: Any) -> set[str]:
    """The modules of a ``notifier run`` that delivered the room's one message."""
    emu.add_room(key="room-1")
    emu.post("room-1", "refund please")
    path = tmp_path / "rules.yaml"
    path.write_text(config_text(emu.url, rx.url, rooms=["room-1"], **config))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(path), env={**os.environ, **TEST_ENV},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
    try:
        await rx.wait_for(lambda r: bool(r.attempts), timeout=20)
    finally:
        proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out
    return set(out.decode().split())


async def test_keywords_and_hmac_secrets_load_no_library_they_do_not_need(
        tmp_path: Path) -> None:
    """A run with keyword rules, whsec_ secrets and the standard format delivers without
    importing cryptography, re2 or Jinja2."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, \
            WebhookReceiver({"/crm": SECRET, "/mod": SECRET}) as rx:
        loaded = await _loaded(tmp_path, emu, rx, rules=KEYWORDS)
        assert rx.received and rx.received[0].verified
    assert "notifier" in loaded and "aiohttp" in loaded  # the list is the run's own
    assert not {"cryptography", "re2", "jinja2"} & loaded


@pytest.mark.parametrize(("config", "library"), [
    ({"rules": [{"name": "r", "regex": ["ref+und"], "notify": ["crm"]}]}, "re2"),
    ({"rules": KEYWORDS, "webhooks": {"crm": {"url": "", "secret": ED25519_SEED}}},
     "cryptography"),
    pytest.param({"rules": KEYWORDS, "webhooks": {"crm": {
        "url": "", "format": "template", "template": "{{ message | tojson }}"}}}, "jinja2",
        marks=pytest.mark.template_bodies),
])
async def test_a_config_that_needs_the_library_loads_it(
        tmp_path: Path, config: dict[str, Any], library: str) -> None:
    """A regex rule loads re2, an ed25519 key cryptography, a template webhook Jinja2 (the
    probe sees each)."""
    async with RoomlioEmulator(api_key=API_KEY) as emu, WebhookReceiver() as rx:
        for hook in config.get("webhooks", {}).values():
            hook["url"] = f"{rx.url}/crm"
        assert library in await _loaded(tmp_path, emu, rx, **config)
