"""The audit trail: signed with a key of its own, anchored outside the database, append-only inside it."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bot.app import App
from bot.clock import ManualClock
from bot.config import Settings
from bot.errors import ConfigError
from bot.messages import Reply
from bot.requests import audit
from bot.requests.anchor import AuditTrail, anchor_path, open_trail
from bot.requests.housekeeping import Housekeeper
from bot.storage.db import Database
from bot.storage.meta import clear_bot_tables
from bot.storage.models import AuditEvent, Notification


async def add_events(database: Database, clock: ManualClock, count: int, *, actor: str = "test") -> None:
    """Write ``count`` events, then link them as the chainer does."""
    async with database.session() as session, session.begin():
        for number in range(count):
            await audit.record(
                session, at=clock.now(), actor=actor, action="test.event", subject=f"s{number}", details={"n": number}
            )
    async with database.session() as session, session.begin():
        await audit.chain(session)


async def verify(database: Database, key: audit.AuditKey | None, *anchors: audit.Anchor) -> audit.ChainReport:
    async with database.session() as session:
        return await audit.verify_chain(session, key, anchors=anchors)


async def as_attacker(database: Database, *statements: tuple[str, dict[str, Any]]) -> None:
    """Change audit rows the way someone with the database's owner rights (but not the audit key) can."""
    async with database.session() as session, session.begin():
        if database.dialect == "postgresql":
            await session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            await session.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
            await session.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
        for statement, params in statements:
            await session.execute(text(statement), params)
        if database.dialect == "postgresql":
            await session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


async def rows(database: Database) -> list[AuditEvent]:
    async with database.session() as session:
        return list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def housekeeper(app: App, trail: AuditTrail, *, admins: tuple[str, ...] = ()) -> Housekeeper:
    """A housekeeper with the trail; without admins it sends no daily notice, so the chain stays as the test left it."""
    return Housekeeper(
        app.database,
        app.outbox,
        app.crm,
        app.clock,
        app.settings.requests,
        admins=admins,
        escalation=(),
        audit=trail,
    )


@pytest.fixture
async def trail(app: App, settings: Settings) -> AuditTrail:
    return await open_trail(settings, app.database)


async def test_events_are_signed_with_the_audit_key(app: App, trail: AuditTrail, clock: ManualClock) -> None:
    await add_events(app.database, clock, 3)
    signed = (await rows(app.database))[-3:]
    assert {event.key_id for event in signed} == {trail.key.key_id}
    report = await verify(app.database, trail.key)
    assert report.intact, report.problems
    assert report.head == audit.Head(signed[-1].id, signed[-1].hash)
    # Another key does not reproduce the hashes: a forger needs this very key.
    other = audit.AuditKey.from_text(audit.AuditKey.generate_text(), name="test")
    assert other.key_id != trail.key.key_id
    assert not (await verify(app.database, other)).intact


async def test_a_chain_rewritten_without_the_key_does_not_verify(
    app: App, trail: AuditTrail, clock: ManualClock
) -> None:
    await add_events(app.database, clock, 5)
    events = await rows(app.database)
    target = events[-3]
    # The forger edits one event and recomputes every hash from there on, as an unkeyed chain would allow.
    statements = []
    prev = events[-4].hash
    for event in events[-3:]:
        actor = "someone else" if event.id == target.id else event.actor
        forged = audit.event_hash(prev, event.at, actor, event.action, event.subject, event.details)
        statements.append(
            (
                "UPDATE audit_events SET actor = :actor, prev_hash = :prev, hash = :hash WHERE id = :id",
                {"actor": actor, "prev": prev, "hash": forged, "id": event.id},
            )
        )
        prev = forged
    await as_attacker(app.database, *statements)
    report = await verify(app.database, trail.key)
    assert not report.intact
    assert report.problems[0].event_id == target.id
    assert report.problems[0].kind is audit.Problem.EDITED
    # Dressing the forged rows up as written before the key existed does not help either.
    await as_attacker(app.database, ("UPDATE audit_events SET key_id = NULL WHERE id >= :id", {"id": target.id}))
    report = await verify(app.database, trail.key)
    assert [p.kind for p in report.problems if p.event_id == target.id] == [audit.Problem.UNSIGNED]


