"""Sends to Telegram are paced under its flood limit, replies go before notices, and order in a chat is kept."""

from __future__ import annotations

import asyncio

from telegram import Bot
from telegram.ext import ExtBot

from bot.handlers.telegram_pacing import NOTICE, REPLY, PacedRateLimiter, Pacer, notices
from tests.fakes.telegram_api import FakeBotApi, FakeUser


async def test_waiting_replies_go_before_waiting_notices_in_the_order_they_came() -> None:
    pacer = Pacer(per_second=1000)
    pacer.hold(0.2)  # nothing is handed out until all five wait
    served: list[str] = []

    async def send(name: str, priority: int) -> None:
        await pacer.slot(priority)
        served.append(name)

    sends = [("notice 1", NOTICE), ("reply 1", REPLY), ("notice 2", NOTICE), ("reply 2", REPLY), ("reply 3", REPLY)]
    await asyncio.gather(*(send(name, priority) for name, priority in sends))
    await pacer.close()
    assert served == ["reply 1", "reply 2", "reply 3", "notice 1", "notice 2"]


async def test_the_priority_of_a_send_is_taken_from_where_it_is_made() -> None:
    pacer = Pacer(per_second=1000)
    pacer.hold(0.2)
    served: list[str] = []

    async def send(name: str) -> None:
        from bot.handlers.telegram_pacing import _priority

        await pacer.slot(_priority.get())
        served.append(name)

    async def notice() -> None:
        with notices():
            await send("notice")

    await asyncio.gather(notice(), send("reply"))
    await pacer.close()
    assert served == ["reply", "notice"]


async def test_a_burst_stays_under_the_flood_limit_with_every_chat_in_order() -> None:
    people = [FakeUser(700 + n, f"P{n}", "en") for n in range(6)]
    async with FakeBotApi(flood_limit=10) as api:
        for person in people:
            api.message_update(person, "/start")  # they opened a chat with the bot
        bot: Bot = ExtBot(api.token, base_url=api.base_url, rate_limiter=PacedRateLimiter(9.5))
        async with bot:

            async def tell(person: FakeUser) -> None:
                for n in range(5):
                    await bot.send_message(person.id, f"message {n}")

            await asyncio.gather(*(tell(person) for person in people))
        sends = api.called("sendMessage")
        assert [call.status for call in sends] == [200] * 30  # not one 429
        for person in people:
            texts = [call.params["text"] for call in sends if int(call.params["chat_id"]) == person.id]
            assert texts == [f"message {n}" for n in range(5)]
