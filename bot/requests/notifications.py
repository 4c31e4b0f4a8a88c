"""Things to tell a person later: a decision on their request, a reset of their enrolment.

A notification waits in the database until it is delivered: a channel that
can push (Telegram, Slack) sends it within seconds; otherwise the engine says
it before anything else at the person's next turn on any channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Button, Reply
from bot.requests import audit
from bot.storage import leases
from bot.storage.models import AuditEvent, Notification, UnlockRequest

# The button most notifications carry, so the person can go on from them.
MENU = Button("menu", "menu")


async def notify(
    session: AsyncSession,
    *,
    now: datetime,
    usernames: Iterable[str],
    template: str,
    context: dict[str, Any],
    buttons: Sequence[Button] = (),
    not_for: str | None = None,
) -> None:
    """Keep something to tell each of ``usernames``; ``buttons`` come with it, ``not_for`` never receives it."""
    offered = [[b.action, b.label] for b in buttons]
    for username in usernames:
        session.add(
            Notification(
                crm_username=username,
                template=template,
                context=context,
                buttons=offered,
                not_for=not_for,
                created_at=now,
            )
        )
    await session.flush()


# What a person has waiting, asked on every turn of a linked person: built once.
_PENDING = (
    select(Notification)
    .where(
        Notification.crm_username == bindparam("username"),
        Notification.delivered_at.is_(None),
        or_(Notification.not_for.is_(None), Notification.not_for != bindparam("account")),
    )
    .order_by(Notification.id)
)


async def take_pending(session: AsyncSession, *, now: datetime, username: str, account: str) -> list[tuple[int, Reply]]:
    """The undelivered notifications of ``username`` for chat ``account``, oldest first, with their ids.

    They are marked as delivered; a notification meant for the person's other accounts stays waiting.
    """
    pending = list(await session.scalars(_PENDING, {"username": username, "account": account}))
    if not pending:
        return []
    stale = await _decided_since(session, pending)
    # Claimed in one conditional UPDATE: of two readers at once, each notification goes to one.
    claimed = set(
        await session.scalars(
            update(Notification)
            .where(Notification.id.in_([n.id for n in pending]), Notification.delivered_at.is_(None))
            .values(delivered_at=now)
            .returning(Notification.id)
            .execution_options(synchronize_session=False)
        )
    )
    return [
        (n.id, Reply(n.template, n.context, tuple(Button(action, label) for action, label in n.buttons or ())))
        for n in pending
        if n.id in claimed and n.id not in stale
    ]


# Notices that ask an admin to act on a request: once it is decided, they would only send admins after it.
_ASKS_FOR_A_DECISION = frozenset({"admin/new_request", "admin/reminder"})


async def _decided_since(session: AsyncSession, notifications: Sequence[Notification]) -> set[int]:
    """The notifications that ask for a decision on a request that no longer waits for one."""
    asking = {n.id: n.context.get("id") for n in notifications if n.template in _ASKS_FOR_A_DECISION}
    request_ids = {i for i in asking.values() if isinstance(i, int)}
    if not request_ids:
        return set()
    waiting = set(
        await session.scalars(
            select(UnlockRequest.id).where(UnlockRequest.id.in_(request_ids), UnlockRequest.status == "pending")
        )
    )
    return {n for n, request_id in asking.items() if request_id not in waiting}


async def requeue(session: AsyncSession, ids: Iterable[int]) -> None:
    """Mark notifications undelivered again (sending them failed), so they go out on the next round."""
    await session.execute(update(Notification).where(Notification.id.in_(list(ids))).values(delivered_at=None))


async def notify_once_a_day(
    session: AsyncSession,
    *,
    now: datetime,
    usernames: Iterable[str],
    template: str,
    context: dict[str, Any],
    about: str,
    actor: str,
) -> bool:
    """Tell ``usernames`` about ``about`` (a person), at most once a day per template; audited.

    For notices that many turns may trigger (a licence that lapsed, a fault), so admins hear it once,
    not on every question the person asks. The day is claimed as a lease (``notice:<template>:<about>``) in
    the caller's transaction: of two replicas' turns at once, one claims it and the other's claim waits for
    that turn and then finds the day taken. A turn that fails gives its claim back with everything else.
    """
    key = f"notice.{template}"
    # Notices sent before the claims existed are in the audit trail; a cheap read spares most claims too.
    recent = await session.scalar(
        select(AuditEvent.id)
        .where(AuditEvent.action == key, AuditEvent.subject == about, AuditEvent.at > now - timedelta(days=1))
        .limit(1)
    )
    if recent is not None:
        return False
    if not await leases.claim(session, f"notice:{template}:{about}", actor, now=now, ttl=timedelta(days=1)):
        return False
    recipients = [u for u in usernames if u != about]
    await notify(session, now=now, usernames=recipients, template=template, context=context)
    details: dict[str, Any] = {"to": recipients}
    if "reason" in context:  # the lock it is about, for the admins' stats (bot.reports.stats)
        details["reason"] = context["reason"]
    await audit.record(session, at=now, actor=actor, action=key, subject=about, details=details)
    return True
