"""`format: template` runs in an immutable sandbox within a render budget: a template can
neither change the event it renders nor freeze the loop or fill memory; it fails that
delivery (a dead letter naming the budget), and `check` refuses what its text shows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from notifier.delivery.formats import check_config
from notifier.delivery.formats.template_render import compile_template, render
from notifier.errors import DeliveryPermanentError
from notifier.events import CREATED, Delivery, Event
from tests.conftest import TEST_ENV, Outcomes, config_text, running
from tests.test_chat_delivery import _store_after, chat_rules

BODY = "x" * 1000


def delivery(body: str = BODY) -> Delivery:
    message = {"id": "msg_1", "body": body, "links": [{"type": "image", "url": "u"}]}
    event = Event.from_message(CREATED, "r1", message, ("refunds",), 0.0)
    return Delivery.for_webhook(event, "crm", ("refunds",))


def rendered(source: str, body: str = BODY) -> str:
    template = compile_template(source, "test")
    return render(template, delivery(body), webhook="crm", content_type="text/plain").decode()


@pytest.mark.parametrize("source", [
    "{{ message.links.append('x') }}",
    "{{ message.links[0].update({'url': 'evil'}) }}",
    "{{ message.update({'body': 'changed'}) }}",
    "{% set _ = event.rules.pop() %}",
    "{{ message.links.clear() }}",
])
def test_a_template_cannot_change_the_event_it_renders(source):
    """Methods that change lists and dicts are refused: the delivery fails, and the event
    (shared by every webhook it goes to) is as it was."""
    d = delivery()
    before = repr(d.event.message)
    template = compile_template(source, "test")
    with pytest.raises(DeliveryPermanentError, match="is unsafe"):
        render(template, d, webhook="crm", content_type="text/plain")
    assert repr(d.event.message) == before


@pytest.mark.parametrize(("source", "says"), [
    ("{% for a in message.body %}{% for b in message.body %}{% for c in message.body %}"
     "{% endfor %}{% endfor %}{% endfor %}", "100,000 steps"),
    ("{% for i in range(message.body|length * 1000) %}{% endfor %}",
     "range() of 1,000,000 numbers"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", None),
    ("{{ message.body * 100000 }}", "a repeated string or list would be 100,000,000"),
    ("{{ message.body.center(10**9) }}", ".center() would be 1,000,000,000"),
    ("{{ message.body|center(10**9) }}", "|center would be 1,000,000,000"),
    ("{{ message.body|replace('x', '\\n')|indent(10**5) }}", "|indent would be 100,"),
    ("{{ message.body|replace('x', message.body * 5) }}", "|replace would be 5,000,000"),
    ("{{ message.body.replace('x', message.body * 1000) }}", ".replace() would be"),
    ("{{ message.body.join(message.body * 10) }}", ".join() would be"),
    ("{{ '%0999999999d' % 1 }}", "format width"),
    ("{{ '%*d'|format(10**9, 1) }}", "format width"),
    ("{{ '{:>999999999}'.format(1) }}", "format width"),
    ("{{ 9 ** 99999999 }}", "9 ** 99999999"),
    ("{% for i in range(5000) %}{{ message.body }}{% endfor %}", "the output is over"),
])
def test_a_runaway_template_fails_at_once_naming_the_budget(source, says):
    """Loops, recursion, repetition and padding stop within the budget, in well under a
    second, as a permanent delivery error that names what ran over."""
    started = time.perf_counter()
    with pytest.raises(DeliveryPermanentError, match="the template failed to render") as info:
        rendered(source)
    assert time.perf_counter() - started < 1
    text = str(info.value)
    assert ("render budget" in text or "RecursionError" in text), text
    if says:
        assert says in text, text


def test_loops_keep_their_loop_variable_and_ordinary_templates_render():
    """Counting iterations changes nothing a template can see."""
    source = ("{% for l in message.links %}{{ loop.index }}/{{ loop.length }}"
              "{% if loop.last %}.{% endif %}{% else %}none{% endfor %} "
              "{{ message.body|length }} {{ '%05d' % 42 }} {{ 'ab' * 3 }} "
              "{{ range(3)|join(',') }} {{ event.rules|tojson }}")
    assert rendered(source) == '1/1. 1000 00042 ababab 0,1,2 ["refunds"]'


@pytest.mark.parametrize(("template", "says"), [
    ("{% for i in range(1000000) %}{% endfor %}", "range() of 1,000,000 numbers is over "
                                                  "the render budget's 10,000"),
    ("{{ 'abcd' * 10000000 }}", "a string repeated to 40,000,000 characters"),
])
def test_check_refuses_what_the_template_text_shows_is_over_budget(tmp_path: Path, template,
                                                                  says):
    """A budget the template's own numbers exceed is a check problem at the webhook."""
    path = tmp_path / "rules.yaml"
    path.write_text(config_text("http://127.0.0.1:1/rpc", "http://127.0.0.1:2", rooms=["r1"],
                                webhooks={"crm": {"url": "http://127.0.0.1:2/crm",
                                                  "format": "template",
                                                  "content_type": "text/plain",
                                                  "template": template}}))
    problems = check_config(str(path), env=TEST_ENV)
    assert len(problems) == 1 and problems[0].key.startswith("webhooks.crm"), problems
    assert "the template does not compile" in problems[0].message
    assert says in problems[0].message, problems[0].message


async def test_a_runaway_template_is_a_dead_letter_and_other_webhooks_deliver_on_time(
        emulator, receiver, make_config):
    """`notifier run`'s service with a looping template on one webhook: that delivery is
    dead-lettered naming the budget while the other webhook's arrives at once."""
    emulator.add_room(key="r1")
    bomb = ("{% for a in message.body %}{% for b in message.body %}{% for c in message.body %}"
            "{% endfor %}{% endfor %}{% endfor %}")
    crm = {"url": receiver.url_for("/crm"), "format": "template", "template": bomb,
           "content_type": "text/plain"}
    config = make_config(rooms=["r1"], webhooks={"crm": crm},
                         rules=[*chat_rules("crm"),
                                {"name": "copy", "keywords": ["refund"], "notify": ["mod"]}])
    outcomes = Outcomes()
    async with running(config, outcomes):
        posted = time.monotonic()
        emulator.post("r1", "refund " + "y" * 2000)
        await outcomes.wait_for(lambda o: len(o.failed) == 1 and len(o.items) == 2,
                                timeout=10)
        await receiver.wait_count(1)
        assert time.monotonic() - posted < 5
    assert [r.path for r in receiver.received] == ["/mod"]
    _, letters = await _store_after(config)
    assert len(letters) == 1 and "render budget of 100,000 steps" in letters[0].last_error
