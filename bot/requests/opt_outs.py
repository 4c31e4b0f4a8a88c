"""Who hears from the bot unasked: linked people, unless they said "stop alerts" ("不要再提醒").

The choice is kept in ``alert_opt_outs`` until they say "start alerts" ("恢复提醒"); both are audited. Lock
alerts and maintenance notices (``bot.requests.alerts``, ``bot.requests.maintenance``) go only to the people
``reachable`` returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.requests import audit
from bot.storage.models import AlertOptOut, ChatIdentity
from bot.storage.upsert import insert_if_absent


async def opt_out(session: AsyncSession, *, now: datetime, username: str, actor: str) -> bool:
    """No more unasked messages for ``username``; ``False`` when they had already said so."""
    if not await insert_if_absent(session, AlertOptOut, {"crm_username": username, "since": now}):
        return False
    await audit.record(session, at=now, actor=actor, action="alerts.stopped", subject=username)
    return True


async def opt_in(session: AsyncSession, *, now: datetime, username: str, actor: str) -> bool:
    """Unasked messages for ``username`` again; ``False`` when they had never stopped them."""
    gone = await session.scalar(
        delete(AlertOptOut)
        .where(AlertOptOut.crm_username == username)
        .returning(AlertOptOut.crm_username)
        .execution_options(synchronize_session=False)
    )
    if gone is None:
        return False
    await audit.record(session, at=now, actor=actor, action="alerts.started", subject=username)
    return True


async def opted_out(session: AsyncSession, usernames: Iterable[str]) -> set[str]:
    names = list(set(usernames))
    if not names:
        return set()
    return set(await session.scalars(select(AlertOptOut.crm_username).where(AlertOptOut.crm_username.in_(names))))


async def reachable(session: AsyncSession, usernames: Iterable[str] | None = None) -> set[str]:
    """Of ``usernames`` (everyone when ``None``), those linked to a chat account and not opted out."""
    query = select(ChatIdentity.crm_username).distinct()
    if usernames is not None:
        names = list(set(usernames))
        if not names:
            return set()
        query = query.where(ChatIdentity.crm_username.in_(names))
    linked = set(await session.scalars(query))
    return linked - await opted_out(session, linked)
