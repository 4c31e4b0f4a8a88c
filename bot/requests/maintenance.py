"""Maintenance windows told to everyone reachable: ``[alerts] maintenance_notice_hours`` ahead, and once over.

Each window is a row of ``maintenance_notices`` keyed by its start; each announcement is claimed with a
conditional UPDATE of its row, so of several replicas one makes it. A window the CRM stops listing before it
began (moved or called off) is forgotten without a word; one it stops listing once it has begun is over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bot.crm.base import MaintenanceWindow
from bot.requests import audit
from bot.requests.notifications import MENU, notify
from bot.requests.opt_outs import reachable
from bot.storage.models import MaintenanceNotice
from bot.storage.upsert import insert_if_absent

ACTOR = "alerts"


def _key(window: MaintenanceWindow) -> str:
    return window.starts_at.astimezone(UTC).isoformat()


async def announce_maintenance(
    session: AsyncSession, *, now: datetime, windows: Sequence[MaintenanceWindow], notice: timedelta
) -> list[str]:
    """Tell people of windows starting within ``notice`` and of the ones told of that have ended; what was said.

    Each announcement is claimed by a conditional UPDATE of its row, so of several replicas one makes it.
    """
    said = []
    current = {}
    for window in windows:
        key = _key(window)
        current[key] = window
        values = {"key": key, "starts_at": window.starts_at, "ends_at": window.ends_at}
        if not await insert_if_absent(session, MaintenanceNotice, values):
            await session.execute(
                update(MaintenanceNotice)
                .where(MaintenanceNotice.key == key, MaintenanceNotice.ends_at != window.ends_at)
                .values(ends_at=window.ends_at)
            )
        if not (now < window.starts_at <= now + notice):
            continue  # far off, or already running: a window nobody was told of ahead is not announced late
        if await _claim(session, key, MaintenanceNotice.told_ahead_at, now):
            context = {"starts_at": window.starts_at.isoformat(), "ends_at": window.ends_at.isoformat()}
            await _tell_everyone(session, now, "alerts/maintenance_ahead", context, key)
            said.append(f"ahead:{key}")
    told_ahead = await session.execute(
        select(MaintenanceNotice.key, MaintenanceNotice.starts_at).where(
            MaintenanceNotice.told_ahead_at.is_not(None), MaintenanceNotice.told_over_at.is_(None)
        )
    )
    for key, starts_at in told_ahead.all():
        listed = current.get(key)
        if listed is None and starts_at > now:
            # Gone from the CRM's list before it began: moved (its new start is a window of its own, told
            # of anew) or called off. Nothing ran, so nothing is "over".
            await session.execute(delete(MaintenanceNotice).where(MaintenanceNotice.key == key))
            continue
        # Over when its end has come, or when the CRM stopped listing it once it had begun (ended early).
        if listed is not None and listed.ends_at > now:
            continue
        if await _claim(session, key, MaintenanceNotice.told_over_at, now):
            await _tell_everyone(session, now, "alerts/maintenance_over", {}, key)
            said.append(f"over:{key}")
    return said


async def _claim(
    session: AsyncSession, key: str, column: InstrumentedAttribute[datetime | None], now: datetime
) -> bool:
    claimed = await session.scalar(
        update(MaintenanceNotice)
        .where(MaintenanceNotice.key == key, column.is_(None))
        .values({column: now})
        .returning(MaintenanceNotice.key)
        .execution_options(synchronize_session=False)
    )
    return claimed is not None


async def _tell_everyone(
    session: AsyncSession, now: datetime, template: str, context: dict[str, str], key: str
) -> None:
    people = sorted(await reachable(session))
    await notify(session, now=now, usernames=people, template=template, context=context, buttons=(MENU,))
    await audit.record(
        session, at=now, actor=ACTOR, action=f"notice.{template}", subject=key, details={"to": len(people)}
    )
