"""The audit chain without a global lock: turns write signed events, one chainer links them, verify still tells."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.app import App
from bot.clock import ManualClock
from bot.requests import audit
from bot.requests.anchor import AuditTrail, open_trail
from bot.requests.housekeeping import CHAINER_TTL, AuditChainer
from bot.storage.models import AuditEvent
from tests.requests.test_audit import as_attacker, rows


@pytest.fixture
async def trail(app: App) -> AuditTrail:
    trail = await open_trail(app.settings, app.database)
    await link(app)  # what the demo wrote
    return trail


async def record(app: App, subject: str, **details: Any) -> int:
    async with app.database.session() as session, session.begin():
        event = await audit.record(
            session, at=app.clock.now(), actor="test", action="test.event", subject=subject, details=details
        )
        return event.id


async def link(app: App) -> audit.ChainRound:
    async with app.database.session() as session, session.begin():
        return await audit.chain(session)


async def verify(app: App, trail: AuditTrail, *anchors: audit.Anchor) -> audit.ChainReport:
    async with app.database.session() as session:
        return await audit.verify_chain(session, trail.key, anchors=anchors)


async def place(app: App, event_id: int) -> int | None:
    async with app.database.session() as session:
        return await session.scalar(select(AuditEvent.seq).where(AuditEvent.id == event_id))


async def test_a_turn_that_waits_on_the_crm_holds_up_no_other_turns_events(app: App, trail: AuditTrail) -> None:
    if app.database.dialect != "postgresql":
        pytest.skip("SQLite lets one transaction write at a time whatever the bot does; replicas use PostgreSQL")
    async with app.database.session() as slow, slow.begin():
        # A turn records its decision, then waits for the CRM before it commits.
        waiting = await audit.record(slow, at=app.clock.now(), actor="alice", action="test.slow", subject="alice")
        backend = await slow.scalar(text("SELECT pg_backend_pid()"))
        async with app.database.session() as probe:
            held = await probe.scalar(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = :pid"), {"pid": backend}
            )
        assert held == 0
        # Meanwhile other turns record and commit, and the chainer links them.
        quick = await record(app, "bob")
        assert (await link(app)).linked == 1
        assert await place(app, quick) is not None
        assert await place(app, waiting.id) is None
        assert (await verify(app, trail)).intact
    # Once the slow turn commits, its event is linked after the one that committed first.
    assert (await link(app)).linked == 1
    first, second = await place(app, quick), await place(app, waiting.id)
    assert first is not None
    assert second == first + 1
    assert waiting.id < quick
    report = await verify(app, trail)
    assert report.intact, report.problems
    assert report.head == audit.Head(waiting.id, (await rows(app.database))[-2].hash or "")


async def test_events_wait_unlinked_checked_against_their_signature(app: App, trail: AuditTrail) -> None:
    linked_before = (await verify(app, trail)).head
    await record(app, "alice", n=1)
    await record(app, "alice", n=2)
    report = await verify(app, trail)
    assert report.intact, report.problems
    assert report.pending == 2
    assert report.head == linked_before  # the head is the newest linked event
    assert (await link(app)).linked == 2
    report = await verify(app, trail)
    assert (report.intact, report.pending) == (True, 0)
    assert report.head is not None
    assert report.head != linked_before


async def test_an_event_edited_or_forged_before_it_was_linked_is_left_out_and_named(
    app: App, trail: AuditTrail, clock: ManualClock
) -> None:
    edited = await record(app, "alice", decision="denied")
    kept = await record(app, "bob")
    key_id = trail.key.key_id
    await as_attacker(
        app.database,
        (
            "UPDATE audit_events SET details = :details WHERE id = :id",
            {"details": '{"decision": "approved"}', "id": edited},
        ),
        (
            "INSERT INTO audit_events (at, actor, action, subject, details, key_id, sig) "
            "VALUES (:at, 'sam', 'request.approved', 'mallory', '{}', :key, :sig)",
            {"at": clock.now(), "key": key_id, "sig": "0" * 64},
        ),
    )
    forged = max(event.id for event in await rows(app.database))
    done = await link(app)
    assert done.linked == 1
    assert sorted((p.event_id, p.kind) for p in done.refused) == [
        (edited, audit.Problem.EDITED),
        (forged, audit.Problem.EDITED),
    ]
    assert await place(app, kept) is not None
    report = await verify(app, trail)
    assert [(p.event_id, p.kind) for p in report.problems] == [
        (edited, audit.Problem.EDITED),
        (forged, audit.Problem.EDITED),
    ]
    # The chain goes on past them; they stay named until someone looks.
    later = await record(app, "carol")
    assert (await link(app)).linked == 1
    assert await place(app, later) is not None
    assert len((await verify(app, trail)).problems) == 2


async def test_two_chainers_at_once_link_each_event_once(app: App, trail: AuditTrail) -> None:
    for number in range(10):
        await record(app, f"s{number}")
    done = await asyncio.gather(link(app), link(app), return_exceptions=True)
    for outcome in done:
        assert isinstance(outcome, audit.ChainRound | audit.ChainConflict), outcome
    linked = sum(outcome.linked for outcome in done if isinstance(outcome, audit.ChainRound))
    if linked < 10:  # the loser found its first event linked already and gave the round up
        linked += (await link(app)).linked
    assert linked == 10
    places = sorted(event.seq for event in await rows(app.database) if event.seq is not None)
    assert places == list(range(1, len(places) + 1))
    assert (await verify(app, trail)).intact


async def test_only_the_holder_of_the_chainers_lease_links(app: App, trail: AuditTrail, clock: ManualClock) -> None:
    first, second = AuditChainer(app.database, clock), AuditChainer(app.database, clock)
    await record(app, "alice")
    assert await first.link() == 1
    await record(app, "bob")
    assert await second.link() == 0  # a stand-by
    assert await first.link() == 1
    await record(app, "carol")
    clock.advance(CHAINER_TTL)  # the first replica died: its lease runs out and the stand-by takes over
    assert await second.link() == 1
    await record(app, "dave")
    assert await first.link() == 0
    await second.stop()  # a clean stop hands over at once
    assert await first.link() == 1
    assert (await verify(app, trail)).intact


async def test_the_export_lists_events_in_chain_order_with_those_waiting_last(app: App, trail: AuditTrail) -> None:
    await record(app, "alice")
    await link(app)
    waiting = await record(app, "bob")
    async with app.database.session() as session:
        exported = [row async for row in audit.export_since(session, app.clock.now()) if row["action"] == "test.event"]
    assert [row["subject"] for row in exported] == ["alice", "bob"]
    assert exported[-1]["id"] == waiting
    assert exported[-1]["seq"] is None
    assert exported[-1]["hash"] is None
    assert exported[0]["seq"] is not None
