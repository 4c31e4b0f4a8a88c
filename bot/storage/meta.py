"""Facts about the database itself, kept in ``bot_meta``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import BotMeta

DEMO_FLAG = "demo"
# The demo database names its own admins, so the demo needs no config file.
DEMO_ADMINS = ("sam", "tina")


async def is_demo(session: AsyncSession) -> bool:
    flag = await session.get(BotMeta, DEMO_FLAG)
    return flag is not None and flag.value == "true"
