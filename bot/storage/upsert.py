"""``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL alike.

Replicas race to create the same row (an event id, a person's first
conversation, a claim): the one that loses must find the row there, not fail
its whole transaction on a unique violation. On PostgreSQL an insert that
meets a row another transaction has not committed yet waits for it, then
inserts nothing if that transaction committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from bot.storage.models import Base


def dialect_insert(session: AsyncSession, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for ``model`` in the dialect of ``session``'s database, which knows ``on_conflict_do_*``."""
    return _insert(_dialect(session), model)


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def _insert(dialect: str, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    return postgresql.insert(model) if dialect == "postgresql" else sqlite.insert(model)


async def insert_if_absent(session: AsyncSession, model: type[Base], values: Mapping[str, Any]) -> bool:
    """Insert one row unless a row with the same key or unique columns exists; whether this call inserted it."""
    statement = _insert_unless_there(_dialect(session), model)
    return (await session.execute(statement, dict(values))).first() is not None


@cache
def _insert_unless_there(dialect: str, model: type[Base]) -> ReturningInsert[Any]:
    """The statement for ``insert_if_absent``, built once per table: its values come as parameters."""
    # RETURNING, not rowcount: psycopg gives no row count for INSERT ... ON CONFLICT DO NOTHING.
    return _insert(dialect, model).on_conflict_do_nothing().returning(*inspect(model).primary_key)
