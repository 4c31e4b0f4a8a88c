"""The bare apps ``serve_bench.py`` measures the bot against: echo bots with nothing of ours in them.

Each answers every direct message with one line, through the same fake platform API as the bot, and
serves ``/healthz`` beside its webhook route until it gets SIGTERM. The Slack one is slack-bolt's
``AsyncApp`` on aiohttp; the Telegram one is python-telegram-bot's ``Application`` fed by an aiohttp
webhook route (PTB's own webhook server needs tornado, which is not installed), with concurrent updates
on and no rate limiter.

    .venv/bin/python bench/_bare_apps.py slack --port 8101 --api-url http://127.0.0.1:PORT/api/
    .venv/bin/python bench/_bare_apps.py telegram --port 8102 --api-url http://127.0.0.1:PORT/bot
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET
from tests.fakes.telegram_api import TOKEN

TELEGRAM_SECRET = "bench-webhook-secret"  # noqa: S105 (a test value the bench sends back)
TELEGRAM_PATH = "/telegram/webhook"


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _serve(server: web.Application, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server.router.add_get("/healthz", _health)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await stop.wait()
    await runner.cleanup()


async def slack(port: int, api_url: str) -> None:
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=api_url), signing_secret=SIGNING_SECRET)

    @app.event("message")
    async def echo(event: dict[str, Any], client: AsyncWebClient) -> None:
        await client.chat_postMessage(channel=event["channel"], text=f"you said: {event.get('text', '')}")

    await _serve(app.web_app(path="/slack/events"), port)


async def telegram(port: int, api_url: str) -> None:
    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

    application = ApplicationBuilder().token(TOKEN).base_url(api_url).updater(None).concurrent_updates(True).build()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        assert update.message is not None
        await context.bot.send_message(update.effective_chat.id, f"you said: {update.message.text}")

    application.add_handler(MessageHandler(filters.TEXT, echo))

    async def webhook(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != TELEGRAM_SECRET:
            return web.Response(status=403)
        await application.update_queue.put(Update.de_json(await request.json(), application.bot))
        return web.Response()

    server = web.Application()
    server.router.add_post(TELEGRAM_PATH, webhook)
    async with application:
        await application.start()
        await _serve(server, port)
        await application.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("platform", choices=("slack", "telegram"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-url", required=True, help="the fake's Web API (Slack) or Bot API (Telegram) URL")
    args = parser.parse_args()
    asyncio.run((slack if args.platform == "slack" else telegram)(args.port, args.api_url))


if __name__ == "__main__":
    main()