async def test_the_database_refuses_to_change_or_delete_audit_events(app: App, clock: ManualClock) -> None:
    await add_events(app.database, clock, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        async with app.database.session() as session, session.begin():
            await session.execute(text("UPDATE audit_events SET actor = 'someone else'"))
    if app.database.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            async with app.database.session() as session, session.begin():
                await session.execute(text("DELETE FROM audit_events"))
    assert len(await rows(app.database)) >= 2
    # Clearing the whole trail (the demo starting over) goes through on every database.
    async with app.database.session() as session, session.begin():
        await clear_bot_tables(session)
    assert await rows(app.database) == []


async def test_cutting_off_the_newest_events_is_caught_by_the_anchor(
    app: App, trail: AuditTrail, clock: ManualClock
) -> None:
    keeper = housekeeper(app, trail)
    await add_events(app.database, clock, 5)
    head = (await rows(app.database))[-1]
    await keeper.tick()
    anchor = trail.anchor.read()
    assert anchor is not None
    assert (anchor.id, anchor.hash) == (head.id, head.hash)
    assert (await verify(app.database, trail.key, anchor)).intact

    await as_attacker(app.database, ("DELETE FROM audit_events WHERE id > :id", {"id": head.id - 2}))
    # Without the anchor the shortened chain is a perfectly good chain.
    assert (await verify(app.database, trail.key)).intact
    report = await verify(app.database, trail.key, anchor)
    assert [p.kind for p in report.problems] == [audit.Problem.CUT]
    # The operator's copy of the head (a hash from the admins' daily notice) catches it just as well.
    report = await verify(app.database, trail.key, audit.Anchor(None, head.hash))
    assert [p.kind for p in report.problems] == [audit.Problem.UNKNOWN_ANCHOR]

    # The bot goes on writing: the chain grows past the old length, but the anchor does not follow it.
    await add_events(app.database, clock, 4)
    await keeper.tick()
    assert trail.anchor.read() == anchor
    report = await verify(app.database, trail.key, anchor)
    assert [p.kind for p in report.problems] == [
        audit.Problem.REWRITTEN if app.database.dialect == "sqlite" else audit.Problem.CUT
    ]


async def test_the_anchor_moves_only_along_an_intact_chain(app: App, trail: AuditTrail, clock: ManualClock) -> None:
    keeper = housekeeper(app, trail)
    await add_events(app.database, clock, 2)
    await keeper.tick()
    first = trail.anchor.read()
    await add_events(app.database, clock, 2)
    await keeper.tick()
    second = trail.anchor.read()
    assert first is not None
    assert second is not None
    assert second.id > first.id
    events = await rows(app.database)
    await as_attacker(app.database, ("UPDATE audit_events SET subject = 'x' WHERE id = :id", {"id": events[-1].id}))
    await add_events(app.database, clock, 1)
    await keeper.tick()
    assert trail.anchor.read() == second
    assert stat.S_IMODE(anchor_path(app.settings).stat().st_mode) == 0o600


async def test_events_written_before_the_key_are_checked_without_it(settings: Settings, clock: ManualClock) -> None:
    database = Database(settings.database_url)
    try:
        await database.upgrade()
        await add_events(database, clock, 3, actor="before")
        trail = await open_trail(settings, database)
        await add_events(database, clock, 2, actor="after")
        report = await verify(database, trail.key)
        assert report.intact, report.problems
        assert (report.events, report.unsigned) == (5, 3)
        events = await rows(database)
        assert [e.key_id for e in events] == [None, None, None, trail.key.key_id, trail.key.key_id]

        # A process without the key may not add an unsigned event to a signed chain.
        unkeyed = Database(settings.database_url)
        try:
            with pytest.raises(ConfigError, match="audit key"):
                await add_events(unkeyed, clock, 1)
        finally:
            await unkeyed.dispose()
        # Nor may anyone slip one in by hand.
        last = events[-1]
        forged = audit.event_hash(last.hash, clock.now(), "x", "test.event", "s", {})
        await as_attacker(
            database,
            (
                "INSERT INTO audit_events (at, actor, action, subject, details, prev_hash, hash) "
                "VALUES (:at, 'x', 'test.event', 's', '{}', :prev, :hash)",
                {"at": clock.now(), "prev": last.hash, "hash": forged},
            ),
        )
        report = await verify(database, trail.key)
        assert [p.kind for p in report.problems] == [audit.Problem.UNSIGNED]
    finally:
        await database.dispose()


async def test_the_audit_key_is_created_once_and_kept_private(settings: Settings, app: App, clock: ManualClock) -> None:
    trail = await open_trail(settings, app.database)
    key_file = settings.bot.data_dir / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.bot.data_dir.stat().st_mode) == 0o700
    assert "hidden" in repr(trail.key)
    assert key_file.read_text().strip() not in repr(trail)
    again = await open_trail(settings, app.database)
    assert again.key.key_id == trail.key.key_id
    await add_events(app.database, clock, 1)

    # A different key, or none at all, refuses to start on a signed trail instead of forking it.
    other = settings.model_copy(
        update={
            "security": settings.security.model_copy(update={"audit_key": SecretStr(audit.AuditKey.generate_text())})
        }
    )
    with pytest.raises(ConfigError, match="another key"):
        await open_trail(other, app.database)
    key_file.unlink()
    with pytest.raises(ConfigError, match="no audit key"):
        await open_trail(settings, app.database)
    assert not key_file.exists()


