"""The published schemas: one source (the code), the repository's files equal to what
`notifier schema` prints, valid JSON Schema 2020-12 and AsyncAPI 3.0, examples that
validate and verify, and a suite check that catches a body the schema does not describe."""

from __future__ import annotations

import copy
import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from notifier.cli import main
from notifier.config import Webhook
from notifier.delivery.formats import FORMATS, formatter_for
from notifier.delivery.grouping import group_of
from notifier.schema import NAMES, refs_in, schema
from notifier.schema.asyncapi import asyncapi
from notifier.schema.examples import EXAMPLE_SECRET, example
from notifier.signing import decode_verifying_key, verify
from notifier.testing import Received, WebhookReceiver
from tests import schemacheck
from tests.conftest import notifier_command
from tests.test_chat_formats import delivery_of

REPO = Path(__file__).resolve().parent.parent
ASYNCAPI_SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json.gz"
UA = {"user-agent": "roomlio-notifier/0.1.0"}


def test_the_repository_files_are_what_notifier_schema_writes(tmp_path: Path) -> None:
    """schemas/ holds exactly `notifier schema --write` (regenerate it with that command)."""
    subprocess.run(notifier_command("schema", "--write", str(tmp_path)), check=True,
                   capture_output=True)
    written = {p.name: p.read_text() for p in tmp_path.iterdir()}
    in_repo = {p.name: p.read_text() for p in (REPO / "schemas").iterdir()}
    assert written.keys() == in_repo.keys()
    for name, text in written.items():
        assert in_repo[name] == text, f"schemas/{name} is stale: notifier schema --write schemas"


@pytest.mark.parametrize("args, file", [
    ((), "standard.json"), (("message.edited",), "message.edited.json"),
    (("cloudevents",), "cloudevents.json"), (("--asyncapi",), "asyncapi.json")])
def test_notifier_schema_prints_the_file(capsys: pytest.CaptureFixture[str],
                                         args: tuple[str, ...], file: str) -> None:
    """Each printed document is byte for byte its file (and standard is the default)."""
    assert main(["schema", *args]) == 0
    assert capsys.readouterr().out == (REPO / "schemas" / file).read_text()


@pytest.mark.parametrize("args, says", [
    (("template",), "it has no schema of ours"),
    (("slak",), "unknown schema 'slak' (choose from: standard, message.created"),
    (("slack", "--asyncapi"), "not both")])
def test_a_name_without_a_schema_is_a_usage_error_naming_the_choices(
        capsys: pytest.CaptureFixture[str], args: tuple[str, ...], says: str) -> None:
    """Exit 64, one line on stderr, nothing on stdout."""
    assert main(["schema", *args]) == 64
    out, err = capsys.readouterr()
    assert out == "" and says in err


