"""Why am I locked, for every demo user, in both languages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.app import App
from tests.chat import Chat

REASONS = yaml.safe_load((Path(__file__).parents[2] / "knowledge" / "reasons.yaml").read_text(encoding="utf-8"))
LOCKED = {
    "alice": "failed_password",
    "bob": "unusual_ip",
    "carol": "license_expired",
    "dave": "seat_limit",
    "erin": "system_fault",
    "frank": "policy_violation",
    "grace": "network",
    "heidi": "rate_limit",
    "ivan": "trial_limit",
    "judy": "maintenance",
}


@pytest.mark.parametrize("user", sorted(LOCKED))
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
async def test_the_first_button_explains_the_reason(app: App, user: str, locale: str) -> None:
    chat = Chat(app.engine, user, locale=locale)
    menu = await chat.start()
    assert menu.labels[0] == ("我为什么被锁定了？" if locale == "zh-CN" else "Why am I locked?")
    said = await chat.press("why")
    reason = REASONS[LOCKED[user]]
    assert reason["title"][locale] in said.text
    assert reason["explanation"][locale].strip() in said.text
    other = "en" if locale == "zh-CN" else "zh-CN"
    assert reason["title"][other] not in said.text


async def test_an_unlocked_user_is_told_so(app: App) -> None:
    chat = Chat(app.engine, "kim", locale="en")
    await chat.start()
    said = await chat.press("Why am I locked?")
    assert "not locked" in said.text
    assert "I still can't sign in" in said.labels


async def test_a_fault_reads_in_the_persons_language(app: App) -> None:
    chat = Chat(app.engine, "erin", locale="zh-CN")
    said = await chat.say("为什么我被锁定了")
    assert "故障：“Database storage fault in the orders module”（正在排查，2026年11月29日 16:20 开始）" in said.text
    assert "investigating" not in said.text


async def test_the_card_mentions_an_open_request(app: App) -> None:
    bob = Chat(app.engine, "bob", locale="zh-CN")
    await bob.say("解锁")
    await bob.say(await demo_code(app, "bob"))
    await bob.press("否")
    said = await bob.say("为什么我被锁定了")
    assert "你已经有一个解锁申请 #1：等待管理员处理；如果一直没人处理，它会在 2026年11月30日 17:00 过期" in said.text
    assert "接下来" not in said.text  # the steps to file it are behind him
    assert "帮我解锁" not in said.labels
    assert "请管理员帮我解锁" not in said.labels
    said = await bob.press("我的申请到哪一步了？")
    assert "你的解锁申请 #1（提交于 2026年11月29日 17:00）：等待管理员处理" in said.text


async def test_maintenance_shows_the_window(app: App) -> None:
    chat = Chat(app.engine, "judy", locale="en")
    await chat.start()
    said = await chat.press("why")
    assert "The maintenance window runs from 29 Nov 2026, 08:30 to 10:30 UTC" in said.text


async def test_the_evidence_needs_a_code_and_then_shows_the_attempts(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    said = await chat.press("why")
    assert "203.0.113.7" not in said.text  # nothing about logins before the code
    said = await chat.press("details")
    assert said.asks_secret
    said = await chat.say(await demo_code(app, "alice"))
    assert said.text.count("203.0.113.7") == 5
    assert "Show the details" not in said.labels


async def test_the_reason_is_typed_in_words(app: App) -> None:
    chat = Chat(app.engine, "carol")
    said = await chat.say("为什么我被锁定了")
    assert REASONS["license_expired"]["title"]["zh-CN"] in said.text


async def demo_code(app: App, user: str) -> str:
    from bot import demo

    return await demo.current_code(app, user)
