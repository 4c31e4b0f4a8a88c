"""Telling the admins before a licence or trial ends, and when its seats are nearly all taken.

The seed's second case is a licence that lapsed because nobody was reminded. The housekeeper asks the CRM
for every licence now and then (a backend that cannot list them says so in ``unlockbot crm check``) and
reminds the admins 30, 7 and 1 days before each one ends, once per step, and when the seats in use pass
90 % of those paid for, once a week while they stay there. Each reminder is claimed in the database
(``bot.storage.leases``) in the same transaction as the notification, so of several replicas one sends it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.crm.base import LicenceInfo
from bot.requests import audit
from bot.requests.notifications import notify
from bot.storage import leases

log = logging.getLogger(__name__)

ACTOR = "housekeeper"
DAYS_AHEAD = (1, 7, 30)  # the tightest step reached is the one reminded of
SEATS_SHARE = 0.9
SEATS_AGAIN = timedelta(days=7)


def _step(licence: LicenceInfo, now: datetime) -> int | None:
    """The reminder step (days ahead) ``licence`` has reached, or ``None``: far off, none, or already over."""
    if licence.expires_at is None or licence.expires_at <= now:
        return None
    left = licence.expires_at - now
    return next((days for days in DAYS_AHEAD if left <= timedelta(days=days)), None)


async def remind_about_licences(
    session: AsyncSession, *, now: datetime, licences: list[LicenceInfo], admins: tuple[str, ...]
) -> int:
    """Keep a reminder for the admins of each licence that needs one and has not had it; how many."""
    sent = 0
    for licence in licences:
        step = _step(licence, now)
        # Claimed until well after the licence ends: each step is said once, whatever the renewal date becomes.
        if step is not None and await leases.claim(
            session, f"licence:{licence.name}:{step}d", ACTOR, now=now, ttl=timedelta(days=step + 60)
        ):
            days_left = max(1, round((licence.expires_at - now) / timedelta(days=1))) if licence.expires_at else step
            ends_at = licence.expires_at.isoformat() if licence.expires_at else None
            context: dict[str, Any] = {
                "name": licence.name,
                "ends_at": ends_at,
                "days": days_left,
                "trial": licence.trial,
            }
            await _tell(session, now, admins, "admin/licence_ending", context, licence.name)
            sent += 1
        total, used = licence.seats_total, licence.seats_used
        if (
            total
            and used is not None
            and used >= SEATS_SHARE * total
            and await leases.claim(session, f"seats:{licence.name}", ACTOR, now=now, ttl=SEATS_AGAIN)
        ):
            seats: dict[str, Any] = {"name": licence.name, "used": used, "total": total}
            await _tell(session, now, admins, "admin/seats_nearly_full", seats, licence.name)
            sent += 1
    return sent


async def _tell(
    session: AsyncSession, now: datetime, admins: tuple[str, ...], template: str, context: dict[str, Any], name: str
) -> None:
    await notify(session, now=now, usernames=admins, template=template, context=context)
    await audit.record(
        session, at=now, actor=ACTOR, action=f"notice.{template}", subject=name, details={"to": list(admins)}
    )
