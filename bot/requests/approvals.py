"""Deciding requests: only configured admins, never on their own request, exactly once.

The decision is one conditional UPDATE (pending → approved/denied, only while
still pending and not expired, only by someone who is not the requester), so
two admins clicking at once give one decision; the other is told who decided.
An approval puts the CRM work into the outbox in the same transaction, so the
work can neither be lost nor be done without the decision.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.requests import audit
from bot.requests.notifications import notify
from bot.requests.outbox import enqueue
from bot.requests.unlock_requests import Status
from bot.storage.models import UnlockRequest


class Verdict(StrEnum):
    DECIDED = "decided"
    ALREADY_DECIDED = "already_decided"
    EXPIRED = "expired"
    OWN_REQUEST = "own_request"
    NOT_ADMIN = "not_admin"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    request: UnlockRequest | None = None

    @property
    def context(self) -> dict[str, Any]:
        """What a reply about this decision needs to say."""
        request = self.request
        if request is None:
            return {"verdict": self.verdict.value}
        return {
            "verdict": self.verdict.value,
            "id": request.id,
            "status": request.status,
            "username": request.crm_username,
            "decided_by": request.decided_by,
            "decided_at": request.decided_at,
            "note": request.decision_note,
        }


def crm_steps(request: UnlockRequest) -> list[dict[str, str]]:
    """The CRM actions an approved request stands for, in order."""
    if request.kind != "unlock":
        return []
    steps = []
    ip = request.answers.get("trust_ip")
    if ip:
        steps.append({"action": "add_trusted_ip", "ip": str(ip)})
    steps.append({"action": "unlock"})
    return steps


async def decide(
    session: AsyncSession,
    *,
    now: datetime,
    request_id: int,
    admin: str,
    approve: bool,
    note: str | None,
    admins: Collection[str],
    channel: str,
) -> Decision:
    actor = f"{channel}:{admin}"
    if admin not in admins:
        return Decision(Verdict.NOT_ADMIN)
    request = await session.get(UnlockRequest, request_id)
    if request is None:
        return Decision(Verdict.NOT_FOUND)
    if request.crm_username == admin:
        await audit.record(
            session,
            at=now,
            actor=actor,
            action="request.own_decision_refused",
            subject=admin,
            details={"request": request_id},
        )
        return Decision(Verdict.OWN_REQUEST, request)
    status = Status.APPROVED if approve else Status.DENIED
    changed = await session.execute(
        update(UnlockRequest)
        .where(
            UnlockRequest.id == request_id,
            UnlockRequest.status == Status.PENDING.value,
            UnlockRequest.expires_at > now,
            UnlockRequest.crm_username != admin,
        )
        .values(status=status.value, decided_at=now, decided_by=admin, decision_note=note, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(request)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        if request.status == Status.PENDING.value:
            return Decision(Verdict.EXPIRED, request)
        return Decision(Verdict.ALREADY_DECIDED, request)
    await audit.record(
        session,
        at=now,
        actor=actor,
        action=f"request.{status.value}",
        subject=request.crm_username,
        details={"request": request.id, "note": note},
    )
    if approve and request.kind == "unlock":
        await enqueue(
            session,
            now=now,
            request_id=request.id,
            action="execute_request",
            payload={"username": request.crm_username, "steps": crm_steps(request), "expect_reason": request.reason},
            key=f"request:{request.id}",
        )
    if approve and request.kind != "unlock":
        # A question for a human: approving means an admin takes it on; nothing to run on the CRM.
        await session.execute(
            update(UnlockRequest)
            .where(UnlockRequest.id == request.id)
            .values(status=Status.DONE.value, executed_at=now)
        )
    await notify(
        session,
        now=now,
        usernames=[request.crm_username],
        template="requests/decided",
        context={"id": request.id, "approved": approve, "by": admin, "note": note, "kind": request.kind},
    )
    await session.refresh(request)
    return Decision(Verdict.DECIDED, request)


async def cancel(session: AsyncSession, *, now: datetime, request_id: int, username: str, actor: str) -> bool:
    """The requester withdraws a request that nobody has decided yet."""
    changed = await session.execute(
        update(UnlockRequest)
        .where(
            UnlockRequest.id == request_id,
            UnlockRequest.crm_username == username,
            UnlockRequest.status == Status.PENDING.value,
        )
        .values(status=Status.CANCELLED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await audit.record(
        session, at=now, actor=actor, action="request.cancelled", subject=username, details={"request": request_id}
    )
    return True
