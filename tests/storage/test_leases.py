"""Leases: one holder at a time, taken over once it runs out, never by two processes at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.clock import ManualClock
from bot.config import Settings
from bot.storage import leases
from bot.storage.db import Database
from bot.storage.leases import LeaseKeeper

TTL = timedelta(seconds=15)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url)
    await database.upgrade()
    yield database
    await database.dispose()


async def acquire(database: Database, clock: ManualClock, holder: str, name: str = "poller") -> bool:
    async with database.session() as session, session.begin():
        return await leases.acquire(session, name, holder, now=clock.now(), ttl=TTL)


async def holder(database: Database, clock: ManualClock, name: str = "poller") -> str | None:
    async with database.session() as session:
        return await leases.holder_of(session, name, now=clock.now())


async def test_a_lease_has_one_holder_until_it_runs_out(database: Database, clock: ManualClock) -> None:
    assert await acquire(database, clock, "a")
    assert not await acquire(database, clock, "b")
    assert await acquire(database, clock, "a")  # the holder extends its own lease
    assert await holder(database, clock) == "a"
    clock.advance(TTL)
    assert await holder(database, clock) is None
    assert await acquire(database, clock, "b")
    assert await holder(database, clock) == "b"
    assert not await acquire(database, clock, "a")


async def test_renew_extends_only_a_live_lease_of_ones_own(database: Database, clock: ManualClock) -> None:
    assert await acquire(database, clock, "a")
    async with database.session() as session, session.begin():
        assert not await leases.renew(session, "poller", "b", now=clock.now(), ttl=TTL)
        clock.advance(TTL - timedelta(seconds=1))
        assert await leases.renew(session, "poller", "a", now=clock.now(), ttl=TTL)
    clock.advance(TTL - timedelta(seconds=1))
    assert await holder(database, clock) == "a"  # renewed: still held after more than one ttl in all
    clock.advance(timedelta(seconds=1))
    async with database.session() as session, session.begin():
        # Run out: maybe someone held it in between, so the old holder must acquire it again.
        assert not await leases.renew(session, "poller", "a", now=clock.now(), ttl=TTL)
    assert await acquire(database, clock, "a")


async def test_a_released_lease_is_free_at_once(database: Database, clock: ManualClock) -> None:
    assert await acquire(database, clock, "a")
    async with database.session() as session, session.begin():
        assert not await leases.release(session, "poller", "b")
        assert await leases.release(session, "poller", "a")
    assert await acquire(database, clock, "b")


async def test_a_claim_is_once_per_ttl_whoever_asks(database: Database, clock: ManualClock) -> None:
    async def claim(holder: str) -> bool:
        async with database.session() as session, session.begin():
            return await leases.claim(session, "notice:x:alice", holder, now=clock.now(), ttl=timedelta(days=1))

    assert await claim("turn")
    assert not await claim("turn")  # the same claimer gets no second one either
    assert not await claim("other")
    clock.advance(timedelta(days=1))
    assert await claim("other")


async def test_of_many_processes_racing_for_a_free_lease_one_wins(database: Database, clock: ManualClock) -> None:
    for round_ in range(3):
        contenders = [f"replica-{number}" for number in range(8)]
        won = await asyncio.gather(*(acquire(database, clock, name, name=f"race-{round_}") for name in contenders))
        assert sum(won) == 1
        assert await holder(database, clock, f"race-{round_}") == contenders[won.index(True)]
    # And when the lease has run out, of those racing to take it over.
    clock.advance(TTL)
    won = await asyncio.gather(*(acquire(database, clock, f"late-{number}", name="race-0") for number in range(8)))
    assert sum(won) == 1


async def test_a_keeper_holds_and_lets_go_in_transactions_of_its_own(database: Database, clock: ManualClock) -> None:
    first = LeaseKeeper(database, clock, "telegram.poller", ttl=TTL)
    second = LeaseKeeper(database, clock, "telegram.poller", ttl=TTL)
    assert first.holder != second.holder
    assert await first.hold()
    assert not await second.hold()
    clock.advance(TTL / 3)
    assert await first.hold()  # renewed on every call
    clock.advance(TTL - timedelta(seconds=1))
    assert not await second.hold()
    await first.let_go()  # a clean stop: the stand-by takes over at its next try
    assert await second.hold()


async def test_leases_that_ran_out_long_ago_are_pruned(database: Database, clock: ManualClock) -> None:
    assert await acquire(database, clock, "a", name="old")
    clock.advance(timedelta(days=2))
    assert await acquire(database, clock, "a", name="new")
    async with database.session() as session, session.begin():
        assert await leases.prune(session, now=clock.now(), older_than=timedelta(days=1)) == 1
    assert await holder(database, clock, "new") == "a"
