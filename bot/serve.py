"""``unlockbot serve``: every configured channel in one process and one event loop.

Channels that receive over HTTP (Telegram webhooks, Slack's Events API) add
their routes to one shared aiohttp server on ``[http] host``/``port``. Channels
that pull (Telegram polling, Slack Socket Mode) start their own tasks. Every
few seconds each channel delivers what the bot has to say unprompted
(notifications, admin cards), and the housekeeper expires requests, reminds
admins and runs the outbox.

The same server tells the operator how the bot is doing:

    /healthz   liveness: 200 whenever the event loop answers
    /readyz    readiness: 200 when the database answers, is at the newest migration and every channel is
               connected; otherwise 503, with a JSON body naming what failed
    /metrics   Prometheus metrics (``bot.metrics``)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.app import App
from bot.handlers.base import Channel, configured_channels
from bot.logs import describe
from bot.metrics import read_state
from bot.storage.db import Database, alembic_config

log = logging.getLogger(__name__)


# How long /readyz and /metrics wait for the database before calling it unavailable.
CHECK_TIMEOUT = 3.0


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


class Readiness:
    """What ``/readyz`` checks: the database answers and is at this code's newest migration, and every
    channel has started and, where it can tell, is connected."""

    def __init__(self, database: Database, channels: Sequence[Channel], *, timeout: float = CHECK_TIMEOUT) -> None:
        self._database = database
        self._channels = channels
        self._timeout = timeout
        self._heads = frozenset(ScriptDirectory.from_config(alembic_config(database.url)).get_heads())
        self.started: set[str] = set()
        # What failed at the last check: a change is logged once, not at every probe.
        self._reported: tuple[str, ...] | None = None

    async def _revisions(self) -> frozenset[str]:
        async with self._database.engine.connect() as connection:
            heads = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads())
        return frozenset(heads)

    async def _channel_state(self, channel: Channel) -> str:
        if channel.name not in self.started:
            return "starting"
        if not await channel.connected():
            return "disconnected"
        return "connected"

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """Whether the bot is ready, and the JSON body that says so or names what failed."""
        checks: dict[str, str] = {}
        failed: list[str] = []
        detail = ""
        try:
            async with asyncio.timeout(self._timeout):
                current = await self._revisions()
        except Exception as exc:  # whatever the reason, a database that does not answer is the answer
            detail = f" ({describe(exc)})"  # for the log only: the body is for anyone who can reach the port
            checks["database"] = f"not answering ({type(exc).__name__})"
            failed.append("database")
        else:
            checks["database"] = "ok"
            if current == self._heads:
                checks["migrations"] = "ok"
            else:
                at = ", ".join(sorted(current)) or "none"
                checks["migrations"] = (
                    f"at {at}, this version needs {', '.join(sorted(self._heads))}: run `unlockbot db upgrade`"
                )
                failed.append("migrations")
        for channel in self._channels:
            key = f"channel:{channel.name}"
            checks[key] = await self._channel_state(channel)
            if checks[key] != "connected":
                failed.append(key)
        if tuple(failed) != self._reported:
            if failed:
                log.warning("not ready: %s%s", "; ".join(f"{name}: {checks[name]}" for name in failed), detail)
            elif self._reported is not None:
                log.info("ready again")
            self._reported = tuple(failed)
        if failed:
            return False, {"status": "not ready", "failed": failed, "checks": checks}
        return True, {"status": "ready", "checks": checks}


def _operations_routes(server: web.Application, app: App, readiness: Readiness) -> None:
    async def ready(_: web.Request) -> web.Response:
        ok, body = await readiness.check()
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        state = None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT), app.database.session() as session:
                state = await read_state(session)
        except Exception as exc:  # the scrape still answers; the gauges read from the database are left out
            log.warning("metrics without the database's numbers: %s", describe(exc))
        body, content_type = app.metrics.exposition(state, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    server.router.add_get("/healthz", _health)
    server.router.add_get("/readyz", ready)
    server.router.add_get("/metrics", metrics)


async def serve(app: App, *, stop: asyncio.Event | None = None, delivery_interval: float = 2.0) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    channels = configured_channels(app)
    if not channels:
        log.warning(
            "no channel is configured: fill in [telegram], [slack], [feishu], [dingtalk] or [wecom]; "
            "only /healthz, /readyz, /metrics answer"
        )
    readiness = Readiness(app.database, channels)
    server = web.Application()
    _operations_routes(server, app, readiness)
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
        readiness.started.add(channel.name)
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
        readiness.started.clear()  # stopping: no longer ready for traffic
        for channel in channels:
            await channel.stop()
        await background
        await runner.cleanup()
