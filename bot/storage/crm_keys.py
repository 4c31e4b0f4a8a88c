"""Idempotency keys a remote CRM backend has carried out, and what each returned.

Salesforce and Keycloak take no idempotency key of their own, so the
backend remembers which keys it has acted on and answers a repeat from that
memory. ``StoredKeys`` keeps that memory in the bot's database, so a repeat
on another replica, or after a restart, changes nothing in the CRM either;
``MemoryKeys`` is the same within one process, for tests and tools.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.storage.db import Database
from bot.storage.models import CrmDoneKey
from bot.storage.upsert import insert_if_absent


class DoneKeys(Protocol):
    """Where a backend looks up and notes the keys it carried out."""

    async def result(self, key: str) -> dict[str, Any] | None:
        """What the action under ``key`` returned, or ``None`` if it was not carried out yet."""
        ...

    async def done(self, key: str, result: dict[str, Any]) -> None:
        """Note that the action under ``key`` was carried out and returned ``result`` (JSON-ready)."""
        ...


class StoredKeys:
    """Keys carried out against one CRM (``system``), kept in the bot's database for every replica."""

    def __init__(self, database: Database, clock: Clock, system: str) -> None:
        self._db = database
        self._clock = clock
        self.system = system

    def __repr__(self) -> str:
        return f"StoredKeys({self.system!r})"

    async def result(self, key: str) -> dict[str, Any] | None:
        async with self._db.session() as session:
            stored = await session.scalar(
                select(CrmDoneKey.result).where(CrmDoneKey.system == self.system, CrmDoneKey.idempotency_key == key)
            )
        return dict(stored) if stored is not None else None

    async def done(self, key: str, result: dict[str, Any]) -> None:
        values = {"system": self.system, "idempotency_key": key, "result": result, "done_at": self._clock.now()}
        async with self._db.session() as session, session.begin():
            # A key noted twice (two workers that both finished) keeps what the first noted.
            await insert_if_absent(session, CrmDoneKey, values)


class MemoryKeys:
    """Keys carried out by this process only, the oldest forgotten past ``size``."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._done: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def result(self, key: str) -> dict[str, Any] | None:
        return self._done.get(key)

    async def done(self, key: str, result: dict[str, Any]) -> None:
        self._done[key] = dict(result)
        self._done.move_to_end(key)
        while len(self._done) > self._size:
            self._done.popitem(last=False)


async def prune(session: AsyncSession, *, now: datetime, older_than: timedelta) -> int:
    """Forget keys carried out more than ``older_than`` ago (no outbox row waits that long); how many went."""
    pruned = await session.execute(delete(CrmDoneKey).where(CrmDoneKey.done_at < now - older_than))
    return int(pruned.rowcount)  # type: ignore[attr-defined]
