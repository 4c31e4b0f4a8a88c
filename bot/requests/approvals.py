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

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.identity.linking import account_key
from bot.messages import Button
from bot.requests import audit
from bot.requests.notifications import MENU, notify
from bot.requests.outbox import enqueue
from bot.requests.unlock_requests import UNLOCKS, Kind, Status
from bot.storage.models import ChatIdentity, OutboxItem, UnlockRequest

ASK_AGAIN = Button("ask", "ask")


@dataclass(frozen=True, slots=True)
class ChatAccount:
    """The chat account a decision came from."""

    channel: str
    team_id: str
    user_id: str

    @property
    def key(self) -> str:
        return account_key(self.channel, self.team_id, self.user_id)


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
    if request.kind not in UNLOCKS:
        return []
    steps = []
    ip = request.answers.get("trust_ip")
    if ip:
        steps.append({"action": "add_trusted_ip", "ip": str(ip)})
    steps.append({"action": "unlock"})
    return steps


async def is_own(session: AsyncSession, request: UnlockRequest, *, admin: str, via: ChatAccount) -> bool:
    """Whether deciding ``request`` as ``admin`` from ``via`` would be the requester deciding for themselves.

    By name, or through a chat account bound with a link code the requester issued: whatever CRM user
    such an account stands for, the requester's hand is on it.
    """
    if request.crm_username == admin:
        return True
    inviter = await session.scalar(
        select(ChatIdentity.invited_by).where(
            ChatIdentity.channel == via.channel,
            ChatIdentity.team_id == via.team_id,
            ChatIdentity.platform_user_id == via.user_id,
        )
    )
    return inviter is not None and inviter == request.crm_username


async def decide(
    session: AsyncSession,
    *,
    now: datetime,
    request_id: int,
    admin: str,
    approve: bool,
    note: str | None,
    admins: Collection[str],
    via: ChatAccount,
) -> Decision:
    """Decide a pending request as ``admin``, pressing from the chat account ``via``.

    The decision records the chat account as well as the CRM name. A chat account that the requester had
    linked (with a link code they issued) never decides their request, whoever it claims to be.
    """
    actor = via.key
    if admin not in admins:
        return Decision(Verdict.NOT_ADMIN)
    request = await session.get(UnlockRequest, request_id)
    if request is None:
        return Decision(Verdict.NOT_FOUND)
    if await is_own(session, request, admin=admin, via=via):
        await audit.record(
            session,
            at=now,
            actor=actor,
            action="request.own_decision_refused",
            subject=request.crm_username,
            details={"request": request_id, "admin": admin},
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
        .values(
            status=status.value,
            decided_at=now,
            decided_by=admin,
            decided_via=actor,
            decision_note=note,
            updated_at=now,
        )
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
        details={"request": request.id, "note": note, "admin": admin},
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


async def answer_question(
    session: AsyncSession,
    *,
    now: datetime,
    request_id: int,
    admin: str,
    answer: str,
    admins: Collection[str],
    via: ChatAccount,
) -> Decision:
    """An admin answers a question someone handed to a person: once, by one admin, never their own.

    The person hears the answer; the other admins hear that it has been answered, so nobody answers twice.
    """
    if admin not in admins:
        return Decision(Verdict.NOT_ADMIN)
    request = await session.get(UnlockRequest, request_id)
    if request is None or request.kind != Kind.HELP:
        return Decision(Verdict.NOT_FOUND)
    if await is_own(session, request, admin=admin, via=via):
        return Decision(Verdict.OWN_REQUEST, request)
    changed = await session.execute(
        update(UnlockRequest)
        .where(
            UnlockRequest.id == request_id,
            UnlockRequest.status == Status.PENDING.value,
            UnlockRequest.expires_at > now,
        )
        .values(
            status=Status.DONE.value,
            decided_at=now,
            decided_by=admin,
            decided_via=via.key,
            decision_note=answer,
            executed_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    await session.refresh(request)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return Decision(Verdict.EXPIRED if request.status == Status.PENDING.value else Verdict.ALREADY_DECIDED, request)
    await audit.record(
        session,
        at=now,
        actor=via.key,
        action="question.answered",
        subject=request.crm_username,
        details={"request": request.id, "admin": admin},
    )
    question = str(request.answers.get("question", ""))
    await notify(
        session,
        now=now,
        usernames=[request.crm_username],
        template="requests/answered",
        context={"id": request.id, "question": question, "answer": answer, "by": admin},
        buttons=(MENU, ASK_AGAIN),
    )
    await notify(
        session,
        now=now,
        usernames=[a for a in admins if a not in (admin, request.crm_username)],
        template="admin/question_answered",
        context={"id": request.id, "username": request.crm_username, "by": admin},
    )
    return Decision(Verdict.DECIDED, request)


async def approve_self_service(
    session: AsyncSession,
    *,
    now: datetime,
    username: str,
    reason: str,
    lock_key: str,
    channel: str,
    requester: str,
) -> tuple[UnlockRequest, OutboxItem]:
    """The person proved who they are and policy lets them unlock themselves: record it and queue the unlock.

    The intent, the audit event and the outbox row are written in the caller's transaction (with the code
    that was just used up), before the CRM is asked anything. The outbox then unlocks exactly once, however
    slow the CRM is, and tells the person how it went. ``lock_key`` names the lock being lifted, so one lock
    is never unlocked twice.
    """
    request = UnlockRequest(
        kind=Kind.SELF_SERVICE.value,
        crm_username=username,
        reason=reason,
        evidence={},
        answers={},
        status=Status.APPROVED.value,
        channel=channel,
        requester_user_id=requester,
        created_at=now,
        updated_at=now,
        expires_at=now,
        decided_at=now,
        decided_by=None,
        decided_via=f"{channel}:{requester}",
        decision_note="self-service",
    )
    session.add(request)
    await session.flush()
    key = f"self:{username}:{lock_key}"
    await audit.record(
        session,
        at=now,
        actor=f"{channel}:{requester}",
        action="unlock.self_service",
        subject=username,
        details={"request": request.id, "reason": reason, "idempotency_key": key},
    )
    item = await enqueue(
        session,
        now=now,
        request_id=request.id,
        action="execute_request",
        payload={"username": username, "steps": crm_steps(request), "expect_reason": reason},
        key=key,
    )
    return request, item


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
