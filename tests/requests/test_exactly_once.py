"""One decision and one CRM action per request, whatever the timing and whatever crashes."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from sqlalchemy import func, select

from bot.app import App, open_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.crm.base import LockReason
from bot.crm.sql import SqlCrm
from bot.crm.sql_schema import CrmAdminAction, CrmUser
from bot.requests.approvals import ChatAccount, Verdict, decide
from bot.requests.outbox import LEASE, OutboxWorker
from bot.requests.unlock_requests import file_request
from bot.storage.models import OutboxItem, UnlockRequest

TRIALS = 50


async def new_request(app: App, username: str) -> int:
    async with app.database.session() as session, session.begin():
        request = await file_request(
            session,
            now=app.clock.now(),
            username=username,
            reason=LockReason.UNUSUAL_IP,
            evidence={},
            channel="console",
            requester=username,
        )
        return request.id


async def approve(app: App, request_id: int, admin: str) -> Verdict:
    async with app.database.session() as session, session.begin():
        decision = await decide(
            session,
            now=app.clock.now(),
            request_id=request_id,
            admin=admin,
            approve=True,
            note=None,
            admins=("sam", "tina"),
            via=ChatAccount("console", "", admin),
        )
        return decision.verdict


async def crm_unlocks(app: App) -> dict[str, int]:
    assert isinstance(app.crm, SqlCrm)
    async with app.crm.database.session() as session:
        rows = await session.execute(
            select(CrmAdminAction.idempotency_key, func.count())
            .where(CrmAdminAction.action == "unlock")
            .group_by(CrmAdminAction.idempotency_key)
        )
        return {key: int(count) for key, count in rows.all()}


async def relock(app: App, username: str) -> None:
    assert isinstance(app.crm, SqlCrm)
    async with app.crm.database.session() as session, session.begin():
        user = await session.scalar(select(CrmUser).where(CrmUser.username == username))
        assert user is not None
        user.locked, user.lock_reason, user.locked_at = True, LockReason.UNUSUAL_IP.value, app.clock.now()


async def test_two_admins_at_the_same_moment_give_one_decision_and_one_unlock(app: App) -> None:
    for _ in range(TRIALS):
        await relock(app, "bob")
        request_id = await new_request(app, "bob")
        verdicts = await asyncio.gather(approve(app, request_id, "sam"), approve(app, request_id, "tina"))
        assert sorted(verdicts) == sorted([Verdict.DECIDED, Verdict.ALREADY_DECIDED]), verdicts
        # Two workers race for the outbox too.
        await asyncio.gather(app.outbox.run_once(), app.outbox.run_once())
    unlocks = await crm_unlocks(app)
    assert len(unlocks) == TRIALS
    assert set(unlocks.values()) == {1}
    async with app.database.session() as session:
        statuses = set(await session.scalars(select(UnlockRequest.status)))
        items = await session.scalar(select(func.count()).select_from(OutboxItem))
    assert statuses == {"done"}
    assert items == TRIALS


async def test_a_crash_between_approval_and_action_is_carried_out_once_after_restart(
    settings: Settings, clock: ManualClock
) -> None:
    from bot import demo

    async with open_app(settings, clock=clock) as before:
        await demo.seed(before, reset=True)
        request_id = await new_request(before, "bob")
        assert await approve(before, request_id, "sam") is Verdict.DECIDED
        # The process dies here: the outbox row is written, nothing ran.
    assert (await _locked(settings, clock, "bob")) is True
    async with open_app(settings, clock=clock) as after:
        await after.housekeeper.tick()
        await after.housekeeper.tick()
        assert not (await after.crm.lock_status("bob")).locked
        assert list((await crm_unlocks(after)).values()) == [1]


class DyingCrm(SqlCrm):
    """The CRM does the unlock, then the bot's process dies before it can record that."""

    async def unlock(self, username: str, *, idempotency_key: str) -> None:
        await super().unlock(username, idempotency_key=idempotency_key)
        raise KeyboardInterrupt  # stands for the process being killed


async def test_a_crash_after_the_crm_acted_repeats_nothing(app: App, clock: ManualClock) -> None:
    request_id = await new_request(app, "bob")
    assert await approve(app, request_id, "sam") is Verdict.DECIDED
    assert isinstance(app.crm, SqlCrm)
    dying = OutboxWorker(app.database, DyingCrm(app.crm.database, clock), clock)
    with contextlib.suppress(KeyboardInterrupt):
        await dying.run_once()
    async with app.database.session() as session:
        item = await session.scalar(select(OutboxItem))
    assert item is not None
    assert item.status == "claimed"
    assert await app.outbox.run_once() == 0  # another worker leaves a live claim alone
    clock.advance(LEASE + timedelta(seconds=1))
    assert await app.outbox.run_once() == 1
    assert list((await crm_unlocks(app)).values()) == [1]
    async with app.database.session() as session:
        request = await session.get(UnlockRequest, request_id)
    assert request is not None
    assert request.status == "done"


async def _locked(settings: Settings, clock: ManualClock, username: str) -> bool:
    async with open_app(settings, clock=clock) as app:
        return (await app.crm.lock_status(username)).locked
