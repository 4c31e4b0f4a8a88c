"""Facts about the database itself, kept in ``bot_meta``, and what the demo flag there means.

A demo database names its own admins and holds TOTP secrets derived from public code; ``forget_demo``
empties such a database so that it can serve real people.
"""

from __future__ import annotations

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import NotADemoDatabase
from bot.storage.models import Base, BotMeta

DEMO_FLAG = "demo"
# The demo database names its own admins, so the demo needs no config file.
DEMO_ADMINS = ("sam", "tina")
# What an operator runs to empty a demo database; named wherever demo data stops a start.
CLEAR_DEMO_COMMAND = "unlockbot demo clear"


async def is_demo(session: AsyncSession) -> bool:
    flag = await session.get(BotMeta, DEMO_FLAG)
    return flag is not None and flag.value == "true"


async def forget_demo(session: AsyncSession) -> None:
    """Delete every row of a demo database (links, TOTP secrets, requests, audit, the flag itself).

    Anything recorded in a demo database rests on the demo's links and secrets, so nothing in it is
    kept. A database without the demo flag is refused and left as it is.
    """
    if not await is_demo(session):
        raise NotADemoDatabase("this is not a demo database: there is no demo data to clear, and nothing was deleted")
    await clear_bot_tables(session)


async def clear_bot_tables(session: AsyncSession) -> None:
    """Delete every row of the bot's tables, the audit trail included (whoever calls it forgets the anchor).

    For a demo starting over and for ``demo clear`` only. On PostgreSQL a trigger refuses row deletes of
    audit events; TRUNCATE is not one, and only the table's owner (or a role granted TRUNCATE) may run it.
    """
    postgresql = session.bind is not None and session.bind.dialect.name == "postgresql"
    for table in reversed(Base.metadata.sorted_tables):
        if table.name == "audit_events" and postgresql:
            await session.execute(text("TRUNCATE audit_events"))
        else:
            await session.execute(delete(table))
