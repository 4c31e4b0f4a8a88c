"""The audit trail: every state change is one append-only event.

Each event carries the hash of the one before it, so an edited or deleted row
breaks the chain where it happened. Secrets and codes never go into details.
"""

from __future__ import annotations

import hashlib
import json
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
