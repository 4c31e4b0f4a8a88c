"""Helpers every channel's tests use: a free port, a channel's routes served on it, demo codes, requests, and
settings for the weekly digest."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from bot import demo
from bot.app import App
from bot.clock import ManualClock
from bot.config import Settings
from bot.crm.base import LockReason
from bot.handlers.base import Channel
from bot.reports.digest import TEMPLATE as DIGEST
from bot.requests.unlock_requests import file_request
from bot.storage.models import Notification, UnlockRequest
from tests.databases import DemoTemplates, demo_app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def routes_served(channel: Channel) -> AsyncIterator[int]:
    """The channel's HTTP routes on an aiohttp server of their own, as ``serve`` adds them to the shared one."""
    server = web.Application()
    channel.add_routes(server)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def code(app: App, username: str) -> str:
    return await demo.current_code(app, username)


async def request_of(app: App, username: str) -> UnlockRequest:
    async with app.database.session() as session:
        request = await session.scalar(select(UnlockRequest).where(UnlockRequest.crm_username == username))
    assert request is not None
    return request


async def file_for(app: App, username: str, clock: ManualClock, channel: str) -> int:
    """A request of ``username``'s waiting for the admins, as if filed on ``channel``."""
    async with app.database.session() as session, session.begin():
        request = await file_request(
            session,
            now=clock.now(),
            username=username,
            reason=LockReason.UNKNOWN,
            evidence={},
            channel=channel,
            requester=username,
            admins=("sam", "tina"),
        )
    return request.id


def with_weekly_digest(settings: Settings, channel: str, section: dict[str, Any], *, locale: str = "en") -> Settings:
    """``settings`` with ``[admins] weekly_digest`` on, ``channel``'s section set and ``[bot] default_locale``."""
    values = settings.model_dump()
    return Settings.model_validate(
        {
            **values,
            "admins": {**values["admins"], "weekly_digest": True},
            "bot": {**values["bot"], "default_locale": locale},
            channel: section,
        }
    )


async def digest_notices(app: App) -> int:
    """How many admins were notified of a weekly digest (what happens when no channel can post it)."""
    async with app.database.session() as session:
        found = await session.scalar(
            select(func.count()).select_from(Notification).where(Notification.template == DIGEST)
        )
    return int(found or 0)


@asynccontextmanager
async def after_digest_rounds(
    make: Callable[[App], Channel], settings: Settings, clock: ManualClock, templates: DemoTemplates
) -> AsyncIterator[App]:
    """The demo app of ``settings`` once ``digest_passes`` ran through the one channel ``make`` builds for it."""
    async with demo_app(settings, clock, templates) as app:
        channel = make(app)
        await channel.start()
        try:
            await digest_passes([app], [channel], clock)  # the second round posts nothing more
        finally:
            await channel.stop()
        yield app


async def digest_passes(apps: Sequence[App], channels: Sequence[Channel], clock: ManualClock) -> None:
    """Two housekeeping rounds in one ISO week on every replica, each followed by every channel's delivery:
    whatever the second round, or a second replica, would post more is a digest posted twice."""
    for _ in range(2):
        for app in apps:
            await app.housekeeper.tick()
        for channel in channels:
            await channel.deliver()
        clock.advance(timedelta(hours=1))  # Sunday 29 November still: the same ISO week