def test_the_list_names_every_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`--list` prints the names `notifier schema NAME` takes, one a line."""
    assert main(["schema", "--list"]) == 0
    assert capsys.readouterr().out.split() == list(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_schema_is_valid_json_schema_2020_12_standing_alone(name: str) -> None:
    """The meta-schema accepts it and every $ref resolves inside the file."""
    document = schema(name)
    Draft202012Validator.check_schema(document)
    text = json.dumps(document)
    for target in refs_in(document):
        assert target in document["$defs"], f"{name}: #/$defs/{target} is missing"
    assert "#/components" not in text


def _asyncapi_validator() -> Draft7Validator:
    """The official AsyncAPI 3.0.0 JSON Schema (@asyncapi/specs, vendored: tests/data)."""
    return Draft7Validator(json.loads(gzip.decompress(ASYNCAPI_SCHEMA.read_bytes())))


def test_the_asyncapi_document_is_valid_asyncapi_3() -> None:
    """The official schema accepts the document; it refuses the same with a wrong action
    or without info (so the check is not vacuous)."""
    validator, document = _asyncapi_validator(), asyncapi()
    assert list(validator.iter_errors(document)) == []
    broken = copy.deepcopy(document)
    broken["operations"]["sendStandard"]["action"] = "post"
    assert list(validator.iter_errors(broken))
    del broken["info"]
    assert list(validator.iter_errors(broken))


def _examples() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    document = asyncapi()
    return [(name, message, ex) for name, message in document["components"]["messages"].items()
            for ex in message.get("examples", [])]


@pytest.mark.parametrize("name, message, ex", _examples(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_each_asyncapi_example_validates_and_its_signature_verifies(
        name: str, message: dict[str, Any], ex: dict[str, Any]) -> None:
    """Payload and headers match the message's schemas; a signed example verifies with
    the published example secret over its body as sent."""
    components = asyncapi()["components"]
    for part in ("payload", "headers"):
        validator = Draft202012Validator({**message[part], "components": components})
        assert list(validator.iter_errors(ex[part])) == [], part
    if "webhook-signature" in ex["headers"]:
        body = compact(ex["payload"])
        stamp = int(ex["headers"]["webhook-timestamp"])
        verify(decode_verifying_key(EXAMPLE_SECRET), ex["headers"], body, now=stamp)


def compact(document: Any) -> bytes:
    """The bytes a format writes for ``document``: compact UTF-8 JSON (what is signed)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _sample_requests() -> list[Any]:
    """A request of each format, mode and event type, as the transport would send it."""
    cases = []
    for fmt in [n for n in FORMATS if n != "template"]:
        modes = ["structured", "binary"] if fmt == "cloudevents" else [None]
        for mode in modes:
            for kind in ("message.created", "message.edited", "webhook.disabled"):
                options = {"cloudevents_mode": mode} if mode else {}
                cases.append(pytest.param(fmt, kind, options, id=f"{fmt}-{mode or ''}-{kind}"))
    return cases


def _received(got: dict[str, Any]) -> Received:
    return Received("/x", {**UA, **got["headers"]}, compact(got["payload"]), got["payload"],
                    got["headers"].get("webhook-id"), None, None, 0.0)


@pytest.mark.parametrize("fmt, kind, options", _sample_requests())
def test_every_format_validates_against_its_schema(fmt: str, kind: str,
                                                   options: dict[str, str]) -> None:
    """What each format sends for each event type passes the suite's body check."""
    assert schemacheck.check(_received(example(fmt, kind, **options))) is None


@pytest.mark.parametrize("fmt", ["slack", "teams"])
def test_a_group_of_chat_messages_validates(fmt: str) -> None:
    """A grouped Slack or Teams message (seven quoted and counted) matches its schema."""
    members = [delivery_of(f"refund {i}", n=i) for i in range(7)]
    delivery = group_of(members)
    payload = formatter_for(Webhook(name="chat", url="https://x.example/", format=fmt))(delivery)
    doc = json.loads(payload.body)
    got = Received("/x", {**UA, "content-type": payload.content_type}, payload.body, doc,
                   None, None, None, 0.0)
    assert schemacheck.check(got) is None


def _spoiled(spoil: str) -> Received:
    got = example("standard", "message.created")
    payload = got["payload"]
    if spoil == "extra field":
        payload["data"]["score"] = 1
    elif spoil == "wrong type":
        payload["data"]["rules"] = "refunds"
    elif spoil == "renamed key":
        payload["ts"] = payload.pop("timestamp")
    elif spoil == "unknown shape":
        got["payload"] = {"text": "hello"}
    return _received(got)


@pytest.mark.parametrize("spoil", ["extra field", "wrong type", "renamed key",
                                   "unknown shape"])
def test_the_body_check_refuses_a_body_the_schema_does_not_describe(spoil: str) -> None:
    """An added field, a changed type, a renamed key or an unknown shape is an error."""
    error = schemacheck.check(_spoiled(spoil))
    assert error is not None and ("schema" in error or "no known format" in error)


def test_the_body_check_lets_template_bodies_and_hand_posted_requests_pass() -> None:
    """A body of no known shape passes when the test sends format template; a request
    not sent by the notifier is not checked."""
    assert schemacheck.check(_spoiled("unknown shape"), template_bodies=True) is None
    foreign = _spoiled("extra field")
    foreign.headers["user-agent"] = "curl/8"
    assert schemacheck.check(foreign) is None


