"""Unlock me: TOTP, then the policy's path for each reason."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import demo
from bot.app import App
from bot.clock import ManualClock
from bot.storage.models import AuditEvent, UnlockRequest
from tests.chat import Chat


async def code(app: App, user: str) -> str:
    return await demo.current_code(app, user)


async def locked(app: App, user: str) -> bool:
    return (await app.crm.lock_status(user)).locked


async def test_alice_unlocks_herself_with_a_code(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    said = await chat.say("unlock me")
    assert said.asks_secret
    assert "6-digit code" in said.text
    said = await chat.say(await code(app, "alice"))
    assert "Done: your CRM account is unlocked." in said.text
    assert "Reset my password" in said.labels
    assert not await locked(app, "alice")
    async with app.database.session() as session:
        actions = list(await session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-3:] == ["totp.verified", "unlock.self_service", "request.executed"]


async def test_a_wrong_code_is_refused_and_changes_nothing(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    await chat.press("Unlock me")
    right = await code(app, "alice")
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    said = await chat.say(wrong)
    assert "That code isn't right" in said.text
    assert "4 tries left" in said.text
    assert said.asks_secret
    assert await locked(app, "alice")


async def test_the_same_code_is_not_accepted_twice(app: App, clock: ManualClock) -> None:
    # A code from one chat account, replayed from another account of the same person (where the grace
    # period of the first does not reach).
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say("invite alice")
    phone = Chat(app.engine, "alice-phone", channel="telegram", locale="en")
    await phone.say(said.replies[-1].text.strip())
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    await chat.press("why")
    await chat.press("details")
    used = await code(app, "alice")
    await chat.say(used)
    await phone.say("unlock me")
    said = await phone.say(used)
    assert "already been used" in said.text
    assert await locked(app, "alice")
    clock.advance(timedelta(seconds=30))
    said = await phone.say(await code(app, "alice"))
    assert "unlocked" in said.text


async def test_five_wrong_codes_pause_checks(app: App, clock: ManualClock) -> None:
    chat = Chat(app.engine, "alice", locale="zh-CN")
    await chat.start()
    await chat.press("unlock")
    for _ in range(4):
        said = await chat.say("000000")
        assert "验证码不正确" in said.text
    said = await chat.say("000000")
    assert "暂停了验证 1 分钟" in said.text
    await chat.press("帮我解锁")
    said = await chat.say(await code(app, "alice"))
    assert "暂停了验证" in said.text  # the right code is refused too while paused
    assert await locked(app, "alice")
    clock.advance(timedelta(seconds=61))
    await chat.say("解锁")
    said = await chat.say(await code(app, "alice"))
    assert "已经解锁" in said.text


async def test_letters_instead_of_a_code_are_not_counted(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    await chat.press("unlock")
    said = await chat.say("my code is twelve")
    assert "A code is 6 digits" in said.text
    said = await chat.say(await code(app, "alice"))
    assert "unlocked" in said.text


async def test_cancel_leaves_the_code_step(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    await chat.press("unlock")
    said = await chat.say("cancel")
    assert "Nothing was changed" in said.text
    assert await locked(app, "alice")


async def test_grace_and_heidi_self_serve(app: App) -> None:
    for user in ("grace", "heidi"):
        chat = Chat(app.engine, user, locale="en")
        await chat.start()
        await chat.press("Unlock me")
        said = await chat.say(await code(app, user))
        assert "unlocked" in said.text, user
        assert not await locked(app, user)


async def test_bob_files_a_request_for_an_admin(app: App) -> None:
    chat = Chat(app.engine, "bob", locale="en")
    await chat.start()
    said = await chat.press("why")
    assert "Ask an admin to unlock me" in said.labels
    await chat.press("Ask an admin to unlock me")
    said = await chat.say(await code(app, "bob"))
    assert "198.51.100.23" in said.text
    assert "Are you travelling" in said.text
    await chat.press("Yes")
    said = await chat.say("Chengdu, at a client")
    assert "trusted addresses" in said.text
    said = await chat.press("Yes, trust this address")
    async with app.database.session() as session:
        request = await session.scalar(select(UnlockRequest))
    assert request is not None
    assert f"#{request.id}" in said.text
    assert request.status == "pending"
    assert request.reason == "unusual_ip"
    assert request.evidence["ip"] == "198.51.100.23"
    assert request.answers == {"travelling": True, "where": "Chengdu, at a client", "trust_ip": "198.51.100.23"}
    assert await locked(app, "bob")
    said = await chat.say("unlock me")
    assert f"#{request.id}" in said.text
    assert "waiting for an admin" in said.text


async def test_no_unlock_where_policy_says_none(app: App) -> None:
    for user, words in (("carol", "licence"), ("erin", "fault"), ("ivan", "trial"), ("judy", "maintenance")):
        chat = Chat(app.engine, user, locale="en")
        await chat.start()
        said = await chat.press("why")
        assert "Unlock me" not in said.labels
        said = await chat.say("unlock me")
        assert "I can't unlock this one myself" in said.text, user
        assert words in said.text.lower(), user
        assert not said.asks_secret
        assert await locked(app, user)


async def test_a_password_reset_after_unlocking(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="zh-CN")
    await chat.start()
    await chat.press("unlock")
    await chat.say(await code(app, "alice"))
    said = await chat.press("重置我的密码")
    assert "a***@example.com" in said.text


async def test_an_unlinked_person_learns_nothing_about_accounts(app: App) -> None:
    chat = Chat(app.engine, "mallory", locale="en")
    await chat.start()
    said = await chat.press("why")
    assert "I don't know which CRM account is yours" in said.text
    said = await chat.say("unlock alice")
    assert "alice" not in said.text.lower()
