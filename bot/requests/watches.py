"""Telling people when a lock nobody can lift for them is over (a fault fixed, maintenance done, a licence renewed).

The person asks once; the housekeeper asks the CRM now and then (at most once
a minute per person) and, when the account is no longer locked, says so and
forgets the watch. Replicas share the work: a watch is claimed before the CRM
is asked (its ``last_checked_at`` moved on in a conditional UPDATE), no
transaction is open while the CRM answers, and the notice goes out only with
the deletion of the watch, which one process wins.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crm.base import CrmBackend, LockReason
from bot.errors import CrmError
from bot.requests import audit
from bot.requests.notifications import notify
from bot.storage.db import Database
from bot.storage.models import LockWatch
from bot.storage.upsert import insert_if_absent

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(minutes=1)


async def watch(session: AsyncSession, *, now: datetime, username: str, reason: LockReason, actor: str) -> None:
    values = {"crm_username": username, "reason": reason.value, "created_at": now}
    # Two turns of the same person at once (two replicas) start one watch, audited once.
    if await insert_if_absent(session, LockWatch, values):
        await audit.record(
            session, at=now, actor=actor, action="watch.started", subject=username, details={"reason": reason.value}
        )


async def claim_due(session: AsyncSession, *, now: datetime, limit: int = 50) -> list[str]:
    """The watches due for a look, claimed for the caller until ``CHECK_EVERY`` from now; their usernames."""
    due = or_(LockWatch.last_checked_at.is_(None), LockWatch.last_checked_at <= now - CHECK_EVERY)
    candidates = list(
        await session.scalars(select(LockWatch.crm_username).where(due).order_by(LockWatch.created_at).limit(limit))
    )
    if not candidates:
        return []
    # The condition again in the UPDATE: a watch another process claimed a moment ago is no longer due.
    claimed = set(
        await session.scalars(
            update(LockWatch)
            .where(LockWatch.crm_username.in_(candidates), due)
            .values(last_checked_at=now)
            .returning(LockWatch.crm_username)
            .execution_options(synchronize_session=False)
        )
    )
    return [username for username in candidates if username in claimed]


async def lifted(session: AsyncSession, *, now: datetime, username: str) -> bool:
    """``username``'s lock is gone: forget the watch and tell them; ``False`` when another process already did."""
    gone = await session.scalar(
        delete(LockWatch)
        .where(LockWatch.crm_username == username)
        .returning(LockWatch.crm_username)
        .execution_options(synchronize_session=False)
    )
    if gone is None:
        return False
    await notify(session, now=now, usernames=[username], template="watch/lifted", context={})
    await audit.record(session, at=now, actor="scheduler", action="watch.lifted", subject=username)
    return True


async def check_watches(database: Database, *, now: datetime, crm: CrmBackend, limit: int = 50) -> list[str]:
    """Ask the CRM about the watches that are due and tell those whose lock is gone; the usernames told."""
    async with database.session() as session, session.begin():
        due = await claim_due(session, now=now, limit=limit)
    told = []
    for username in due:
        try:
            status = await crm.lock_status(username)
        except CrmError as exc:  # the CRM is down or the user is gone: try again at the next claim
            log.info("could not check the lock of %s: %s", username, exc)
            continue
        if status.locked:
            continue
        async with database.session() as session, session.begin():
            if await lifted(session, now=now, username=username):
                told.append(username)
    return told
