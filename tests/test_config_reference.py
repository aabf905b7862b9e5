"""The settings reference and the defaults in effect both come from the declarations."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import yaml

from notifier.config import (
    ClusterSettings,
    DeliverySettings,
    LoggingSettings,
    RoomlioSettings,
    Rule,
    ServerSettings,
    Webhook,
    schema,
    server_fields,
    webhook_fields,
)
from notifier.config.cluster_fields import CLUSTER_FIELDS
from notifier.config.reference import SECTIONS, render
from notifier.delivery.formats import load_config

DOC = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
MINIMAL = {"roomlio": {"base_url": "https://api.example.com", "api_key": "k" * 20},
           "rooms": [{"key": "r1"}], "webhooks": {"crm": {"url": "https://hooks.example.com/x"}},
           "rules": [{"name": "r", "notify": ["crm"]}], "server": {}}


def test_docs_settings_md_is_what_the_declarations_generate():
    """docs/settings.md equals the reference rendered from notifier/config/model.py."""
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/settings.md is stale: python -m notifier.config.reference > docs/settings.md")


def test_the_reference_module_prints_the_reference():
    """`python -m notifier.config.reference` prints exactly what the docs test compares."""
    out = subprocess.run([sys.executable, "-m", "notifier.config.reference"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert out == render()


def test_every_key_the_schema_accepts_is_in_the_reference():
    """A key read outside the declarations would go undocumented: each accepted key of
    each section is named in that section of the reference."""
    text = {title: intro + " ".join(f"`{key}` {s.doc}" for key, s in settings.items())
            for title, intro, settings in SECTIONS}
    accepted = {
        "Top level": schema.TOP_KEYS, "`roomlio`": tuple(schema.ROOMLIO_FIELDS),
        "`rooms`": schema.ROOM_KEYS, "`delivery`": tuple(schema.DELIVERY_FIELDS),
        "`webhooks`": webhook_fields.WEBHOOK_KEYS, "`rules`": schema.RULE_KEYS,
        "`server`": server_fields.SERVER_KEYS, "`logging`": tuple(server_fields.LOGGING_FIELDS),
        "`cluster`": tuple(CLUSTER_FIELDS),
    }
    missing = [f"{title}: {key}" for title, keys in accepted.items() for key in keys
               if f"`{key}`" not in text[title] and not (
                   title == "`webhooks`" and key in webhook_fields.WEBHOOK_FIELDS)]
    assert missing == []


def test_a_config_that_sets_nothing_gets_the_declared_defaults(tmp_path):
    """Every field with a declared default holds exactly it after loading a config that
    sets nothing optional: no reader applies a default of its own."""
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(MINIMAL, sort_keys=False))
    config = load_config(str(path))
    loaded = {RoomlioSettings: config.roomlio, DeliverySettings: config.delivery,
              Webhook: config.webhooks["crm"], Rule: config.rules[0],
              ServerSettings: config.server, LoggingSettings: config.logging,
              ClusterSettings: config.cluster}
    differ = [f"{cls.__name__}.{f.name}: {getattr(value, f.name)!r} != {f.default!r}"
              for cls, value in loaded.items() for f in dataclasses.fields(cls)
              if f.default is not dataclasses.MISSING and f.name != "line"
              and getattr(value, f.name) != f.default]
    assert differ == []
    assert dict(config.webhooks["crm"].headers) == {}
