"""The admins' weekly digest (``[admins] weekly_digest``): last week's numbers of ``stats``, once a week.

The housekeeper calls ``send_weekly_digest`` in its rounds; the ISO week is claimed as a lease
(``digest:2026-W48``) in the same transaction as the notifications, so of several replicas one sends it, once.
A notification lives in the database and carries text and buttons, not pictures: the digest says the numbers
in words and offers the ``stats`` button, which answers with the chart drawn at that moment.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Button
from bot.reports.stats import gather
from bot.requests import audit
from bot.requests.notifications import MENU, notify
from bot.storage import leases

ACTOR = "housekeeper"
TEMPLATE = "admin/weekly_digest"
PERIOD = timedelta(days=7)
STATS = Button("stats", "stats")


def week_of(now: datetime) -> str:
    """The ISO week of ``now`` (in UTC), as ``2026-W48``."""
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}"


async def send_weekly_digest(session: AsyncSession, *, now: datetime, admins: tuple[str, ...]) -> bool:
    """Tell the admins the last 7 days' numbers unless this week's digest went out already; whether it went now."""
    week = week_of(now)
    # Claimed past the week's end: the name is never used again, so it only has to outlive the week.
    if not admins or not await leases.claim(session, f"digest:{week}", ACTOR, now=now, ttl=timedelta(days=8)):
        return False
    numbers = await gather(session, now=now, period=PERIOD)
    await notify(
        session, now=now, usernames=admins, template=TEMPLATE, context=numbers.summary(), buttons=(STATS, MENU)
    )
    await audit.record(
        session, at=now, actor=ACTOR, action=f"notice.{TEMPLATE}", subject=week, details={"to": list(admins)}
    )
    return True
