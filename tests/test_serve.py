"""``unlockbot serve`` runs with no channel configured and answers /healthz."""

from __future__ import annotations

import asyncio

import aiohttp

from bot.app import App
from bot.serve import serve
from tests.handlers.common import free_port


async def test_serve_answers_health_and_stops(app: App) -> None:
    port = free_port()
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
    async with aiohttp.ClientSession() as client:
        for _ in range(100):
            try:
                async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
                    assert await response.json() == {"status": "ok"}
                    break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.02)
        else:
            raise AssertionError("the server never answered")
    stop.set()
    await asyncio.wait_for(task, timeout=5)
