"""Time passing on requests: expiry, reminders to admins, and escalation to a second list."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import RequestSettings
from bot.requests import audit
from bot.requests.notifications import notify
from bot.requests.unlock_requests import Status
from bot.storage.models import UnlockRequest


async def expire_due(session: AsyncSession, *, now: datetime) -> list[int]:
    """Mark pending requests past their expiry as expired and tell the requesters."""
    due = list(
        await session.scalars(
            select(UnlockRequest).where(UnlockRequest.status == Status.PENDING.value, UnlockRequest.expires_at <= now)
        )
    )
    expired = []
    for request in due:
        changed = await session.execute(
            update(UnlockRequest)
            .where(UnlockRequest.id == request.id, UnlockRequest.status == Status.PENDING.value)
            .values(status=Status.EXPIRED.value, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            continue  # decided a moment ago
        expired.append(request.id)
        await audit.record(
            session,
            at=now,
            actor="scheduler",
            action="request.expired",
            subject=request.crm_username,
            details={"request": request.id},
        )
        await notify(
            session, now=now, usernames=[request.crm_username], template="requests/expired", context={"id": request.id}
        )
    return expired


async def remind_admins(
    session: AsyncSession,
    *,
    now: datetime,
    settings: RequestSettings,
    admins: Collection[str],
    escalation: Collection[str],
) -> list[int]:
    """Remind admins of requests waiting too long; after enough reminders, ask the escalation list too."""
    first = now - timedelta(minutes=settings.remind_after_minutes)
    again = now - timedelta(minutes=settings.remind_every_minutes)
    waiting = list(
        await session.scalars(
            select(UnlockRequest).where(
                UnlockRequest.status == Status.PENDING.value,
                UnlockRequest.created_at <= first,
                (UnlockRequest.last_reminded_at.is_(None)) | (UnlockRequest.last_reminded_at <= again),
            )
        )
    )
    reminded = []
    for request in waiting:
        # Claim this reminder round with a conditional UPDATE, so two processes never both send it.
        claimed = await session.execute(
            update(UnlockRequest)
            .where(
                UnlockRequest.id == request.id,
                (UnlockRequest.last_reminded_at.is_(None)) | (UnlockRequest.last_reminded_at <= again),
            )
            .values(reminders_sent=UnlockRequest.reminders_sent + 1, last_reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        await session.refresh(request)
        reminded.append(request.id)
        minutes = int((now - request.created_at).total_seconds() // 60)
        context = {
            "id": request.id,
            "kind": request.kind,
            "username": request.crm_username,
            "reason": request.reason,
            "minutes": minutes,
        }
        recipients = [a for a in admins if a != request.crm_username]
        if request.reminders_sent >= settings.escalate_after_reminders and not request.escalated:
            request.escalated = True
            recipients += [a for a in escalation if a != request.crm_username and a not in recipients]
            await audit.record(
                session,
                at=now,
                actor="scheduler",
                action="request.escalated",
                subject=request.crm_username,
                details={"request": request.id},
            )
        await notify(session, now=now, usernames=recipients, template="admin/reminder", context=context)
    await session.flush()
    return reminded
