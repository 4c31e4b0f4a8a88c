"""Telling people when a lock nobody can lift for them is over (a fault fixed, maintenance done, a licence renewed).

The person asks once; the housekeeper asks the CRM now and then (at most once
a minute per person) and, when the account is no longer locked, says so and
forgets the watch.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crm.base import CrmBackend, LockReason
from bot.errors import CrmError
from bot.requests import audit
from bot.requests.notifications import notify
from bot.storage.models import LockWatch

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(minutes=1)


async def watch(session: AsyncSession, *, now: datetime, username: str, reason: LockReason, actor: str) -> None:
    existing = await session.get(LockWatch, username)
    if existing is None:
        session.add(LockWatch(crm_username=username, reason=reason.value, created_at=now))
        await session.flush()
        await audit.record(session, at=now, actor=actor, action="watch.started", subject=username)


async def check_watches(session: AsyncSession, *, now: datetime, crm: CrmBackend, limit: int = 50) -> list[str]:
    """Tell the watchers whose lock is gone; the usernames told."""
    due = list(
        await session.scalars(
            select(LockWatch)
            .where((LockWatch.last_checked_at.is_(None)) | (LockWatch.last_checked_at <= now - CHECK_EVERY))
            .order_by(LockWatch.created_at)
            .limit(limit)
        )
    )
    told = []
    for item in due:
        item.last_checked_at = now
        try:
            status = await crm.lock_status(item.crm_username)
        except CrmError as exc:  # the CRM is down or the user is gone: try again later
            log.info("could not check the lock of %s: %s", item.crm_username, exc)
            continue
        if status.locked:
            continue
        await notify(session, now=now, usernames=[item.crm_username], template="watch/lifted", context={})
        await audit.record(session, at=now, actor="scheduler", action="watch.lifted", subject=item.crm_username)
        await session.delete(item)
        told.append(item.crm_username)
    await session.flush()
    return told
