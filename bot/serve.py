"""``unlockbot serve``: every configured channel in one process and one event loop.

Channels that receive over HTTP (Telegram webhooks, Slack's Events API) add
their routes to one shared aiohttp server on ``[http] host``/``port``, which
also answers ``/healthz``. Channels that pull (Telegram polling, Slack Socket
Mode) start their own tasks. Every few seconds each channel delivers what the
bot has to say unprompted (notifications, admin cards), and the housekeeper
expires requests, reminds admins and runs the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Protocol

from aiohttp import web

from bot.app import App

log = logging.getLogger(__name__)


class ChannelRunner(Protocol):
    """What ``serve`` needs of a channel."""

    name: str

    def add_routes(self, server: web.Application) -> None:
        """Register HTTP routes, if the channel receives over HTTP."""
        ...

    async def start(self) -> None:
        """Begin receiving (start polling or a socket, or just get ready for HTTP)."""
        ...

    async def deliver(self) -> None:
        """Send what is waiting: notifications to people, cards to admin destinations."""
        ...

    async def stop(self) -> None: ...


def configured_channels(app: App) -> list[ChannelRunner]:
    """The channels whose settings are filled in; each module is imported only when used."""
    channels: list[ChannelRunner] = []
    if app.settings.slack.bot_token is not None:
        from bot.handlers.slack import SlackChannel

        channels.append(SlackChannel(app))
    if app.settings.telegram.token is not None:
        from bot.handlers.telegram import TelegramChannel

        channels.append(TelegramChannel(app))
    return channels


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve(app: App, *, stop: asyncio.Event | None = None, delivery_interval: float = 2.0) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    channels = configured_channels(app)
    if not channels:
        log.warning("no channel is configured: fill in [telegram] or [slack]; only /healthz will answer")
    server = web.Application()
    server.router.add_get("/healthz", _health)
    for channel in channels:
        channel.add_routes(server)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, app.settings.http.host, app.settings.http.port)
    await site.start()
    log.info("listening on %s:%s", app.settings.http.host, app.settings.http.port)
    await app.housekeeper.tick()
    for channel in channels:
        await channel.start()
    background = asyncio.create_task(app.housekeeper.run(stop, interval=delivery_interval))
    try:
        while not stop.is_set():
            for channel in channels:
                try:
                    await channel.deliver()
                except Exception:  # one channel's trouble must not stop the others
                    log.exception("delivery on %s failed", channel.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delivery_interval)
    finally:
        for channel in channels:
            await channel.stop()
        await background
        await runner.cleanup()
