"""Channel facts: kept across processes, gone when they run out, and each taken by one replica only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.clock import ManualClock
from bot.config import Settings
from bot.storage import channel_state
from bot.storage.db import Database


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url)
    await database.upgrade()
    yield database
    await database.dispose()


async def test_a_fact_is_kept_replaced_and_forgotten(database: Database, clock: ManualClock) -> None:
    now = clock.now()
    await channel_state.remember(database, "telegram", "awaits_code", "42", "1")
    assert await channel_state.recall(database, "telegram", "awaits_code", "42", now=now) == "1"
    await channel_state.remember(database, "telegram", "awaits_code", "42", "2", expires_at=now + timedelta(minutes=5))
    assert await channel_state.recall(database, "telegram", "awaits_code", "42", now=now) == "2"
    # Another process, another handle on the same database, knows it too.
    other = Database(database.url)
    try:
        assert await channel_state.recall(other, "telegram", "awaits_code", "42", now=now) == "2"
    finally:
        await other.dispose()
    assert await channel_state.recall(database, "slack", "awaits_code", "42", now=now) is None
    assert await channel_state.forget(database, "telegram", "awaits_code", "42")
    assert not await channel_state.forget(database, "telegram", "awaits_code", "42")
    assert await channel_state.recall(database, "telegram", "awaits_code", "42", now=now) is None


async def test_a_fact_that_ran_out_is_gone(database: Database, clock: ManualClock) -> None:
    await channel_state.remember(
        database, "telegram", "awaits_code", "42", "1", expires_at=clock.now() + timedelta(minutes=5)
    )
    clock.advance(timedelta(minutes=5))
    assert await channel_state.recall(database, "telegram", "awaits_code", "42", now=clock.now()) is None
    assert await channel_state.take(database, "telegram", "awaits_code", "42", now=clock.now()) is None


async def test_of_two_replicas_taking_one_fact_one_gets_it(database: Database, clock: ManualClock) -> None:
    for number in range(5):
        await channel_state.remember(database, "telegram", "question", str(number), f"request {number}")
    taken = await asyncio.gather(
        *(
            channel_state.take(database, "telegram", "question", str(number), now=clock.now())
            for number in range(5)
            for _ in range(2)
        )
    )
    assert sorted(value for value in taken if value is not None) == [f"request {number}" for number in range(5)]
    assert taken.count(None) == 5


async def test_facts_in_the_callers_transaction_go_with_it(database: Database, clock: ManualClock) -> None:
    async with database.session() as session:
        transaction = await session.begin()
        await channel_state.remember(session, "telegram", "qr", "7:100", "delete")
        assert await channel_state.recall(session, "telegram", "qr", "7:100", now=clock.now()) == "delete"
        await transaction.rollback()  # the turn failed
    assert await channel_state.recall(database, "telegram", "qr", "7:100", now=clock.now()) is None


async def test_due_facts_are_handed_out_once(database: Database, clock: ManualClock) -> None:
    now = clock.now()
    for number, minutes in enumerate((3, 1, 2, 60)):
        await channel_state.remember(
            database, "telegram", "delete_message", f"7:{number}", "qr", expires_at=now + timedelta(minutes=minutes)
        )
    clock.advance(timedelta(minutes=5))
    first, second = await asyncio.gather(
        channel_state.take_due(database, "telegram", "delete_message", now=clock.now()),
        channel_state.take_due(database, "telegram", "delete_message", now=clock.now()),
    )
    assert sorted(first + second) == [("7:0", "qr"), ("7:1", "qr"), ("7:2", "qr")]
    assert not set(first) & set(second)
    assert await channel_state.take_due(database, "telegram", "delete_message", now=clock.now()) == []
    clock.advance(timedelta(hours=1))
    assert await channel_state.take_due(database, "telegram", "delete_message", now=clock.now()) == [("7:3", "qr")]


async def test_facts_are_pruned_a_while_after_they_ran_out(database: Database, clock: ManualClock) -> None:
    now = clock.now()
    await channel_state.remember(database, "slack", "k", "old", "v", expires_at=now)
    await channel_state.remember(database, "slack", "k", "kept", "v")
    async with database.session() as session, session.begin():
        assert await channel_state.prune(session, before=now + timedelta(days=1)) == 1
    assert await channel_state.recall(database, "slack", "k", "kept", now=now + timedelta(days=2)) == "v"
