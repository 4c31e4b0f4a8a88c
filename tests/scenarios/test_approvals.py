"""Requests and admin approvals in chat: exactly once, never self-approved, audited, on time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import demo
from bot.app import App
from bot.clock import ManualClock
from bot.crm.base import LockReason
from bot.crm.sql_schema import CrmAdminAction
from bot.requests.unlock_requests import file_request
from bot.storage.models import AuditEvent, UnlockRequest
from tests.chat import Chat


async def code(app: App, user: str) -> str:
    return await demo.current_code(app, user)


async def bob_files_a_request(app: App, *, trust: bool = True) -> int:
    bob = Chat(app.engine, "bob", locale="en")
    await bob.say("unlock me")
    await bob.say(await code(app, "bob"))
    await bob.press("Yes")
    await bob.say("Chengdu")
    said = await bob.press("Yes, trust this address" if trust else "No, don't trust it")
    async with app.database.session() as session:
        request = await session.scalar(select(UnlockRequest).where(UnlockRequest.crm_username == "bob"))
    assert request is not None
    assert f"#{request.id}" in said.text
    return request.id


async def unlock_actions(app: App, user: str) -> int:
    async with app.crm.database.session() as session:  # type: ignore[attr-defined]
        count = await session.scalar(
            select(func.count())
            .select_from(CrmAdminAction)
            .where(CrmAdminAction.username == user, CrmAdminAction.action == "unlock")
        )
    return int(count or 0)


async def test_sam_approves_bob_in_another_console_and_bob_is_unlocked_with_the_ip_trusted(app: App) -> None:
    request_id = await bob_files_a_request(app)
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.start()
    assert f"New unlock request #{request_id} from bob" in said.text
    assert "Pending requests" in said.labels
    said = await sam.press("Pending requests")
    assert f"Unlock request #{request_id} from bob" in said.text
    assert "Flagged sign-in from 198.51.100.23 (Chengdu, China)" in said.text
    assert 'working from "Chengdu"' in said.text
    assert "Approving also adds 198.51.100.23" in said.text
    said = await sam.press(f"approve:{request_id}")
    assert said.asks_secret  # approving an unlock takes the approver's own code
    said = await sam.say(await code(app, "sam"))
    assert f"Approved: request #{request_id} for bob" in said.text
    assert "Approved by sam at" in said.text
    assert "Approve" not in said.labels  # the decided card has no buttons
    await app.housekeeper.tick()
    assert not (await app.crm.lock_status("bob")).locked
    assert "198.51.100.23" in await app.crm.trusted_ips("bob")  # type: ignore[attr-defined]
    bob = Chat(app.engine, "bob", locale="en")
    said = await bob.start()
    assert f"sam approved your request #{request_id}" in said.text
    assert f"Request #{request_id} is done" in said.text
    async with app.database.session() as session:
        request = await session.get(UnlockRequest, request_id)
    assert request is not None
    assert request.status == "done"


async def test_a_deny_asks_for_a_reason_and_bob_hears_it(app: App) -> None:
    request_id = await bob_files_a_request(app, trust=False)
    tina = Chat(app.engine, "tina", locale="zh-CN")
    await tina.start()
    await tina.say("pending")
    said = await tina.press(f"deny:{request_id}")
    assert "拒绝申请" in said.text
    said = await tina.say("请先联系 IT 确认这次登录")
    assert f"已拒绝：bob 的申请 #{request_id}" in said.text
    await app.housekeeper.tick()
    assert (await app.crm.lock_status("bob")).locked
    bob = Chat(app.engine, "bob", locale="en")
    said = await bob.start()
    assert "tina declined your request" in said.text
    assert "请先联系 IT 确认这次登录" in said.text


async def test_frank_needs_the_approvers_own_code(app: App) -> None:
    frank = Chat(app.engine, "frank", locale="en")
    await frank.say("unlock me")
    said = await frank.say(await code(app, "frank"))
    assert "bulk delete of customer records" in said.text
    async with app.database.session() as session:
        request_id = await session.scalar(select(UnlockRequest.id).where(UnlockRequest.crm_username == "frank"))
    sam = Chat(app.engine, "sam", locale="en")
    await sam.say(f"approve {request_id}")
    assert sam.last is not None
    assert sam.last.asks_secret
    said = await sam.say("000000")
    assert "That code isn't right" in said.text
    said = await sam.say(await code(app, "sam"))
    assert f"Approved: request #{request_id} for frank" in said.text
    await app.housekeeper.tick()
    assert not (await app.crm.lock_status("frank")).locked


async def test_approving_a_seat_request_with_every_seat_taken_asks_first(app: App, clock: ManualClock) -> None:
    licence = await app.crm.licence("dave")
    assert licence is not None
    assert licence.seats_used is not None
    assert licence.seats_total is not None
    assert licence.seats_used >= licence.seats_total  # the demo company uses more seats than it pays for
    async with app.database.session() as session, session.begin():
        request = await file_request(
            session,
            now=clock.now(),
            username="dave",
            reason=LockReason.SEAT_LIMIT,
            evidence={},
            channel="console",
            requester="dave",
            admins=("sam", "tina"),
        )
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say(f"approve {request.id}")
    assert f"{licence.seats_used} of {licence.seats_total} in use" in said.text
    assert said.labels == ["Approve anyway", "Menu"]
    assert not said.asks_secret
    said = await sam.press("Approve anyway")
    assert said.asks_secret
    said = await sam.say(await code(app, "sam"))
    assert f"Approved: request #{request.id} for dave" in said.text


async def test_a_seat_request_card_shows_the_seats_and_who_has_gone_longest_without_signing_in(app: App) -> None:
    dave = Chat(app.engine, "dave", locale="en")
    await dave.say("unlock me")
    said = await dave.say(await code(app, "dave"))
    async with app.database.session() as session:
        request_id = await session.scalar(select(UnlockRequest.id).where(UnlockRequest.crm_username == "dave"))
    assert f"#{request_id}" in said.text

    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say("pending")
    assert 'Licence "Sales Standard": 11 of 10 seats used.' in said.text
    # The demo's kim never signed in, judy 38 days and erin 26 days ago; dave himself is not suggested.
    assert "Longest without signing in (taking back one of their seats makes room): " in said.text
    assert "makes room): kim (Kim Sun), never signed in; " in said.text
    assert "judy (Judy Xu), last signed in " in said.text
    assert "; erin (Erin Zhao), last signed in " in said.text
    assert "dave (Dave Chen)" not in said.text
    said = await sam.say(f"approve {request_id}")
    assert "11 of 10 in use" in said.text
    assert "longest without signing in: kim, judy, erin" in said.text

    tina = Chat(app.engine, "tina", locale="zh-CN")
    said = await tina.say("待处理")
    assert "授权“Sales Standard”：已用席位 11 / 10。" in said.text
    assert "最久没有登录的账号（收回其中一个的席位就能腾出位置）：" in said.text
    assert "：kim（Kim Sun），从未登录；judy（Judy Xu），上次登录于 " in said.text
    said = await tina.say(f"批准 {request_id}")
    assert "最久没有登录的是 kim、judy、erin" in said.text


async def test_nobody_decides_their_own_request(app: App, clock: ManualClock) -> None:
    async with app.database.session() as session, session.begin():
        own = await file_request(
            session,
            now=clock.now(),
            username="sam",
            reason=LockReason.UNKNOWN,
            evidence={},
            channel="console",
            requester="sam",
            admins=("sam", "tina"),
        )
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say("pending")
    assert f"#{own.id}" not in said.actions  # no card of his own
    said = await sam.say(f"approve {own.id}")
    assert "You can't decide your own request" in said.text
    async with app.database.session() as session:
        request = await session.get(UnlockRequest, own.id)
    assert request is not None
    assert request.status == "pending"


async def test_non_admins_cannot_decide_by_button_or_by_typing(app: App) -> None:
    request_id = await bob_files_a_request(app)
    kim = Chat(app.engine, "kim", locale="en")
    await kim.start()
    said = await kim.press_action(f"approve:{request_id}")
    assert "isn't one of the options" in said.text
    said = await kim.say(f"approve {request_id}")
    assert f"Approved: request #{request_id}" not in said.text  # read as a question, not as a command
    said = await kim.say("pending")
    assert "Unlock request" not in said.text
    async with app.database.session() as session:
        request = await session.get(UnlockRequest, request_id)
    assert request is not None
    assert request.status == "pending"


async def test_the_second_admin_is_told_who_decided(app: App) -> None:
    request_id = await bob_files_a_request(app)
    sam = Chat(app.engine, "sam", locale="en")
    tina = Chat(app.engine, "tina", locale="en")
    await sam.say("pending")
    await tina.say("pending")
    await sam.press(f"approve:{request_id}")
    await sam.say(await code(app, "sam"))
    said = await tina.press(f"approve:{request_id}")
    assert f"Request #{request_id} was already approved by sam" in said.text
    await app.housekeeper.tick()
    await app.housekeeper.tick()
    assert await unlock_actions(app, "bob") == 1


async def test_bob_can_withdraw_a_pending_request(app: App) -> None:
    request_id = await bob_files_a_request(app)
    bob = Chat(app.engine, "bob", locale="en")
    said = await bob.say("unlock me")
    assert f"#{request_id}" in said.text
    said = await bob.press("Withdraw my request")
    assert f"Request #{request_id} is withdrawn" in said.text
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say(f"approve {request_id}")
    assert "was already cancelled by bob" in said.text


async def test_requests_remind_escalate_and_expire(app: App, clock: ManualClock, settings) -> None:  # type: ignore[no-untyped-def]
    request_id = await bob_files_a_request(app)
    sam = Chat(app.engine, "sam", locale="en")
    await sam.start()  # reads the "new request" notice
    clock.advance(timedelta(minutes=29))
    await app.housekeeper.tick()
    said = await sam.say("hi")
    assert "Reminder" not in said.text
    clock.advance(timedelta(minutes=2))
    await app.housekeeper.tick()
    said = await sam.say("hi")
    assert f"Reminder: request #{request_id} from bob has been waiting 31 minutes" in said.text
    clock.advance(timedelta(minutes=30))
    await app.housekeeper.tick()
    said = await sam.say("hi")
    assert "Reminder" not in said.text  # hourly after the first
    clock.advance(timedelta(minutes=31))
    await app.housekeeper.tick()
    said = await sam.say("hi")
    assert "Reminder" in said.text
    clock.advance(timedelta(hours=23))
    await app.housekeeper.tick()
    bob = Chat(app.engine, "bob", locale="en")
    said = await bob.say("hi")
    assert f"Your request #{request_id} expired" in said.text
    said = await sam.say(f"approve {request_id}")
    assert "already expired" in said.text or "has expired" in said.text
    assert (await app.crm.lock_status("bob")).locked


async def test_admin_commands_in_chat(app: App) -> None:
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say("invite kim")
    assert "one-time link code for kim" in said.text
    link_code = said.replies[-1].text
    newcomer = Chat(app.engine, "kim-phone", channel="telegram", locale="en")
    said = await newcomer.say(link_code)
    assert "linked to the CRM account kim" in said.text
    said = await sam.say("audit kim")
    assert "identity.linked" in said.text
    said = await sam.say("unlink kim")
    assert "Unlinked 2 chat accounts from kim" in said.text
    said = await sam.say("reset-totp kim")
    assert "kim's authenticator is reset" in said.text
    said = await sam.say("stats")
    assert "Locks in the last 30 days:" in said.text
    said = await sam.say("audit ../../etc")
    assert "doesn't look like a CRM username" in said.text


async def test_an_admin_unlocks_someone_with_their_own_code(app: App) -> None:
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say("unlock heidi")
    assert said.asks_secret
    said = await sam.say(await code(app, "sam"))
    assert "Unlocking heidi" in said.text
    await app.housekeeper.tick()
    assert not (await app.crm.lock_status("heidi")).locked
    said = await sam.say("unlock sam")
    assert "You can't decide your own request" in said.text


async def test_unlocking_one_account_of_a_lock_nobody_lifts_one_by_one_needs_a_recorded_confirmation(
    app: App,
) -> None:
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say("unlock carol")  # the company's licence expired: unlocking carol alone lifts nothing
    assert "the company's CRM licence has expired" in said.text
    assert not said.asks_secret
    assert said.labels == ["Unlock anyway", "Menu"]
    said = await sam.press("Menu")
    assert (await app.crm.lock_status("carol")).locked  # refused unless confirmed

    said = await sam.say("unlock carol")
    said = await sam.press("Unlock anyway")
    assert said.asks_secret
    said = await sam.say(await code(app, "sam"))
    assert "Unlocking carol" in said.text
    await app.housekeeper.tick()
    assert not (await app.crm.lock_status("carol")).locked
    async with app.database.session() as session:
        forced = await session.scalar(select(AuditEvent).where(AuditEvent.action == "admin.unlock_forced"))
    assert forced is not None
    assert forced.subject == "carol"
    assert forced.details["reason"] == "license_expired"

    tina = Chat(app.engine, "tina", locale="zh-CN")
    said = await tina.say("解锁 judy")  # maintenance
    assert "维护" in said.text
    assert said.labels[0] == "仍然解锁"


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ("carol", "the company's CRM licence has expired"),
        ("ivan", "the trial edition's usage limit has been reached"),
        ("erin", "of a fault in the CRM itself"),
        ("judy", "of scheduled maintenance"),
    ],
)
async def test_unlock_user_on_a_lock_nobody_lifts_one_by_one_refuses_with_the_reason(
    app: App, user: str, why: str
) -> None:
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say(f"unlock {user}")
    assert f"{user}'s account is locked because {why}" in said.text
    assert not said.asks_secret
    assert said.labels == ["Unlock anyway", "Menu"]
    await sam.say(await code(app, "sam"))  # a code typed without pressing "Unlock anyway" unlocks nothing
    await app.housekeeper.tick()
    assert (await app.crm.lock_status(user)).locked
    assert await unlock_actions(app, user) == 0
    async with app.database.session() as session:
        unlocks = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("admin.unlock%"))
        )
    assert unlocks == 0


async def test_the_daily_cap_sends_the_fourth_unlock_to_an_admin(app: App, clock: ManualClock) -> None:
    alice = Chat(app.engine, "alice", locale="en")
    for _ in range(3):
        await alice.say("unlock me")
        said = await alice.say(await code(app, "alice"))
        assert "unlocked" in said.text
        await relock(app, "alice", clock)
        clock.advance(timedelta(minutes=6))  # past the grace period: each unlock takes a code of its own
    await alice.say("unlock me")
    said = await alice.say(await code(app, "alice"))
    assert "You've used today's self-service unlocks" in said.text
    assert (await app.crm.lock_status("alice")).locked


async def test_a_password_reset_starts_a_cooldown(app: App, clock: ManualClock) -> None:
    alice = Chat(app.engine, "alice", locale="en")
    await alice.say("unlock me")
    await alice.say(await code(app, "alice"))
    await alice.press("Reset my password")
    await relock(app, "alice", clock)
    said = await alice.say("unlock me")
    assert "self-service unlocks wait 15 more minutes" in said.text
    clock.advance(timedelta(minutes=16))
    said = await alice.say("unlock me")
    assert said.asks_secret


async def relock(app: App, user: str, clock: ManualClock) -> None:
    """The CRM locks the account again (as it would after more wrong passwords)."""
    from bot.crm.sql_schema import CrmUser

    async with app.crm.database.session() as session, session.begin():  # type: ignore[attr-defined]
        row = await session.scalar(select(CrmUser).where(CrmUser.username == user))
        assert row is not None
        row.locked, row.lock_reason, row.locked_at = True, LockReason.FAILED_PASSWORD.value, clock.now()


async def test_admins_hear_once_a_day_about_a_licence_lock(app: App, clock: ManualClock) -> None:
    carol = Chat(app.engine, "carol", locale="en")
    said = await carol.say("unlock me")
    assert "I can't unlock this one myself" in said.text
    assert "I've told the admins" in said.text
    await carol.say("unlock me")
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.start()
    assert said.text.count("For admins: carol is locked out") == 1
    assert "The CRM licence needs renewing" in said.text
    clock.advance(timedelta(days=1, minutes=1))
    await carol.say("unlock me")
    said = await sam.say("hi")
    assert said.text.count("For admins: carol is locked out") == 1


async def test_the_menu_shows_a_request_still_waiting(app: App) -> None:
    request_id = await bob_files_a_request(app)
    bob = Chat(app.engine, "bob", locale="zh-CN")
    said = await bob.start()
    assert f"你的申请 #{request_id}正在等待管理员处理" in said.text
