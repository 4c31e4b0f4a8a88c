"""Pruning what only matters for a while: event ids against redelivery, delivered notifications, idle chats.

Also leases and channel facts a day after they ran out, the CRM idempotency keys of actions carried
out long ago (the outbox retries an action for minutes, not weeks), and what the alerts kept about
maintenance windows and incidents long over (a window is kept well past its end, so a CRM that still
lists it is not announced again). The audit trail is never pruned
(``unlockbot audit export`` archives it); requests stay as their history. Deleting rows past a cut-off is
the same work whichever process does it, so any number may run it at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import RetentionSettings
from bot.storage import channel_state, crm_keys, leases
from bot.storage.models import Conversation, DetectedIncident, MaintenanceNotice, Notification, ProcessedEvent

# Past their end, leases and channel facts only help someone reading the table by hand.
RUN_OUT_KEPT = timedelta(days=1)
CRM_KEYS_KEPT = timedelta(days=30)
# Maintenance windows and detected incidents, counted from when they were over.
ALERTS_KEPT = timedelta(days=90)


async def prune(session: AsyncSession, *, now: datetime, keep: RetentionSettings) -> dict[str, int]:
    """Delete what is older than ``keep`` allows; how many rows of each kind went."""
    events = await session.execute(
        delete(ProcessedEvent).where(ProcessedEvent.at < now - timedelta(days=keep.processed_events_days))
    )
    notifications = await session.execute(
        delete(Notification).where(
            Notification.delivered_at.is_not(None),
            Notification.delivered_at < now - timedelta(days=keep.notifications_days),
        )
    )
    conversations = await session.execute(
        delete(Conversation).where(Conversation.updated_at < now - timedelta(days=keep.conversations_days))
    )
    windows = await session.execute(delete(MaintenanceNotice).where(MaintenanceNotice.ends_at < now - ALERTS_KEPT))
    incidents = await session.execute(delete(DetectedIncident).where(DetectedIncident.last_seen_at < now - ALERTS_KEPT))
    return {
        "processed_events": events.rowcount,  # type: ignore[attr-defined]
        "notifications": notifications.rowcount,  # type: ignore[attr-defined]
        "conversations": conversations.rowcount,  # type: ignore[attr-defined]
        "leases": await leases.prune(session, now=now, older_than=RUN_OUT_KEPT),
        "channel_state": await channel_state.prune(session, before=now - RUN_OUT_KEPT),
        "crm_done_keys": await crm_keys.prune(session, now=now, older_than=CRM_KEYS_KEPT),
        "maintenance_notices": windows.rowcount,  # type: ignore[attr-defined]
        "detected_incidents": incidents.rowcount,  # type: ignore[attr-defined]
    }
