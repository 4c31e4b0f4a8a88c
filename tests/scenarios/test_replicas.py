"""Two replicas on one database: a platform's retry that reaches the other replica is dropped, not answered twice.

Each replica is a whole app of its own (its own engine, pool and in-process locks) on the same database,
as two ``serve`` processes are; the events reach both at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.app import App, open_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.messages import Inbound, InboundKind
from bot.storage.models import Conversation, ProcessedEvent


@pytest.fixture
async def replica(settings: Settings, clock: ManualClock, app: App) -> AsyncIterator[App]:
    """A second replica of ``app``: the same settings and database, nothing else shared."""
    async with open_app(settings, clock=clock) as second:
        yield second


def slack_event(user: str, event_id: str, text: str = "hello") -> Inbound:
    return Inbound("slack", user, InboundKind.TEXT, text=text, team_id="T1", locale_hint="en", event_id=event_id)


async def count(app: App, model: type[Conversation] | type[ProcessedEvent]) -> int:
    async with app.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def turn_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.engine" and r.levelno >= logging.WARNING]


async def test_an_event_delivered_to_both_replicas_at_once_is_answered_once(
    app: App, replica: App, caplog: pytest.LogCaptureFixture
) -> None:
    event = slack_event("U0NEW", "Ev-1")
    first, second = await asyncio.gather(app.engine.handle(event), replica.engine.handle(event))
    assert sorted([bool(first), bool(second)]) == [False, True]
    assert turn_failures(caplog) == []
    assert await count(app, ProcessedEvent) == 1


async def test_a_new_persons_first_two_messages_on_two_replicas_make_one_conversation(
    app: App, replica: App, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = await asyncio.gather(
        app.engine.handle(slack_event("U0NEW", "Ev-1")), replica.engine.handle(slack_event("U0NEW", "Ev-2"))
    )
    # Both are answered in words, neither with an apology: the second waited for the first one's row.
    assert first
    assert second
    assert turn_failures(caplog) == []
    async with app.database.session() as session:
        rows = list(await session.scalars(select(Conversation).where(Conversation.user_id == "U0NEW")))
    assert len(rows) == 1


async def test_many_people_with_retries_spread_over_two_replicas_are_each_answered_once(
    app: App, replica: App, caplog: pytest.LogCaptureFixture
) -> None:
    people = [f"U{number:04d}" for number in range(20)]
    before = await count(app, Conversation)
    # Every event reaches one replica and, as the platform's retry, the other one too; all at the same time.
    deliveries = []
    for number, user in enumerate(people):
        event = slack_event(user, f"Ev-{user}")
        first, retry = (app, replica) if number % 2 else (replica, app)
        deliveries += [(user, first.engine.handle(event)), (user, retry.engine.handle(event))]
    answers = await asyncio.gather(*(handling for _, handling in deliveries))
    answered: dict[str, int] = {}
    for (user, _), replies in zip(deliveries, answers, strict=True):
        answered[user] = answered.get(user, 0) + (1 if replies else 0)
    assert answered == dict.fromkeys(people, 1)
    assert turn_failures(caplog) == []
    assert await count(app, Conversation) == before + len(people)
