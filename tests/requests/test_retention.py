"""The housekeeper prunes what only matters for a while, and never the audit trail."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.app import App
from bot.clock import ManualClock
from bot.storage.models import (
    AuditEvent,
    Conversation,
    DetectedIncident,
    MaintenanceNotice,
    Notification,
    ProcessedEvent,
)
from tests.chat import Chat


async def count(app: App, model: type[object]) -> int:
    async with app.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


async def test_old_event_ids_notifications_and_idle_conversations_are_pruned(app: App, clock: ManualClock) -> None:
    old = Chat(app.engine, "alice", locale="en")
    await old.say("hello", event_id="ev-old")
    sam = Chat(app.engine, "sam", locale="en")
    await sam.start()  # sam's notices are delivered now
    audit_before = await count(app, AuditEvent)
    assert await count(app, ProcessedEvent) == 1

    clock.advance(timedelta(days=91))
    recent = Chat(app.engine, "bob", locale="en")
    await recent.say("hello", event_id="ev-new")
    await app.housekeeper.tick()

    async with app.database.session() as session:
        events = list(await session.scalars(select(ProcessedEvent.event_id)))
        talking = list(await session.scalars(select(Conversation.user_id)))
        delivered = await session.scalar(
            select(func.count()).select_from(Notification).where(Notification.delivered_at.is_not(None))
        )
    assert events == ["ev-new"]
    assert talking == ["bob"]
    assert delivered == 0
    assert await count(app, AuditEvent) >= audit_before  # the trail is never pruned

    # The same event arriving again within the window is still recognised.
    said = await recent.say("hello", event_id="ev-new")
    assert said.replies == []


async def test_recent_rows_stay(app: App, clock: ManualClock) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.say("hello", event_id="ev-1")
    clock.advance(timedelta(days=6))
    await app.housekeeper.tick()
    assert await count(app, ProcessedEvent) == 1
    assert await count(app, Conversation) >= 1


async def test_maintenance_windows_and_incidents_long_over_are_pruned(app: App, clock: ManualClock) -> None:
    now = clock.now()
    async with app.database.session() as session, session.begin():
        for name, ended in (("old", now - timedelta(days=91)), ("recent", now - timedelta(days=89))):
            session.add(MaintenanceNotice(key=name, starts_at=ended - timedelta(hours=2), ends_at=ended))
            session.add(
                DetectedIncident(
                    started_at=ended - timedelta(minutes=10),
                    last_seen_at=ended,
                    window_minutes=10,
                    locks=12,
                    expected=1.5,
                    by_reason={"failed_password": 12},
                )
            )
    await app.housekeeper.tick()
    async with app.database.session() as session:
        kept = list(await session.scalars(select(MaintenanceNotice.key)))
        incidents = list(await session.scalars(select(DetectedIncident.last_seen_at)))
    assert "old" not in kept
    assert "recent" in kept
    assert now - timedelta(days=91) not in [when.replace(tzinfo=now.tzinfo) for when in incidents]
    assert len(incidents) == 1
