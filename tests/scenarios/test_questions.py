"""The worried questions, answered from live CRM facts: data, network, inbound channels, normal or not."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml

from bot import demo
from bot.app import App
from tests.chat import Chat

KNOWLEDGE = Path(__file__).parents[2] / "knowledge"
FAULT = "Database storage fault in the orders module"


async def test_grace_walks_the_network_checklist_and_unlocks(app: App) -> None:
    chat = Chat(app.engine, "grace", locale="en")
    await chat.start()
    said = await chat.press("Is it my network?")
    assert "your account was locked because your session kept dropping" in said.text
    assert "The CRM answers" in said.text
    assert "the CRM itself is up" not in said.text  # the database fault is open
    assert "9 other accounts were locked in the last 60 minutes" in said.text
    assert "can you open other websites" in said.text
    said = await chat.press("No, nothing loads")
    assert "restart your router or modem" in said.text
    said = await chat.press("It works now")
    assert "VPN" in said.text
    said = await chat.press("Yes")
    assert "Disconnect it and connect again" in said.text
    said = await chat.press("Done")
    assert "your session kept dropping" in said.text
    await chat.press("Unlock me")
    said = await chat.say(await demo.current_code(app, "grace"))
    assert "unlocked" in said.text


async def test_the_checklist_in_chinese_ends_at_a_dead_connection(app: App) -> None:
    chat = Chat(app.engine, "kim")
    await chat.say("是我的网络问题吗")
    said = await chat.press("不能，都打不开")
    said = await chat.press("还是不行")
    assert "网络还没恢复" in said.text


async def test_a_person_locked_for_another_reason_hears_it_first_and_may_still_check(app: App) -> None:
    chat = Chat(app.engine, "carol", locale="en")
    said = await chat.say("is it my network")
    assert said.text.startswith("No: your account is locked because the company's CRM licence has expired")
    assert "can you open other websites" not in said.text
    await chat.press("Check my connection anyway")
    await chat.press("Yes, they load fine")
    said = await chat.press("No")
    assert "locked for another reason" in said.text
    assert "Why am I locked?" in said.labels


async def test_erin_hears_when_the_last_backup_ran(app: App) -> None:
    chat = Chat(app.engine, "erin", locale="en")
    await chat.start()
    said = await chat.press("Is my data safe?")
    assert "Last backup: 29 Nov 2026, 02:00 UTC" in said.text
    assert "Database storage fault in the orders module" in said.text
    assert "Saving changes: not paused" in said.text


async def test_judy_is_told_the_lock_is_normal_maintenance(app: App) -> None:
    chat = Chat(app.engine, "judy", locale="en")
    said = await chat.say("Is this normal?")
    assert "Yes, this is normal: your lock is the scheduled maintenance" in said.text
    assert "it lifts when the window ends at 29 Nov 2026, 10:30 UTC" in said.text
    assert "9 other accounts were locked in the last 60 minutes" in said.text


async def test_kim_learns_which_inbound_channels_still_run(app: App) -> None:
    chat = Chat(app.engine, "kim")
    said = await chat.say("还能收到客户信息吗？")
    assert "邮件：正常接收" in said.text
    assert "电话同步：暂时停止" in said.text


async def test_the_maintenance_window_in_chinese(app: App) -> None:
    chat = Chat(app.engine, "judy")
    said = await chat.say("维护什么时候结束")
    assert "正在维护：2026年11月29日 16:30 至 18:30" in said.text


async def test_erin_is_told_when_the_fault_is_fixed(app: App) -> None:
    erin = Chat(app.engine, "erin", locale="en")
    await erin.start()
    said = await erin.press("Why am I locked?")
    assert "Tell me when I can sign in again" in said.labels
    said = await erin.press("Tell me when I can sign in again")
    assert "I'll keep an eye on it" in said.text
    await app.housekeeper.tick()
    said = await erin.say("hi")
    assert "no longer locks your account" not in said.text
    await app.crm.unlock("erin", idempotency_key="ops fixed the database")  # the CRM side recovers
    app.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    await app.housekeeper.tick()
    said = await erin.say("hi")
    assert "Good news: the CRM no longer locks your account" in said.text


async def test_many_locks_at_once_are_called_system_wide(app: App) -> None:
    from sqlalchemy import select

    from bot.crm.sql_schema import CrmUser

    async with app.crm.database.session() as session, session.begin():  # type: ignore[attr-defined]
        for row in await session.scalars(select(CrmUser).where(CrmUser.locked)):
            row.locked_at = app.clock.now()
    alice = Chat(app.engine, "alice", locale="en")
    await alice.start()
    said = await alice.press("Why am I locked?")
    assert "10 accounts were locked in the last 10 minutes" in said.text
    assert "system-wide" in said.text


async def test_alice_hears_a_wrong_password_lock_is_the_security_rule_not_maintenance(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    said = await chat.say("Is this normal?")
    assert said.text.startswith("Yes, this is normal: it's the CRM's ordinary security rule working as designed.")
    assert "A lock during maintenance is normal" not in said.text
    # The maintenance under way is mentioned as what else is going on, not as the reason.
    assert "Also going on in the CRM right now, apart from your lock:" in said.text


async def test_without_an_open_fault_the_probe_says_the_crm_is_up(app: App) -> None:
    from sqlalchemy import select

    from bot.crm.sql_schema import CrmIncident

    async with app.crm.database.session() as session, session.begin():  # type: ignore[attr-defined]
        for incident in await session.scalars(select(CrmIncident)):
            incident.resolved_at = app.clock.now()
    chat = Chat(app.engine, "grace", locale="zh-CN")
    said = await chat.say("是我的网络问题吗")
    assert "CRM 本身在正常运行" in said.text
    assert "未解决的故障" not in said.text


async def test_a_stranger_gets_the_general_answer(app: App) -> None:
    chat = Chat(app.engine, "stranger", locale="en")
    said = await chat.say("Is this normal?")
    general = yaml.safe_load((KNOWLEDGE / "topics" / "normal-or-abnormal.yaml").read_text(encoding="utf-8"))
    assert general["answer"]["en"].strip() in said.text  # nobody to be specific about: the general article
    assert f'Going on in the CRM right now:\n- An open fault: "{FAULT}"' in said.text
    assert "Your lock" not in said.text
