"""The admins' weekly digest (``[admins] weekly_digest``): last week's numbers of ``stats`` and their chart, weekly.

The housekeeper calls ``send_weekly_digest`` in its rounds; the ISO week is claimed as a lease
(``digest:2026-W48``) in the same transaction as what it leaves, so of several replicas one sends it, once.

Where a configured channel has an admin destination (a Slack channel, a Telegram group, a Feishu or DingTalk
group, WeCom admin users), the digest is posted there with the chart: the housekeeper leaves that channel a
fact (``bot.storage.channel_state``, kind ``admin_post``, due at once) naming the week, and the channel's
``deliver`` takes it, on one replica, asks the engine for the post (``digest_post``: the summary in the default
language and the PNG) and posts both into the destination. Only when no configured channel has one (a
console-only install) does each admin get a notification instead: a notification lives in the database and
carries text and buttons, not pictures, so it says the numbers in words and offers the ``stats`` button,
which answers with the chart drawn at that moment.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Button, Image, Reply
from bot.reports.stats import LockStats, gather
from bot.requests import audit
from bot.requests.notifications import MENU, notify
from bot.storage import channel_state, leases

ACTOR = "housekeeper"
TEMPLATE = "admin/weekly_digest"
PERIOD = timedelta(days=7)
STATS = Button("stats", "stats")
WEEKLY = "weekly_digest"  # the kind of admin post the digest is
CHART_NAME = "lock-stats.png"

# ``Renderer.label``: (key, locale, params) -> text, the words drawn into the chart.
Label = Callable[[str, str, Mapping[str, object] | None], str]


def week_of(now: datetime) -> str:
    """The ISO week of ``now`` (in UTC), as ``2026-W48``."""
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True, slots=True)
class AdminPost:
    """What the housekeeper asks a channel to post to its admins: the digest of the ``days`` up to ``until``."""

    week: str
    until: datetime
    days: int
    kind: str = WEEKLY

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.days)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "week": self.week, "until": self.until.isoformat(), "days": self.days})

    @classmethod
    def from_json(cls, raw: str) -> AdminPost:
        """The post kept in ``raw``; ``ValueError`` for anything else (a kind this version does not know)."""
        try:
            found = json.loads(raw)
            post = cls(str(found["week"]), datetime.fromisoformat(found["until"]), int(found["days"]), found["kind"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"not an admin post: {raw[:100]!r}") from exc
        if post.kind != WEEKLY or post.days <= 0 or post.until.tzinfo is None:
            raise ValueError(f"not an admin post this version knows: {raw[:100]!r}")
        return post


async def send_weekly_digest(
    session: AsyncSession, *, now: datetime, admins: tuple[str, ...], channels: tuple[str, ...] = ()
) -> bool:
    """Send last 7 days' digest unless this week's went out already; whether it went now.

    ``channels``: those with an admin destination, where it is posted with its chart; with none, each admin is
    notified instead.
    """
    week = week_of(now)
    # Claimed past the week's end: the name is never used again, so it only has to outlive the week.
    if not admins or not await leases.claim(session, f"digest:{week}", ACTOR, now=now, ttl=timedelta(days=8)):
        return False
    details: dict[str, object]
    if channels:
        post = AdminPost(week, now, PERIOD.days).to_json()
        for channel in channels:  # due at once; each channel's deliver, on one replica, posts it
            await channel_state.remember(
                session, channel, channel_state.ADMIN_POST, f"digest:{week}", post, expires_at=now
            )
        details = {"posted_to": list(channels)}
    else:
        numbers = await gather(session, now=now, period=PERIOD)
        await notify(
            session, now=now, usernames=admins, template=TEMPLATE, context=numbers.summary(), buttons=(STATS, MENU)
        )
        details = {"to": list(admins)}
    await audit.record(session, at=now, actor=ACTOR, action=f"notice.{TEMPLATE}", subject=week, details=details)
    return True


async def digest_post(numbers: LockStats, words: Label | None, locale: str) -> Reply:
    """The digest as posted to an admin destination: the numbers in words and, where words are given, the chart."""
    image = None
    if words is not None:
        from bot.reports.chart import render_chart  # matplotlib loads only for a picture

        # Drawing takes a moment of CPU: off the event loop, so people's turns go on meanwhile.
        chart = await asyncio.to_thread(render_chart, numbers, words, locale)
        image = Image(chart.png, CHART_NAME, secret=False)
    return Reply(TEMPLATE, {**numbers.summary(), "posted": image is not None}, image=image)
