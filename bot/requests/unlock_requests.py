"""Unlock requests: filed when policy needs an admin, kept until decided or expired."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crm.base import LockReason
from bot.requests import audit
from bot.requests.notifications import notify
from bot.storage.models import UnlockRequest

DEFAULT_LIFETIME = timedelta(hours=24)


class Kind(StrEnum):
    UNLOCK = "unlock"  # an unlock that policy gives to an admin
    SELF_SERVICE = "self_service"  # an unlock the person earned with a code: born approved, run by the outbox
    HELP = "help"  # a question handed to a person


# Kinds that unlock the account: one of them at a time per person.
UNLOCKS = (Kind.UNLOCK, Kind.SELF_SERVICE)


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    EXECUTING = "executing"
    DONE = "done"
    FAILED = "failed"


OPEN = (Status.PENDING, Status.APPROVED, Status.EXECUTING)


_OPEN_REQUEST = (
    select(UnlockRequest)
    .where(
        UnlockRequest.crm_username == bindparam("username"),
        UnlockRequest.status.in_([s.value for s in OPEN]),
        UnlockRequest.kind.in_([k.value for k in UNLOCKS]),
    )
    .order_by(UnlockRequest.id.desc())
    .limit(1)
)


async def open_request(session: AsyncSession, username: str) -> UnlockRequest | None:
    """The person's unlock that is still in progress, if any (one at a time); questions do not count."""
    return await session.scalar(_OPEN_REQUEST, {"username": username})


async def file_request(
    session: AsyncSession,
    *,
    now: datetime,
    username: str,
    reason: LockReason,
    evidence: dict[str, Any],
    channel: str,
    requester: str,
    answers: dict[str, Any] | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
    admins: Collection[str] = (),
    kind: str = "unlock",
) -> UnlockRequest:
    """File a pending request and tell the admins (never the requester, if they are an admin)."""
    request = UnlockRequest(
        kind=kind,
        crm_username=username,
        reason=reason.value,
        evidence=evidence,
        answers=answers or {},
        status=Status.PENDING.value,
        channel=channel,
        requester_user_id=requester,
        created_at=now,
        updated_at=now,
        expires_at=now + lifetime,
    )
    session.add(request)
    await session.flush()
    await audit.record(
        session,
        at=now,
        actor=f"{channel}:{requester}",
        action="request.filed",
        subject=username,
        details={"request": request.id, "reason": reason.value, "kind": kind},
    )
    await notify(
        session,
        now=now,
        usernames=[a for a in admins if a != username],
        template="admin/new_request",
        context={"id": request.id, "username": username, "reason": reason.value, "kind": kind},
    )
    return request


async def latest_request(session: AsyncSession, username: str, *, since: datetime) -> UnlockRequest | None:
    """The person's most recent request of any kind (an unlock or a question) touched since ``since``."""
    return await session.scalar(
        select(UnlockRequest)
        .where(UnlockRequest.crm_username == username, UnlockRequest.updated_at >= since)
        .order_by(UnlockRequest.id.desc())
        .limit(1)
    )


async def questions_since(session: AsyncSession, *, username: str, since: datetime) -> int:
    """How many questions ``username`` has handed to the admins since ``since``."""
    count = await session.scalar(
        select(func.count())
        .select_from(UnlockRequest)
        .where(
            UnlockRequest.crm_username == username,
            UnlockRequest.kind == Kind.HELP.value,
            UnlockRequest.created_at >= since,
        )
    )
    return int(count or 0)


async def pending_requests(session: AsyncSession, *, now: datetime, limit: int = 10) -> list[UnlockRequest]:
    return list(
        await session.scalars(
            select(UnlockRequest)
            .where(UnlockRequest.status == Status.PENDING.value, UnlockRequest.expires_at > now)
            .order_by(UnlockRequest.id)
            .limit(limit)
        )
    )