async def test_a_configured_key_is_used_and_checked(settings: Settings) -> None:
    configured = audit.AuditKey.generate_text()
    with_key = settings.model_copy(
        update={"security": settings.security.model_copy(update={"audit_key": SecretStr(configured)})}
    )
    database = Database(settings.database_url)
    try:
        await database.upgrade()
        trail = await open_trail(with_key, database)
        assert trail.key.key_id == audit.AuditKey.from_text(configured, name="test").key_id
        assert not (settings.bot.data_dir / "audit.key").exists()
        short = settings.model_copy(
            update={"security": settings.security.model_copy(update={"audit_key": SecretStr("c2hvcnQ=")})}
        )
        with pytest.raises(ConfigError, match=r"security\.audit_key"):
            await open_trail(short, database)
    finally:
        await database.dispose()


async def test_the_head_goes_to_the_admins_once_a_day(app: App, trail: AuditTrail, clock: ManualClock) -> None:
    # Two processes, one database.
    first, second = housekeeper(app, trail, admins=("sam", "tina")), housekeeper(app, trail, admins=("sam", "tina"))
    await add_events(app.database, clock, 2)
    await first.tick()
    await second.tick()
    # The head posted is the newest event before the notice of it (the round may have recorded some of its own).
    head = [event for event in await rows(app.database) if event.action != "audit.head_posted"][-1]

    async def notices() -> list[Notification]:
        async with app.database.session() as session:
            return list(await session.scalars(select(Notification).where(Notification.template == "admin/audit_head")))

    posted = await notices()
    assert sorted(n.crm_username for n in posted) == ["sam", "tina"]
    assert posted[0].context == {"event": head.id, "hash": head.hash, "intact": True}
    clock.advance(timedelta(hours=23))
    await first.tick()
    assert len(await notices()) == 2
    clock.advance(timedelta(hours=1, seconds=1))
    await second.tick()
    await first.tick()
    assert len(await notices()) == 4
    async with app.database.session() as session:
        told = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "audit.head_posted")
        )
    assert told == 2

    for locale, words in (("en", "audit"), ("zh-CN", "审计")):
        rendered = app.renderer.render(Reply("admin/audit_head", posted[0].context), locale)
        assert words in rendered.text
        assert head.hash in rendered.text
        assert str(head.id) in rendered.text
        assert f"--anchor {head.hash}" in rendered.text
    broken = app.renderer.render(Reply("admin/audit_head", {**posted[0].context, "intact": False}), "zh-CN")
    assert "unlockbot audit verify" in broken.text
    assert broken.text != app.renderer.render(Reply("admin/audit_head", posted[0].context), "zh-CN").text


async def test_the_anchor_file_says_what_it_holds(app: App, trail: AuditTrail, clock: ManualClock) -> None:
    await add_events(app.database, clock, 1)
    await housekeeper(app, trail).tick()
    stored = json.loads(Path(anchor_path(app.settings)).read_text())
    anchor = trail.anchor.read()
    assert anchor is not None
    assert stored["event"] == anchor.id
    assert stored["hash"] == anchor.hash


async def test_a_damaged_anchor_is_reported_and_left_alone(app: App, trail: AuditTrail, clock: ManualClock) -> None:
    path = anchor_path(app.settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json", encoding="utf-8")
    await add_events(app.database, clock, 1)
    await housekeeper(app, trail).tick()  # the round goes on; a chat turn after it is not disturbed
    assert path.read_text(encoding="utf-8") == "{not json"
    with pytest.raises(ConfigError, match="damaged"):
        trail.anchor.read()
