"""``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL alike.

Replicas race to create the same row (an event id, a person's first
conversation, a claim): the one that loses must find the row there, not fail
its whole transaction on a unique violation. On PostgreSQL an insert that
meets a row another transaction has not committed yet waits for it, then
inserts nothing if that transaction committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Base


def dialect_insert(session: AsyncSession, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for ``model`` in the dialect of ``session``'s database, which knows ``on_conflict_do_*``."""
    name = session.bind.dialect.name if session.bind is not None else "sqlite"
    return postgresql.insert(model) if name == "postgresql" else sqlite.insert(model)


async def insert_if_absent(session: AsyncSession, model: type[Base], values: Mapping[str, Any]) -> bool:
    """Insert one row unless a row with the same key or unique columns exists; whether this call inserted it."""
    key = inspect(model).primary_key
    # RETURNING, not rowcount: psycopg gives no row count for INSERT ... ON CONFLICT DO NOTHING.
    statement = dialect_insert(session, model).values(dict(values)).on_conflict_do_nothing().returning(*key)
    return (await session.execute(statement)).first() is not None
