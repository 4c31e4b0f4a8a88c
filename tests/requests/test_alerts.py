"""Lock alerts and maintenance notices: who is told, once, and who said "stop alerts"."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from bot.app import App
from bot.clock import ManualClock
from bot.config import AlertSettings
from bot.crm.base import Capability, LockReason
from bot.crm.sql import SqlCrm
from bot.crm.sql_schema import CrmMaintenance
from bot.identity.linking import unlink
from bot.knowledge.commands import CommandMatcher
from bot.requests.alerts import Alerts
from bot.requests.policy import UnlockPolicy
from bot.storage.models import AuditEvent, Notification
from tests.chat import Chat

POLL = timedelta(seconds=60)


def alerts_of(app: App, clock: ManualClock, **settings: object) -> Alerts:
    """The alerts part of one process's housekeeper (another object: another replica)."""
    return Alerts(app.database, app.crm, clock, AlertSettings.model_validate(settings), UnlockPolicy({}))


async def started(app: App, clock: ManualClock, **settings: object) -> Alerts:
    """Alerts that have read the CRM once already, as in a bot that was running before the lock."""
    alerts = alerts_of(app, clock, **settings)
    assert await alerts.poll_if_due() == []  # the demo's locks are older than the first read looks back
    clock.advance(POLL)
    return alerts


async def lock(app: App, username: str, reason: LockReason = LockReason.FAILED_PASSWORD) -> None:
    assert isinstance(app.crm, SqlCrm)
    await app.crm.lock(username, reason)


async def stored(app: App, template: str) -> list[Notification]:
    async with app.database.session() as session:
        return list(
            await session.scalars(
                select(Notification).where(Notification.template == template).order_by(Notification.id)
            )
        )


async def test_a_new_lock_is_told_to_the_person_once_with_the_reason_and_what_to_do(
    app: App, clock: ManualClock
) -> None:
    alerts = await started(app, clock)
    await lock(app, "kim")
    assert await alerts.poll_if_due() == ["lock:kim"]
    clock.advance(POLL)
    assert await alerts.poll_if_due() == []  # the next read returns the event again: told already
    [told] = await stored(app, "alerts/locked")
    assert (told.crm_username, told.context["reason"]) == ("kim", "failed_password")
    async with app.database.session() as session:
        audited = await session.scalar(select(AuditEvent).where(AuditEvent.action == "alert.lock"))
    assert audited is not None
    assert audited.subject == "kim"

    said = await Chat(app.engine, "kim", locale="en").say("hello")  # the console says it at the next turn
    assert "the CRM has just locked your account" in said.text
    assert "Too many wrong passwords" in said.text
    assert "send me the current 6-digit code" in said.text  # what happens next, as the why answer says it
    assert said.labels[:3] == ["Unlock me", "Why am I locked?", "Ask a question"]


async def test_a_lock_lifted_before_the_poll_is_not_told(app: App, clock: ManualClock) -> None:
    alerts = await started(app, clock)
    await lock(app, "kim")
    await app.crm.unlock("kim", idempotency_key="test-unlock-kim")  # unlocked (by an admin, say) within the poll
    await lock(app, "grace", LockReason.UNUSUAL_IP)
    await lock(app, "grace")  # locked again, otherwise: only the lock that holds now is told
    assert await alerts.poll_if_due() == ["lock:grace"]
    [told] = await stored(app, "alerts/locked")
    assert (told.crm_username, told.context["reason"]) == ("grace", "failed_password")
    clock.advance(POLL)
    assert await alerts.poll_if_due() == []


async def test_the_buttons_follow_the_policy_for_the_reason(app: App, clock: ManualClock) -> None:
    alerts = await started(app, clock)
    await lock(app, "kim", LockReason.UNUSUAL_IP)
    await alerts.poll_if_due()
    said = await Chat(app.engine, "kim", locale="zh-CN").say("你好")
    assert "CRM 刚刚锁定了你的账号" in said.text
    assert "从陌生地点登录" in said.text
    assert said.labels[0] == "请管理员帮我解锁"  # approval, not self-service


async def test_nobody_unlinked_or_opted_out_is_told_and_nothing_when_alerts_are_off(
    app: App, clock: ManualClock
) -> None:
    alerts = await started(app, clock)
    async with app.database.session() as session, session.begin():
        await unlink(session, now=clock.now(), username="kim", by="test")
    await lock(app, "kim")
    alice = Chat(app.engine, "alice", locale="en")
    said = await alice.say("stop alerts")
    assert "I won't message you about locks" in said.text
    assert "Alerts were already off" in (await alice.say("stop alerts")).text
    await lock(app, "alice", LockReason.NETWORK)
    assert await alerts.poll_if_due() == []

    said = await alice.say("start alerts")
    assert "Alerts are back on" in said.text
    clock.advance(POLL)
    await lock(app, "alice", LockReason.RATE_LIMIT)
    assert await alerts.poll_if_due() == ["lock:alice"]  # only the lock after she turned them back on

    off = await started(app, clock, enabled=False)
    await lock(app, "bob")
    assert await off.poll_if_due() == []


async def test_stop_and_start_alerts_are_answered_in_the_person_s_language_and_kept(app: App) -> None:
    tina = Chat(app.engine, "tina", locale="zh-CN")
    said = await tina.say("不要再提醒")
    assert "不会再主动发消息给你" in said.text
    said = await tina.say("别再提醒我了")
    assert "你之前已经关闭了提醒" in said.text
    said = await tina.say("恢复提醒")
    assert "提醒已恢复" in said.text
    async with app.database.session() as session:
        actions = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.subject == "tina")))
    assert actions.count("alerts.stopped") == 1
    assert actions.count("alerts.started") == 1


