"""The audit trail: every state change is one append-only event.

Each event carries the hash of the one before it, so an edited or deleted row
breaks the chain where it happened. Secrets and codes never go into details.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import AuditEvent

GENESIS = "0" * 64
# Any constant works: it only has to be the same for every writer of the chain.
_CHAIN_LOCK = 7_351_901


def event_hash(prev_hash: str, at: datetime, actor: str, action: str, subject: str, details: dict[str, Any]) -> str:
    body = json.dumps(
        {
            "prev": prev_hash,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


async def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # Writers take turns so that two of them never chain onto the same predecessor.
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
    details = details or {}
    prev = await session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    event = AuditEvent(
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=details,
        prev_hash=prev,
        hash=event_hash(prev, at, actor, action, subject, details),
    )
    session.add(event)
    await session.flush()
    return event


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """Where the chain breaks: the row (by id) and what is wrong with it."""

    event_id: int
    problem: str


async def verify_chain(session: AsyncSession) -> list[ChainProblem]:
    """Recompute every hash in order; an edited, inserted or deleted row breaks the chain where it is."""
    problems: list[ChainProblem] = []
    expected_prev = GENESIS
    rows = await session.stream_scalars(select(AuditEvent).order_by(AuditEvent.id))
    async for event in rows:
        if event.prev_hash != expected_prev:
            problems.append(ChainProblem(event.id, "does not follow the row before it (a row was deleted or inserted)"))
        recomputed = event_hash(event.prev_hash, event.at, event.actor, event.action, event.subject, event.details)
        if recomputed != event.hash:
            problems.append(ChainProblem(event.id, "its content does not match its hash (the row was edited)"))
        expected_prev = event.hash
    return problems


async def export_since(session: AsyncSession, since: datetime) -> AsyncIterator[dict[str, Any]]:
    """Audit events at or after ``since``, oldest first, as plain dicts for JSON lines."""
    rows = await session.stream_scalars(select(AuditEvent).where(AuditEvent.at >= since).order_by(AuditEvent.id))
    async for event in rows:
        yield {
            "id": event.id,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "action": event.action,
            "subject": event.subject,
            "details": event.details,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
        }
