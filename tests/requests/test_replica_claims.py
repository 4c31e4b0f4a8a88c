"""Work that several replicas find at once is done once: admin cards, lock watches, once-a-day notices."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update

from bot.app import App
from bot.cards import CLAIM, CardBoard
from bot.clock import ManualClock
from bot.crm.base import LockReason
from bot.requests.notifications import notify_once_a_day
from bot.requests.unlock_requests import Status, file_request
from bot.requests.watches import CHECK_EVERY, check_watches, claim_due, watch
from bot.storage.models import LockWatch, Notification, RequestCard, UnlockRequest

GROUP = "-1001"


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


def boards(app: App) -> tuple[CardBoard, CardBoard]:
    """The card boards of two replicas."""
    return tuple(CardBoard(app.database, app.renderer, app.clock, locale="en") for _ in range(2))  # type: ignore[return-value]


async def notices(app: App, template: str) -> list[Notification]:
    async with app.database.session() as session:
        return list(await session.scalars(select(Notification).where(Notification.template == template)))


async def test_two_replicas_post_each_card_once_and_a_failed_post_is_tried_again(app: App) -> None:
    first, second = boards(app)
    ids = [await new_request(app, username) for username in ("bob", "carol", "dave")]
    mine, theirs = await asyncio.gather(first.to_post("telegram", GROUP), second.to_post("telegram", GROUP))
    handed = [card.request_id for card in mine + theirs]
    assert sorted(handed) == sorted(set(handed))  # no card to both
    assert set(ids) <= set(handed)
    # The first replica posts its cards; the second one's posts fail and it gives them back.
    for card in mine:
        await first.posted("telegram", GROUP, card.request_id, f"message-{card.request_id}")
    for card in theirs:
        await second.release("telegram", GROUP, card.request_id)
    again = await first.to_post("telegram", GROUP)
    assert sorted(card.request_id for card in again) == sorted(card.request_id for card in theirs)
    for card in again:
        await first.posted("telegram", GROUP, card.request_id, f"message-{card.request_id}")
    assert await second.to_post("telegram", GROUP) == []
    async with app.database.session() as session:
        refs = set(await session.scalars(select(RequestCard.message_ref).where(RequestCard.destination == GROUP)))
    assert refs == {f"message-{request_id}" for request_id in handed}


async def test_a_card_claimed_by_a_replica_that_died_is_posted_by_another(app: App, clock: ManualClock) -> None:
    first, second = boards(app)
    request_id = await new_request(app, "bob")
    assert request_id in [card.request_id for card in await first.to_post("slack", "C0ADMINS")]
    # The first replica dies before it posts: nobody else may post the card until its claim runs out.
    assert request_id not in [card.request_id for card in await second.to_post("slack", "C0ADMINS")]
    clock.advance(CLAIM)
    assert request_id in [card.request_id for card in await second.to_post("slack", "C0ADMINS")]
    await second.posted("slack", "C0ADMINS", request_id, "1700000000.000100")
    clock.advance(CLAIM)
    assert await first.to_post("slack", "C0ADMINS") == []


async def test_a_decided_card_is_redrawn_by_one_replica(app: App, clock: ManualClock) -> None:
    first, second = boards(app)
    request_id = await new_request(app, "bob")
    for card in await first.to_post("telegram", GROUP):
        await first.posted("telegram", GROUP, card.request_id, f"message-{card.request_id}")
    async with app.database.session() as session, session.begin():
        await session.execute(
            update(UnlockRequest).where(UnlockRequest.id == request_id).values(status=Status.DENIED.value)
        )
    mine, theirs = await asyncio.gather(first.to_redraw("telegram", GROUP), second.to_redraw("telegram", GROUP))
    assert [card.request_id for card in mine + theirs] == [request_id]
    (card,) = mine + theirs
    assert card.message_ref == f"message-{request_id}"
    # Editing failed: given back, the next round (of either replica) tries again at once.
    board = first if mine else second
    await board.release("telegram", GROUP, request_id)
    (again,) = await second.to_redraw("telegram", GROUP)
    await second.redrawn("telegram", GROUP, request_id, again.status)
    clock.advance(CLAIM)
    assert await first.to_redraw("telegram", GROUP) == []


async def test_a_card_posted_without_a_claim_is_still_recorded(app: App) -> None:
    board, _ = boards(app)
    request_id = await new_request(app, "bob")
    await board.posted("telegram", GROUP, request_id, "message-1")
    await board.posted("telegram", GROUP, request_id, "message-2")  # a second copy: logged, not raised
    async with app.database.session() as session:
        refs = list(await session.scalars(select(RequestCard.message_ref).where(RequestCard.request_id == request_id)))
    assert refs == ["message-1"]
    assert request_id not in [card.request_id for card in await board.to_post("telegram", GROUP)]


async def test_a_lifted_lock_is_announced_once_by_replicas_checking_at_once(app: App, clock: ManualClock) -> None:
    async with app.database.session() as session, session.begin():
        await watch(session, now=clock.now(), username="kim", reason=LockReason.SYSTEM_FAULT, actor="kim")
        # The same person asking twice at once (two replicas' turns) keeps one watch.
        await watch(session, now=clock.now(), username="kim", reason=LockReason.SYSTEM_FAULT, actor="kim")
    told = await asyncio.gather(*(check_watches(app.database, now=clock.now(), crm=app.crm) for _ in range(3)))
    assert sorted(username for batch in told for username in batch) == ["kim"]
    assert [n.crm_username for n in await notices(app, "watch/lifted")] == ["kim"]
    async with app.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(LockWatch)) == 0


async def test_a_watch_is_checked_by_one_replica_a_minute(app: App, clock: ManualClock) -> None:
    async with app.database.session() as session, session.begin():
        for username in ("alice", "bob", "carol"):
            await watch(session, now=clock.now(), username=username, reason=LockReason.SYSTEM_FAULT, actor=username)

    async def claim() -> list[str]:
        async with app.database.session() as session, session.begin():
            return await claim_due(session, now=clock.now())

    first, second = await asyncio.gather(claim(), claim())
    assert sorted(first + second) == ["alice", "bob", "carol"]
    assert await claim() == []
    clock.advance(CHECK_EVERY)
    assert sorted(await claim()) == ["alice", "bob", "carol"]


async def test_a_once_a_day_notice_from_two_turns_at_once_goes_out_once(app: App, clock: ManualClock) -> None:
    async def turn() -> bool:
        async with app.database.session() as session, session.begin():
            return await notify_once_a_day(
                session,
                now=clock.now(),
                usernames=["sam", "tina"],
                template="admin/licence_lapsed",
                context={"username": "carol"},
                about="carol",
                actor="carol",
            )

    assert sorted(await asyncio.gather(turn(), turn())) == [False, True]
    assert sorted(n.crm_username for n in await notices(app, "admin/licence_lapsed")) == ["sam", "tina"]
    clock.advance(timedelta(hours=23))
    assert not await turn()
    clock.advance(timedelta(hours=1))
    assert await turn()
    assert len(await notices(app, "admin/licence_lapsed")) == 4