def test_a_question_about_reminders_is_not_taken_for_the_command(app: App) -> None:
    from bot.app import knowledge_dir
    from bot.flows import ACTIONS

    commands = CommandMatcher.load(knowledge_dir(app.settings) / "commands.yaml", ACTIONS.keys())
    assert commands.match("stop alerts") == "alerts_off"
    assert commands.match("please stop alerts") == "alerts_off"
    assert commands.match("不要再提醒我") == "alerts_off"
    assert commands.match("恢复提醒") == "alerts_on"
    assert commands.match("stop") == "cancel"
    for question in (
        "will you remind me when the fault is fixed?",
        "will you alert me when my account is unlocked?",
        "会提醒我什么时候维护结束吗",
        "how do I stop alerts from the CRM itself?",
    ):
        assert commands.match(question) not in ("alerts_off", "alerts_on"), question


async def test_two_replicas_polling_at_once_tell_a_lock_once(app: App, clock: ManualClock) -> None:
    first = await started(app, clock)
    second = alerts_of(app, clock)
    await lock(app, "kim")
    told = await asyncio.gather(first.poll_if_due(), second.poll_if_due())
    assert sorted(told) == [[], ["lock:kim"]]
    clock.advance(POLL)
    # Each claims the next period in turn; the event is read again and never told again.
    told = await asyncio.gather(first.poll_if_due(), second.poll_if_due())
    assert told == [[], []]
    assert len(await stored(app, "alerts/locked")) == 1


# --- maintenance --------------------------------------------------------------------------------------------------


async def add_window(app: App, starts_in: timedelta, lasts: timedelta) -> None:
    assert isinstance(app.crm, SqlCrm)
    async with app.crm.database.session() as session, session.begin():
        await session.execute(delete(CrmMaintenance))  # the demo's window is under way: not announced late
        now = app.clock.now()
        session.add(CrmMaintenance(starts_at=now + starts_in, ends_at=now + starts_in + lasts, note="upgrade"))


async def people_linked(app: App) -> int:
    from bot.storage.models import ChatIdentity

    async with app.database.session() as session:
        return int(await session.scalar(select(func.count(func.distinct(ChatIdentity.crm_username)))) or 0)


async def test_maintenance_is_announced_ahead_and_when_over_each_once(app: App, clock: ManualClock) -> None:
    assert Capability.SYSTEM_STATUS in app.crm.capabilities
    alerts = await started(app, clock, maintenance_notice_hours=24)
    await add_window(app, timedelta(hours=30), timedelta(hours=2))
    assert await alerts.poll_if_due() == []  # more than a day ahead
    clock.advance(timedelta(hours=7))  # 23 hours ahead now
    await Chat(app.engine, "judy", locale="en").say("stop alerts")
    [ahead] = await alerts.poll_if_due()
    assert ahead.startswith("ahead:")
    told = await stored(app, "alerts/maintenance_ahead")
    assert len(told) == await people_linked(app) - 1  # everyone linked but judy
    assert "judy" not in {n.crm_username for n in told}
    second = alerts_of(app, clock)
    clock.advance(POLL)
    assert await alerts.poll_if_due() == []
    assert await second.poll_if_due() == []

    clock.advance(timedelta(hours=25))  # past the end
    [over] = await alerts.poll_if_due()
    assert over.startswith("over:")
    clock.advance(POLL)
    assert await second.poll_if_due() == []
    assert len(await stored(app, "alerts/maintenance_over")) == len(told)

    said = await Chat(app.engine, "kim", locale="en").say("hello")
    assert "Planned CRM maintenance:" in said.text
    assert "The planned CRM maintenance is over." in said.text


async def test_a_window_moved_before_it_began_is_told_anew_and_never_said_to_be_over(
    app: App, clock: ManualClock
) -> None:
    alerts = await started(app, clock, maintenance_notice_hours=24)
    await add_window(app, timedelta(hours=10), timedelta(hours=2))
    [ahead] = await alerts.poll_if_due()
    assert ahead.startswith("ahead:")
    clock.advance(timedelta(hours=1))
    await add_window(app, timedelta(hours=20), timedelta(hours=2))  # the CRM moved it on by 11 hours
    [again] = await alerts.poll_if_due()
    assert again.startswith("ahead:")
    assert again != ahead
    clock.advance(timedelta(hours=12))  # past where the first window would have ended
    assert await alerts.poll_if_due() == []  # nothing ran then: no "over"
    clock.advance(timedelta(hours=12))  # past the moved window's end
    [over] = await alerts.poll_if_due()
    assert over == again.replace("ahead:", "over:")


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
async def test_every_alert_template_renders_in_both_languages(app: App, locale: str) -> None:
    from bot.messages import Reply

    now = app.clock.now().isoformat()
    for template, context in (
        ("alerts/locked", {"reason": "maintenance", "locked_at": now}),
        ("alerts/maintenance_ahead", {"starts_at": now, "ends_at": now}),
        ("alerts/maintenance_over", {}),
        ("alerts/stopped", {"changed": True}),
        ("alerts/started", {"changed": False}),
    ):
        assert app.renderer.render(Reply(template, context), locale).text.strip()
