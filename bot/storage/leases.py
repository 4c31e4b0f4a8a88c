"""Leases: a named role one process holds until a time, taken over by another once that time has passed.

For "one of the replicas does this" (the Telegram poller, the audit chainer)
and for "this happens at most once in a while" (a daily notice). A lease is
one row in ``leases``; every change is a compare-and-set in one statement,
so two processes can never both believe they took it:

- ``acquire`` takes a lease that is free or has run out, or extends it for
  the process that holds it;
- ``renew`` only extends it, and only while it has not run out: a holder
  whose lease ran out has to ``acquire`` it again, since another process may
  have held it in between;
- ``release`` gives it up at once (on a clean stop), so a stand-by need not
  wait for it to run out;
- ``claim`` takes it only when it is free or has run out, whoever held it:
  "at most once per ``ttl``".

The functions take the caller's session, and a lease counts once that
transaction commits. ``LeaseKeeper`` runs each attempt in a transaction of
its own, which is what a leader loop wants. Times come from the caller's
clock, so replicas on different machines need clocks that agree to well
within the ``ttl``; pick a ``ttl`` several times the renewal interval.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.storage.db import Database
from bot.storage.models import Lease
from bot.storage.upsert import insert_if_absent


def process_holder(role: str = "") -> str:
    """A holder name unique to this process (and ``role`` in it): host, pid and a random part."""
    base = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    return f"{base}:{role}" if role else base


async def _take(session: AsyncSession, name: str, holder: str, *, now: datetime, ttl: timedelta, own: bool) -> bool:
    if await insert_if_absent(
        session, Lease, {"name": name, "holder": holder, "acquired_at": now, "expires_at": now + ttl}
    ):
        return True
    free = Lease.expires_at <= now
    takeable = (free | (Lease.holder == holder)) if own else free
    # One conditional UPDATE: of two processes that both saw the lease run out, one changes the row and the
    # other's condition no longer holds (PostgreSQL re-reads the row after waiting for the first).
    taken = await session.scalar(
        update(Lease)
        .where(Lease.name == name, takeable)
        .values(
            holder=holder,
            expires_at=now + ttl,
            # A holder that extends its own live lease keeps the time it first took it.
            acquired_at=case(((Lease.holder == holder) & (Lease.expires_at > now), Lease.acquired_at), else_=now),
        )
        .returning(Lease.name)
        .execution_options(synchronize_session=False)
    )
    return taken is not None


async def acquire(session: AsyncSession, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
    """Take ``name`` for ``holder`` until ``now + ttl`` if it is free, has run out, or is ``holder``'s already."""
    return await _take(session, name, holder, now=now, ttl=ttl, own=True)


async def claim(session: AsyncSession, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
    """Take ``name`` until ``now + ttl`` only if it is free or has run out, whoever held it before."""
    return await _take(session, name, holder, now=now, ttl=ttl, own=False)


async def renew(session: AsyncSession, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
    """Extend ``holder``'s lease to ``now + ttl``; ``False`` when it is not theirs or has already run out."""
    renewed = await session.scalar(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder, Lease.expires_at > now)
        .values(expires_at=now + ttl)
        .returning(Lease.name)
        .execution_options(synchronize_session=False)
    )
    return renewed is not None


async def release(session: AsyncSession, name: str, holder: str) -> bool:
    """Give up ``holder``'s lease at once; ``False`` when it was not theirs (any more)."""
    released = await session.scalar(
        delete(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .returning(Lease.name)
        .execution_options(synchronize_session=False)
    )
    return released is not None


async def holder_of(session: AsyncSession, name: str, *, now: datetime) -> str | None:
    """Who holds ``name`` now; ``None`` when nobody does or the lease ran out."""
    return await session.scalar(select(Lease.holder).where(Lease.name == name, Lease.expires_at > now))


async def prune(session: AsyncSession, *, now: datetime, older_than: timedelta) -> int:
    """Delete leases that ran out more than ``older_than`` ago; how many went."""
    pruned = await session.execute(delete(Lease).where(Lease.expires_at < now - older_than))
    return int(pruned.rowcount)  # type: ignore[attr-defined]


class LeaseKeeper:
    """One named lease held by this process, each attempt in a transaction of its own.

    A leader loop calls ``hold()`` every ``ttl / 3`` or so and does the
    leader's work only while it answers ``True``; ``let_go()`` on a clean stop.
    """

    def __init__(
        self, database: Database, clock: Clock, name: str, *, ttl: timedelta, holder: str | None = None
    ) -> None:
        self._db = database
        self._clock = clock
        self.name = name
        self.ttl = ttl
        self.holder = holder or process_holder(name)

    def __repr__(self) -> str:
        return f"LeaseKeeper({self.name!r}, holder={self.holder!r})"

    async def hold(self) -> bool:
        """Take or extend the lease; whether this process holds it now (until at least ``ttl`` from now)."""
        async with self._db.session() as session, session.begin():
            return await acquire(session, self.name, self.holder, now=self._clock.now(), ttl=self.ttl)

    async def let_go(self) -> None:
        async with self._db.session() as session, session.begin():
            await release(session, self.name, self.holder)
