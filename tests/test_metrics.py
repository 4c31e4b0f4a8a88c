"""Prometheus metrics: counters that move with turns, CRM calls and wrong codes; gauges read from the database.

The end-to-end test runs ``serve`` with Slack (HTTP mode) and Telegram (webhooks) on the shared server,
against the local fakes, and scrapes ``/metrics`` as Prometheus would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete

from bot import demo
from bot.app import App
from bot.clock import ManualClock
from bot.crm.resilient import CircuitBreaker
from bot.crm.sql import SqlCrm
from bot.errors import AccountNotFound, CrmUnavailable
from bot.metrics import MeteredCrm, Metrics, read_state
from bot.serve import serve
from bot.storage.db import Database
from bot.storage.models import Notification, OutboxItem
from tests.chat import Chat
from tests.fakes.slack_api import FakeSlack, SlackSender, dm_of, message_event
from tests.fakes.telegram_api import FakeBotApi
from tests.handlers.test_slack import PEOPLE, slack_settings
from tests.handlers.test_telegram import ALICE, WEBHOOK_SECRET, use_telegram, wait_for_health
from tests.test_serve import free_port

# python-telegram-bot's deprecation of RetryAfter's int field (see tests/handlers/test_telegram.py).
pytestmark = pytest.mark.filterwarnings(
    r"ignore:.*attribute `retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled series that has not appeared yet (a counter that never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(port: int) -> Samples:
    async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(await response.text())


def label_values(samples: Samples) -> Iterator[str]:
    for _, labels in samples:
        for _, label in labels:
            yield label


async def test_a_slack_and_a_telegram_turn_move_the_counters(app: App) -> None:
    port = free_port()
    slack = FakeSlack()
    await slack.start()
    for user_id, name in PEOPLE.items():
        slack.add_person(user_id, name)
    async with FakeBotApi() as telegram:
        slack_settings(app, slack)
        use_telegram(app, telegram, mode="webhook", secret_token=WEBHOOK_SECRET)
        app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
        stop = asyncio.Event()
        running = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
        try:
            await wait_for_health(port, running)
            before = await scrape(port)

            sent = await SlackSender(f"http://127.0.0.1:{port}/slack/events").event(message_event("U0ALICE", "hello"))
            assert sent.status == 200
            await slack.wait_for(lambda: slack.posted(dm_of("U0ALICE")))

            async with (
                aiohttp.ClientSession() as client,
                client.post(
                    f"http://127.0.0.1:{port}/telegram/webhook",
                    json=telegram.message_update(ALICE, "/start"),
                    headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
                ) as response,
            ):
                assert response.status == 200
            await telegram.reply_in(ALICE.id, "What would you like to do?")

            after = await scrape(port)
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=10)
            await slack.stop()

    for channel in ("slack", "telegram"):
        ok = {"channel": channel, "outcome": "ok"}
        assert value(after, "unlockbot_turns_total", **ok) == value(before, "unlockbot_turns_total", **ok) + 1
        seconds = value(after, "unlockbot_turn_seconds_count", channel=channel)
        assert seconds == value(before, "unlockbot_turn_seconds_count", channel=channel) + 1
        assert value(after, "unlockbot_turn_seconds_sum", channel=channel) > 0
    # Slack vouched for alice's e-mail: the bot looked her up in the CRM to link her.
    found = {"op": "find_account", "outcome": "ok"}
    assert value(after, "unlockbot_crm_calls_total", **found) > value(before, "unlockbot_crm_calls_total", **found)
    assert value(after, "unlockbot_crm_call_seconds_count", op="find_account") >= 1
    # The gauges read from the database are there at every scrape.
    assert after[("unlockbot_unlock_requests", frozenset({("status", "pending")}))] == 0
    assert after[("unlockbot_outbox_pending", frozenset())] == 0
    assert value(after, "unlockbot_breaker_open") == 0  # the embedded CRM has no breaker: never open
    # Channels, operations, outcomes and statuses: nobody's name or id.
    for label in label_values(after):
        assert label not in ("alice", "U0ALICE", str(ALICE.id), "alice@example.com"), label
        assert "alice" not in label


async def test_wrong_codes_and_waiting_work_are_counted(app: App, clock: ManualClock) -> None:
    dave = Chat(app.engine, "dave", locale="en")
    await dave.say("unlock me")
    said = await dave.say("000000" if await demo.current_code(app, "dave") != "000000" else "111111")
    assert said.asks_secret  # wrong: asked again
    said = await dave.say(await demo.current_code(app, "dave"))  # right: a request for the admins (no free seat)
    assert "#1" in said.text

    async with app.database.session() as session, session.begin():
        await session.execute(delete(Notification))
        await session.execute(delete(OutboxItem))
        now = clock.now()
        for status in ("pending", "claimed", "done", "failed"):
            key = f"key-{status}"
            session.add(OutboxItem(action="unlock", payload={}, idempotency_key=key, status=status, available_at=now))
        session.add(Notification(crm_username="dave", template="t", context={}, buttons=[], created_at=now))
        session.add(
            Notification(crm_username="dave", template="t", context={}, buttons=[], created_at=now, delivered_at=now)
        )
    async with app.database.session() as session:
        state = await read_state(session)
    body, content_type = app.metrics.exposition(state)
    assert content_type.startswith("text/plain")
    samples = parse(body.decode())
    assert value(samples, "unlockbot_totp_failures_total") == 1
    assert value(samples, "unlockbot_unlock_requests", status="pending") == 1
    assert value(samples, "unlockbot_unlock_requests", status="done") == 0
    assert value(samples, "unlockbot_outbox_pending") == 2  # waiting, and taken by a worker not yet done
    assert value(samples, "unlockbot_notifications_pending") == 1
    assert value(samples, "unlockbot_turns_total", channel="console", outcome="ok") == 3

    # Without the database's numbers (it did not answer), those gauges are left out rather than shown stale.
    body, _ = app.metrics.exposition(None)
    missing = parse(body.decode())
    assert ("unlockbot_outbox_pending", frozenset()) not in missing
    assert value(missing, "unlockbot_totp_failures_total") == 1


def test_the_breaker_gauge_follows_the_circuit_breaker(clock: ManualClock) -> None:
    breaker = CircuitBreaker(clock, failure_threshold=2, cool_down=timedelta(seconds=30))
    metrics = Metrics(breaker=breaker)

    def gauge() -> float:
        return value(parse(metrics.exposition(None)[0].decode()), "unlockbot_breaker_open")

    assert gauge() == 0
    breaker.failed()
    assert gauge() == 0  # one failure is not yet a pattern
    breaker.failed()
    assert gauge() == 1
    clock.advance(timedelta(seconds=31))
    assert gauge() == 1  # waiting for the trial call
    breaker.succeeded()
    assert gauge() == 0


async def test_crm_calls_are_counted_by_operation_and_outcome(app: App, clock: ManualClock) -> None:
    metrics = Metrics()
    crm = MeteredCrm(app.crm, metrics)
    assert (await crm.find_account("alice")) is not None
    with pytest.raises(AccountNotFound):
        await crm.lock_status("nobody")
    down = SqlCrm(Database("postgresql+psycopg://crm@127.0.0.1:1/crm"), clock, timeout=1.0)
    try:
        broken = MeteredCrm(down, metrics)
        with pytest.raises(CrmUnavailable):
            await broken.lock_status("alice")
        assert not (await broken.probe()).reachable
    finally:
        await down.aclose()
    samples = parse(metrics.exposition(None)[0].decode())
    assert value(samples, "unlockbot_crm_calls_total", op="find_account", outcome="ok") == 1
    assert value(samples, "unlockbot_crm_calls_total", op="lock_status", outcome="refused") == 1
    assert value(samples, "unlockbot_crm_calls_total", op="lock_status", outcome="unavailable") == 1
    assert value(samples, "unlockbot_crm_calls_total", op="probe", outcome="unavailable") == 1
    assert value(samples, "unlockbot_crm_call_seconds_count", op="lock_status") == 2
    assert crm.capabilities == app.crm.capabilities
    assert crm.name == app.crm.name


def test_each_app_counts_apart() -> None:
    first, second = Metrics(), Metrics()
    first.turn("console", "ok", 0.1)
    assert first.registry.get_sample_value("unlockbot_turns_total", {"channel": "console", "outcome": "ok"}) == 1
    assert second.registry.get_sample_value("unlockbot_turns_total", {"channel": "console", "outcome": "ok"}) is None