async def test_a_receiver_keeps_what_its_body_check_found_and_still_answers() -> None:
    """The receiver records the check's finding on the request and in body_errors, and
    answers as it would have (the test fails on it, not the delivery)."""
    async with WebhookReceiver(body_check=schemacheck.check) as rx, \
            aiohttp.ClientSession() as session:
        bad = _spoiled("wrong type")
        async with session.post(rx.url_for("/x"), data=bad.body, headers=bad.headers) as resp:
            assert resp.status == 200
    assert rx.body_errors == rx.received
    assert "rules" in (rx.received[0].body_error or "")


def test_the_suite_installs_the_schema_check_on_every_receiver() -> None:
    """conftest's autouse fixture is in force: receivers made without a check use it."""
    assert WebhookReceiver.default_body_check is not None


@pytest.mark.parametrize("name, root", [("standard", "StandardEvent"),
                                        ("cloudevents", "CloudEvent")])
def test_models_generated_from_the_files_parse_what_is_sent(
        tmp_path: Path, name: str, root: str) -> None:
    """datamodel-code-generator turns schemas/NAME.json into pydantic models that read each
    event type's example and refuse a body with a field the schema does not have."""
    out = tmp_path / f"generated_{name.replace('.', '_')}.py"
    subprocess.run([str(Path(sys.executable).with_name("datamodel-codegen")),
                    "--input", str(REPO / "schemas" / f"{name}.json"),
                    "--input-file-type", "jsonschema", "--output", str(out),
                    "--output-model-type", "pydantic_v2.BaseModel", "--formatters", "builtin"],
                   check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location(out.stem, out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[out.stem] = module  # pydantic resolves the forward references through it
    try:
        spec.loader.exec_module(module)
        model = getattr(module, root)
        fmt = "cloudevents" if name == "cloudevents" else "standard"
        for kind in ("message.created", "message.edited", "webhook.disabled"):
            body = example(fmt, kind)["payload"]
            assert type(model.model_validate(body).root).__name__.endswith(
                {"message.created": "MessageCreated", "message.edited": "MessageEdited",
                 "webhook.disabled": "WebhookDisabled"}[kind])
        with pytest.raises(ValueError, match="extra"):
            model.model_validate({**example(fmt)["payload"], "extra": 1})
    finally:
        del sys.modules[out.stem]


def test_the_receivers_page_publishes_the_example_secret_the_examples_are_signed_with() -> None:
    """docs/receivers.md names the secret that verifies the AsyncAPI examples."""
    assert EXAMPLE_SECRET in (REPO / "docs" / "receivers.md").read_text()


def test_write_into_a_path_that_is_not_a_folder_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--write` to a file's path says so in one line and exits 1."""
    blocker = tmp_path / "taken"
    blocker.write_text("")
    assert main(["schema", "--write", str(blocker)]) == 1
    assert "cannot write" in capsys.readouterr().err


#: A value of the wrong type for each field the client checks, and one field per kind
#: that it passes on unchecked.
TYPED = [("id", 7), ("createdAt", None), ("body", 3), ("editedAt", ["x"]),
         ("messageType", {}), ("userType", 1.5), ("roomID", False), ("links", "a link")]
UNCHECKED = [("userID", 42), ("username", None), ("links", [1, "x", None]),
             ("reactions", [{"emoji": "+1"}])]


@pytest.mark.parametrize("field, value", TYPED + UNCHECKED)
def test_the_message_schema_accepts_exactly_what_the_client_lets_through(
        field: str, value: Any) -> None:
    """A message the Roomlio client would quarantine is refused by the schema, and one it
    passes on (unchecked fields, fields Roomlio adds) is accepted: the two cannot drift."""
    from notifier.polling.client import check_message

    message = dict(example("standard")["payload"]["data"]["message"], **{field: value})
    passed_on = check_message(message) is None
    valid = schemacheck.validator("message.created").is_valid(
        {**example("standard")["payload"], "data": {"rules": ["r"], "message": message}})
    assert valid is passed_on
    assert passed_on is ((field, value) in UNCHECKED)
