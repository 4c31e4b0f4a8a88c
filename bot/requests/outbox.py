"""The outbox: CRM work that must happen exactly once, even across crashes and outages.

A decision writes an outbox row in its own transaction. ``OutboxWorker``
claims rows (FOR UPDATE SKIP LOCKED on PostgreSQL, a conditional UPDATE
everywhere) and runs their CRM actions with idempotency keys derived from the
row, so a row re-claimed after a crash repeats nothing the CRM already did.
A backend that is down leaves the row waiting with a growing back-off; a
refusal from the backend fails the request and tells the people involved.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.crm.base import Capability, CrmBackend, LockReason
from bot.errors import CrmError, CrmUnavailable
from bot.messages import Button
from bot.requests import audit
from bot.requests.notifications import MENU, notify
from bot.requests.unlock_requests import Kind, Status
from bot.storage.db import Database
from bot.storage.models import OutboxItem, UnlockRequest

log = logging.getLogger(__name__)


LEASE = timedelta(minutes=2)
MAX_BACKOFF = timedelta(minutes=10)


async def enqueue(
    session: AsyncSession, *, now: datetime, request_id: int | None, action: str, payload: dict[str, Any], key: str
) -> OutboxItem:
    item = OutboxItem(
        request_id=request_id, action=action, payload=payload, idempotency_key=key, status="pending", available_at=now
    )
    session.add(item)
    await session.flush()
    return item


async def queued_for(session: AsyncSession, request_id: int) -> list[int]:
    """The outbox rows of a request that are still waiting to run."""
    return list(
        await session.scalars(
            select(OutboxItem.id).where(OutboxItem.request_id == request_id, OutboxItem.status == "pending")
        )
    )


class OutboxWorker:
    """Carries out outbox rows; safe to run in several processes at once."""

    def __init__(self, database: Database, crm: CrmBackend, clock: Clock, *, admins: Collection[str] = ()) -> None:
        self._db = database
        self._crm = crm
        self._clock = clock
        self._admins = tuple(admins)

    async def run_once(self, limit: int = 20) -> int:
        """Claim and run what is due; how many rows were handled."""
        handled = 0
        for item_id in await self._claim(limit):
            await self._run(item_id)
            handled += 1
        return handled

    async def run_items(self, item_ids: Collection[int]) -> int:
        """Claim and run these rows now, if they are still due (another worker may have taken them)."""
        handled = 0
        for item_id in await self._claim(len(item_ids), only=item_ids):
            await self._run(item_id)
            handled += 1
        return handled

    async def _claim(self, limit: int, only: Collection[int] | None = None) -> list[int]:
        now = self._clock.now()
        due = or_(
            (OutboxItem.status == "pending") & (OutboxItem.available_at <= now),
            # Claimed by a worker that died before finishing: the lease has run out.
            (OutboxItem.status == "claimed") & (OutboxItem.claimed_at < now - LEASE),
        )
        if only is not None:
            due = due & OutboxItem.id.in_(list(only))
        async with self._db.session() as session, session.begin():
            query = select(OutboxItem.id).where(due).order_by(OutboxItem.id).limit(limit)
            if self._db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            candidates = list(await session.scalars(query))
            claimed = []
            for item_id in candidates:
                result = await session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.id == item_id, due)
                    .values(status="claimed", claimed_at=now, attempts=OutboxItem.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(item_id)
            return claimed

    async def _run(self, item_id: int) -> None:
        async with self._db.session() as session:
            item = await session.get(OutboxItem, item_id)
            assert item is not None
            assert item.claimed_at is not None
            action, payload, key = item.action, dict(item.payload), item.idempotency_key
            attempts, request_id = item.attempts, item.request_id
            claim = item.claimed_at  # the token of this worker's claim
        try:
            if action != "execute_request":
                raise CrmError(f"unknown outbox action {action!r}")
            await self._mark_request(request_id, Status.EXECUTING)
            await self._execute_request(payload, key)
        except CrmUnavailable as exc:
            await self._retry_later(item_id, claim, attempts, str(exc))
        except CrmError as exc:
            await self._finish(item_id, claim, request_id, ok=False, error=str(exc))
        except Exception as exc:  # a bug: fail the item rather than retry it forever
            log.exception("outbox item %s failed unexpectedly", item_id)
            await self._finish(item_id, claim, request_id, ok=False, error=f"{type(exc).__name__}: {exc}")
        else:
            await self._finish(item_id, claim, request_id, ok=True, error=None)

    async def _execute_request(self, payload: dict[str, Any], key: str) -> None:
        username = str(payload["username"])
        expected = payload.get("expect_reason")
        if expected and expected != LockReason.UNKNOWN.value:
            status = await self._crm.lock_status(username)
            if status.locked and status.reason is not None and status.reason.value != expected:
                # The admin approved lifting one lock; a newer, different one needs its own decision.
                raise CrmError(f"the account is now locked for another reason ({status.reason.value})")
        for number, step in enumerate(payload["steps"]):
            step_key = f"{key}:{number}:{step['action']}"
            if step["action"] == "add_trusted_ip":
                await self._crm.add_trusted_ip(username, str(step["ip"]), note=step_key)
            elif step["action"] == "unlock":
                await self._crm.unlock(username, idempotency_key=step_key)
            else:
                raise CrmError(f"unknown request step {step['action']!r}")

    async def _tell_self_service_outcome(self, session: AsyncSession, request: UnlockRequest, *, ok: bool) -> None:
        """The person who unlocked themselves hears how it went, with the next step (a password reset)."""
        if not ok:
            await notify(
                session,
                now=self._clock.now(),
                usernames=[request.crm_username],
                template="unlock/failed",
                context={"id": request.id},
                buttons=(MENU,),
            )
            return
        buttons = [MENU]
        if request.reason == LockReason.FAILED_PASSWORD.value and Capability.RESET_PASSWORD in self._crm.capabilities:
            buttons.insert(0, Button("reset_password", "reset_password"))
        await notify(
            session,
            now=self._clock.now(),
            usernames=[request.crm_username],
            template="unlock/done",
            context={"reason": request.reason},
            buttons=buttons,
        )

    async def _mark_request(self, request_id: int | None, status: Status) -> None:
        if request_id is None:
            return
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(UnlockRequest)
                .where(UnlockRequest.id == request_id, UnlockRequest.status == Status.APPROVED.value)
                .values(status=status.value, updated_at=self._clock.now())
            )

    async def _retry_later(self, item_id: int, claim: datetime, attempts: int, error: str) -> None:
        wait = min(timedelta(seconds=15) * 2 ** max(attempts - 1, 0), MAX_BACKOFF)
        log.warning("CRM unavailable for outbox item %s; retrying in %s: %s", item_id, wait, error)
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id, OutboxItem.status == "claimed", OutboxItem.claimed_at == claim)
                .values(status="pending", available_at=self._clock.now() + wait, last_error=error)
            )

    async def _finish(
        self, item_id: int, claim: datetime, request_id: int | None, *, ok: bool, error: str | None
    ) -> None:
        now = self._clock.now()
        async with self._db.session() as session, session.begin():
            finished = await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id, OutboxItem.status == "claimed", OutboxItem.claimed_at == claim)
                .values(status="done" if ok else "failed", done_at=now, last_error=error)
                .execution_options(synchronize_session=False)
            )
            if finished.rowcount != 1:  # type: ignore[attr-defined]
                return  # our lease ran out and another worker owns the item now: it reports the outcome
            if request_id is None:
                return
            request = await session.get(UnlockRequest, request_id)
            assert request is not None
            request.status = (Status.DONE if ok else Status.FAILED).value
            request.executed_at = now
            request.updated_at = now
            request.result = error
            await audit.record(
                session,
                at=now,
                actor="outbox",
                action="request.executed" if ok else "request.failed",
                subject=request.crm_username,
                details={"request": request.id, "error": error},
            )
            if request.kind == Kind.SELF_SERVICE:
                await self._tell_self_service_outcome(session, request, ok=ok)
            else:
                await notify(
                    session,
                    now=now,
                    usernames=[request.crm_username],
                    template="requests/carried_out",
                    context={"id": request.id, "ok": ok},
                    buttons=(MENU,),
                )
            if not ok:
                await notify(
                    session,
                    now=now,
                    usernames=[a for a in self._admins if a != request.crm_username],
                    template="admin/request_failed",
                    context={"id": request.id, "username": request.crm_username, "error": error or ""},
                )
