"""``/healthz`` (liveness) and ``/readyz`` (readiness) on the ``serve`` HTTP server.

``/readyz`` is 200 only when the database answers, is at this code's newest migration and every channel
is connected; otherwise 503 with a JSON body naming what failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from alembic.script import ScriptDirectory

from bot.app import App
from bot.serve import Readiness, serve
from bot.storage.db import Database, alembic_config, upgrade
from tests.fakes.telegram_api import FakeBotApi
from tests.handlers.common import free_port
from tests.handlers.test_telegram import use_telegram, wait_for_health

pytestmark = pytest.mark.filterwarnings(
    r"ignore:.*attribute `retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"
)

# Nothing listens on port 1: a PostgreSQL server that is down.
STOPPED_DATABASE = "postgresql+psycopg://unlockbot@127.0.0.1:1/unlockbot"


@asynccontextmanager
async def serving(app: App) -> AsyncIterator[int]:
    """``serve`` running on a free port, until the block ends."""
    port = free_port()
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
    try:
        await wait_for_health(port, task)
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def get(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{port}{path}") as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def once_started(port: int) -> tuple[int, Any]:
    """``/readyz`` once no channel is still starting (serve listens first, then starts the channels)."""
    for _ in range(500):  # a guard against a hang, not a measure of speed
        status, body = await get(port, "/readyz")
        if "starting" not in body["checks"].values():
            return status, body
        await asyncio.sleep(0.02)
    raise AssertionError(f"a channel never finished starting: {body}")


def previous_revision() -> str:
    """The migration before the newest: a database one deploy behind."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    (head,) = scripts.get_heads()
    down = scripts.get_revision(head).down_revision
    assert isinstance(down, str)
    return down


async def test_ready_when_the_database_is_current_and_telegram_is_polling(app: App) -> None:
    async with FakeBotApi() as api:
        use_telegram(app, api)  # polling the fake Bot API
        async with serving(app) as port:
            assert await get(port, "/healthz") == (200, {"status": "ok"})
            status, body = await once_started(port)
    assert status == 200, body
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "channel:telegram": "connected"},
    }


async def test_not_ready_when_the_database_is_a_migration_behind(app: App, tmp_path: Path) -> None:
    behind = f"sqlite:///{tmp_path / 'behind.db'}"
    earlier = previous_revision()
    await asyncio.to_thread(upgrade, behind, earlier)
    database = Database(behind)
    current = app.database
    app.database = database  # what serve checks; the rest of the app keeps the current database
    try:
        async with serving(app) as port:
            status, body = await get(port, "/readyz")
            assert (await get(port, "/healthz"))[0] == 200  # alive all the same: a restart would not help
    finally:
        app.database = current
        await database.dispose()
    assert status == 503
    assert body["status"] == "not ready"
    assert body["failed"] == ["migrations"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"].startswith(f"at {earlier}, this version needs ")
    assert "unlockbot db upgrade" in body["checks"]["migrations"]


async def test_not_ready_when_the_database_is_stopped_and_metrics_still_answer(app: App) -> None:
    database = Database(STOPPED_DATABASE)
    current = app.database
    app.database = database
    try:
        async with serving(app) as port:
            status, body = await get(port, "/readyz")
            scrape_status, scraped = await get(port, "/metrics")
    finally:
        app.database = current
        await database.dispose()
    assert status == 503
    assert body["failed"] == ["database"]
    assert body["checks"]["database"].startswith("not answering (")
    assert "127.0.0.1" not in str(body)  # where the database is stays in the log, not on an open endpoint
    assert scrape_status == 200
    assert "unlockbot_turns" in scraped
    assert "unlockbot_outbox_pending" not in scraped  # unknown now: left out, not shown stale


class SocketChannel:
    """A channel whose link to its platform comes and goes, as a socket's does."""

    name = "socket"

    def __init__(self) -> None:
        self.up = True

    def add_routes(self, server: web.Application) -> None: ...

    async def start(self) -> None: ...

    async def deliver(self) -> None: ...

    async def stop(self) -> None: ...

    async def connected(self) -> bool:
        return self.up


async def test_a_channel_is_ready_once_started_and_while_connected(app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.serve")
    channel = SocketChannel()
    readiness = Readiness(app.database, [channel])
    for _ in range(2):  # probed again and again
        ready, body = await readiness.check()
        assert not ready
        assert body["failed"] == ["channel:socket"]
        assert body["checks"]["channel:socket"] == "starting"
    readiness.started.add(channel.name)  # what serve does once start() returned
    assert (await readiness.check())[0]
    channel.up = False
    ready, body = await readiness.check()
    assert not ready
    assert body["checks"]["channel:socket"] == "disconnected"
    # Each change is logged once, not every probe.
    assert [record.getMessage() for record in caplog.records] == [
        "not ready: channel:socket: starting",
        "ready again",
        "not ready: channel:socket: disconnected",
    ]


async def test_readiness_waits_no_longer_than_its_timeout() -> None:
    """A database that accepts the connection but never answers is reported, not waited for."""
    hold = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hold.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    database = Database(f"postgresql+psycopg://unlockbot@127.0.0.1:{port}/unlockbot")
    try:
        ready, body = await Readiness(database, [], timeout=0.2).check()
    finally:
        hold.set()
        server.close()
        await server.wait_closed()
        await database.dispose()
    assert not ready
    assert body["checks"]["database"] == "not answering (TimeoutError)"
