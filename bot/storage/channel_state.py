"""Small facts a channel keeps between messages, shared by every replica and kept across restarts.

What a channel must remember about a chat that the engine does not keep:
that a person's next message is a code to hide, which messages (a QR code)
to delete later, which group messages await an answer from one person. Each
fact is a string ``value`` under (``channel``, ``kind``, ``key``), with an
optional ``expires_at``:

- ``remember`` sets it (replacing what was there);
- ``recall`` reads it, ``forget`` deletes it, and ``take`` reads and deletes
  it in one statement, so of two replicas that take the same fact, one gets
  it and the other gets ``None``;
- a fact past its ``expires_at`` is as good as gone for those; ``take_due``
  hands such facts out, each to one caller, for work that is due at a time
  (delete this message at ``expires_at``);
- the housekeeper prunes facts a day after they ran out.

Each function takes the caller's session (the fact changes with that
transaction) or the ``Database`` (it runs in a transaction of its own and is
committed when the call returns). Values are plain strings: a channel that
keeps more than one field writes JSON. Never keep a secret here (a code,
a token): the table is not encrypted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.db import Database
from bot.storage.models import ChannelState
from bot.storage.upsert import dialect_insert

SessionOrDatabase = AsyncSession | Database

# The kind of fact the housekeeper leaves a channel to post to its admin destination (the weekly digest).
ADMIN_POST = "admin_post"


@asynccontextmanager
async def _session(target: SessionOrDatabase) -> AsyncIterator[AsyncSession]:
    if isinstance(target, Database):
        async with target.session() as session, session.begin():
            yield session
    else:
        yield target


def _one(channel: str, kind: str, key: str) -> ColumnElement[bool]:
    return and_(ChannelState.channel == channel, ChannelState.kind == kind, ChannelState.key == key)


def _live(now: datetime) -> ColumnElement[bool]:
    return or_(ChannelState.expires_at.is_(None), ChannelState.expires_at > now)


async def remember(
    target: SessionOrDatabase, channel: str, kind: str, key: str, value: str, *, expires_at: datetime | None = None
) -> None:
    """Keep ``value`` under (``channel``, ``kind``, ``key``) until ``expires_at`` (``None``: until forgotten)."""
    async with _session(target) as session:
        insert = dialect_insert(session, ChannelState).values(
            channel=channel, kind=kind, key=key, value=value, expires_at=expires_at
        )
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=["channel", "kind", "key"],
                set_={"value": insert.excluded.value, "expires_at": insert.excluded.expires_at},
            )
        )


async def recall(target: SessionOrDatabase, channel: str, kind: str, key: str, *, now: datetime) -> str | None:
    """The value kept under (``channel``, ``kind``, ``key``), unless it ran out; ``None`` when there is none."""
    async with _session(target) as session:
        return await session.scalar(select(ChannelState.value).where(_one(channel, kind, key), _live(now)))


async def take(target: SessionOrDatabase, channel: str, kind: str, key: str, *, now: datetime) -> str | None:
    """``recall`` and ``forget`` at once: the value for the one caller that removed it, else ``None``."""
    async with _session(target) as session:
        return await session.scalar(
            delete(ChannelState)
            .where(_one(channel, kind, key), _live(now))
            .returning(ChannelState.value)
            .execution_options(synchronize_session=False)
        )


async def forget(target: SessionOrDatabase, channel: str, kind: str, key: str) -> bool:
    """Delete the fact; whether there was one (run out or not)."""
    async with _session(target) as session:
        gone = await session.scalar(
            delete(ChannelState)
            .where(_one(channel, kind, key))
            .returning(ChannelState.key)
            .execution_options(synchronize_session=False)
        )
        return gone is not None


async def take_due(
    target: SessionOrDatabase, channel: str, kind: str, *, now: datetime, limit: int = 100
) -> list[tuple[str, str]]:
    """Facts of ``kind`` whose ``expires_at`` has come, as (key, value), oldest first; each goes to one caller."""
    async with _session(target) as session:
        due = list(
            await session.scalars(
                select(ChannelState.key)
                .where(ChannelState.channel == channel, ChannelState.kind == kind, ChannelState.expires_at <= now)
                .order_by(ChannelState.expires_at)
                .limit(limit)
            )
        )
        if not due:
            return []
        # Deleted with the condition again: a replica that took some of them first leaves nothing here for them.
        taken = await session.execute(
            delete(ChannelState)
            .where(
                ChannelState.channel == channel,
                ChannelState.kind == kind,
                ChannelState.key.in_(due),
                ChannelState.expires_at <= now,
            )
            .returning(ChannelState.key, ChannelState.value)
            .execution_options(synchronize_session=False)
        )
        found = {str(row.key): str(row.value) for row in taken}
        return [(key, found[key]) for key in due if key in found]


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Delete facts that ran out before ``before``; how many went."""
    pruned = await session.execute(delete(ChannelState).where(ChannelState.expires_at < before))
    return int(pruned.rowcount)  # type: ignore[attr-defined]
