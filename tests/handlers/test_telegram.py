"""The Telegram channel on the real python-telegram-bot, against a fake Bot API server on 127.0.0.1.

Each test starts the channel as ``unlockbot serve`` would (polling the fake's
getUpdates, or taking webhooks on the shared HTTP server) and talks to it as
Telegram users do: private chats for employees, a group for the admins.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pyotp
import pytest
from sqlalchemy import delete, func, select

from bot import admin, demo
from bot.app import App
from bot.clock import ManualClock
from bot.config import Settings, TelegramSettings
from bot.errors import ConfigError
from bot.handlers.base import HELD, configured_channels
from bot.handlers.telegram import TelegramChannel, event_key, locale_hint
from bot.handlers.telegram_buttons import MAX_CALLBACK_DATA, ButtonTokens, Holder, Press
from bot.handlers.telegram_text import MAX_MESSAGE, as_html, split_message
from bot.identity.link_codes import canonical
from bot.identity.linking import link
from bot.logs import configure as configure_logging
from bot.logs import secrets_of
from bot.serve import serve
from bot.storage.models import ChannelState, Conversation, TotpEnrolment
from tests.databases import DemoTemplates, demo_app
from tests.fakes.telegram_api import FakeBotApi, FakeUser, Person
from tests.handlers.common import code, digest_notices, digest_passes, free_port, request_of, with_weekly_digest

# PTB 22's own RetryAfter constructor reads its deprecated int-valued ``retry_after`` property, which warns
# (its rate limiter then uses the timedelta). Nothing of ours touches it; only that warning is let through.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:.*attribute `retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"
)

ADMIN_GROUP = -1_001_234_567_890
# Our rate limiter logs here when it waits out a 429 before trying again.
RATE_LIMITER = "bot.handlers.telegram_pacing"
ALICE = FakeUser(501, "Alice", "en")
BOB = FakeUser(502, "Bob", "en")
SAM = FakeUser(601, "Sam", "en")
TINA = FakeUser(602, "Tina", "zh-hans")
KIM = FakeUser(503, "Kim", "en")
WEBHOOK_SECRET = "webhook-secret_for-tests"


def use_telegram(app: App, api: FakeBotApi, **overrides: Any) -> None:
    section = {
        "token": api.token,
        "base_url": api.base_url,
        "base_file_url": api.base_file_url,
        "admin_chat_id": ADMIN_GROUP,
        **overrides,
    }
    app.settings = app.settings.model_copy(update={"telegram": TelegramSettings.model_validate(section)})


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as fake:
        yield fake


@pytest.fixture
async def channel(app: App, api: FakeBotApi) -> AsyncIterator[TelegramChannel]:
    use_telegram(app, api)
    running = TelegramChannel.for_app(app, poll_timeout=timedelta(seconds=1))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def linked(app: App, api: FakeBotApi, user: FakeUser, username: str) -> Person:
    """``user`` follows the deep link an admin sent them: ``/start <link code>``."""
    invitation = await admin.invite(app, username, by="test")
    person = Person(api, user)
    done = await person.says(f"/start {invitation.issued.code}", expect=username)
    assert "CRM" in done.text  # "linked to the CRM account alice", in the person's language
    return person


# -- a whole conversation ------------------------------------------------------------------------


async def test_the_channel_reports_its_connection_for_readiness(app: App, api: FakeBotApi) -> None:
    use_telegram(app, api)
    polling = TelegramChannel.for_app(app, poll_timeout=timedelta(seconds=1))
    assert not await polling.connected()
    await polling.start()
    assert await polling.connected()
    await polling.stop()
    assert not await polling.connected()


async def test_a_code_is_deleted_even_when_the_bot_restarted_after_asking(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    alice = await linked(app, api, ALICE, "alice")
    await alice.says("unlock me", expect="6-digit code")
    await channel.stop()  # a new process (or another replica) reads the code
    again = TelegramChannel.for_app(app, poll_timeout=timedelta(seconds=1))
    await again.start()
    try:
        await alice.says(await code(app, "alice"), expect="Done: your CRM account is unlocked.")
        assert alice.said[-1].deleted, "the code is deleted: the conversation remembers it was asked for"
    finally:
        await again.stop()


async def test_one_replica_polls_and_another_takes_over_when_it_stops(app: App, api: FakeBotApi) -> None:
    use_telegram(app, api)
    first = TelegramChannel.for_app(app, poll_timeout=timedelta(seconds=1))
    second = TelegramChannel.for_app(app, poll_timeout=timedelta(seconds=1))
    await first.start()
    running = [first]
    try:
        await api.wait_for(lambda: bool(api.called("getUpdates")), what="the first replica polling")
        await second.start()
        running.append(second)
        assert await first.connected()
        assert await second.connected()  # the one standing by is healthy too
        assert not second._leading
        running.remove(first)
        await first.stop()  # it lets go of the lease; the other takes it at its next round
        await api.wait_for(lambda: second._leading, what="the second replica taking over", within=15)
        alice = await linked(app, api, ALICE, "alice")
        await alice.says("/menu", expect="What would you like to do?")
    finally:
        for channel in running:
            await channel.stop()


async def test_alice_links_asks_why_and_unlocks_herself(app: App, api: FakeBotApi, channel: TelegramChannel) -> None:
    alice = await linked(app, api, ALICE, "alice")
    menu = await alice.says("/menu", expect="What would you like to do?")
    assert menu.labels == [
        "Why am I locked?",
        "Unlock me",
        "Is my data safe?",
        "Is it my network?",
        "Ask a question",
        "Language / 语言",
    ]
    assert menu.parse_mode == "HTML"
    assert all(0 < len(data.encode()) <= MAX_CALLBACK_DATA for _, data in menu.buttons)
    assert not any("why" in data or "unlock" in data for _, data in menu.buttons)  # not the action in clear

    why = await alice.presses(menu, "Why am I locked?", expect="Too many wrong passwords")
    ask = await alice.presses(why, "Unlock me", expect="6-digit code")
    assert ask.chat_id == ALICE.id
    said_code = await code(app, "alice")
    await alice.says(said_code, expect="Done: your CRM account is unlocked.")
    assert not (await app.crm.lock_status("alice")).locked
    typed = alice.said[-1]
    assert typed.text == said_code
    assert typed.deleted, "the message carrying the code is deleted once read"
    assert [c.params["message_id"] for c in api.called("deleteMessage")] == [typed.message_id]
    assert len(api.called("answerCallbackQuery")) == 2  # every press answered
    assert all(c.params.get("text") is None for c in api.called("answerCallbackQuery"))


async def test_commands_become_the_words_of_the_person_s_language(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    tina = await linked(app, api, TINA, "tina")  # her Telegram app is in Chinese
    await tina.says("/menu", expect="你想做什么？")
    alice = await linked(app, api, ALICE, "alice")
    await alice.says("/unlock", expect="6-digit code")
    await alice.says("/cancel", expect="OK, I've stopped there.")
    assert not alice.said[-1].deleted  # a command is not a code
    await alice.says("/lang", expect="Which language would you like me to use?")
    await alice.says("/faq is my data safe?", expect="data")
    await alice.says("/faq", expect="What would you like to do?")
    await alice.says("/why", expect="password")
    await alice.says("/status", expect="You have no unlock request at the moment")
    await tina.says("/status", expect="解锁申请")  # answered in her language, not switched by the command


async def test_a_sticker_is_answered_as_a_message_without_text(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    await linked(app, api, ALICE, "alice")
    before = api.last_message_id
    api.queue(api.sticker_update(ALICE))
    await api.reply_in(ALICE.id, "I didn't get any text", after=before)


async def test_a_newcomer_gets_the_qr_code_as_a_protected_photo_and_it_goes_when_enrolled(
    app: App, api: FakeBotApi, channel: TelegramChannel, clock: ManualClock
) -> None:
    async with app.database.session() as session, session.begin():
        await session.execute(delete(TotpEnrolment).where(TotpEnrolment.crm_username == "alice"))
    invitation = await admin.invite(app, "alice", by="test")
    alice = Person(api, ALICE)
    await alice.says(f"/start {invitation.issued.code}", expect="Scan this QR code")
    photos = api.called("sendPhoto")
    assert len(photos) == 1
    assert photos[0].params["photo"].startswith(b"\x89PNG")
    assert photos[0].params["protect_content"] is True
    qr = next(m for m in api.chat(ALICE.id) if m.photo is not None)
    async with app.database.session() as session:
        stored = await session.get(TotpEnrolment, "alice")
    assert stored is not None
    assert app.box is not None
    secret = app.box.decrypt(stored.secret_ciphertext)
    await alice.says(pyotp.TOTP(secret).at(clock.now()), expect="")
    await api.wait_for(lambda: qr.deleted, what="the QR code deleted")
    assert alice.said[-1].deleted


# -- nothing secret in the log, even at -vv ----------------------------------------------------


def absent(secret: str, log: str) -> bool:
    """``secret`` is nowhere in ``log``; a code counts only on its own, not inside a longer number."""
    if secret.isdigit():
        return re.search(rf"(?<!\d){secret}(?!\d)", log) is None
    return secret not in log


async def test_at_debug_level_no_token_code_or_secret_reaches_the_log(
    app: App, api: FakeBotApi, clock: ManualClock
) -> None:
    """Enrolment, an unlock and a webhook registration with every library logging its payloads."""
    stream = io.StringIO()
    logs = configure_logging(2, stream=stream)
    used: list[str] = [api.token, api.token.split(":")[1], WEBHOOK_SECRET]
    try:
        use_telegram(app, api)
        logs.add_secrets(secrets_of(app.settings))
        assert app.settings.security.secret_key is not None
        used.append(app.settings.security.secret_key.get_secret_value())
        channel = TelegramChannel.for_app(app, poll_timeout=timedelta(seconds=1))
        await channel.start()
        try:
            async with app.database.session() as session, session.begin():
                await session.execute(delete(TotpEnrolment).where(TotpEnrolment.crm_username == "alice"))
            invitation = await admin.invite(app, "alice", by="test")
            used += [invitation.issued.code, canonical(invitation.issued.code)]
            alice = Person(api, ALICE)
            await alice.says(f"/start {invitation.issued.code}", expect="Scan this QR code")
            async with app.database.session() as session:
                stored = await session.get(TotpEnrolment, "alice")
            assert stored is not None
            assert app.box is not None
            secret = app.box.decrypt(stored.secret_ciphertext)
            used += [secret, pyotp.TOTP(secret).at(clock.now())]
            await alice.says(used[-1], expect="")
            await api.wait_for(lambda: any(m.photo is not None and m.deleted for m in api.messages.values()))
            invitation = await admin.invite(app, "bob", by="test")
            used += [invitation.issued.code, canonical(invitation.issued.code)]
            bob = Person(api, BOB)
            await bob.says(f"/start {invitation.issued.code}", expect="bob")
            await bob.says("unlock me", expect="6-digit code")
            used.append(await code(app, "bob"))
            await bob.says(used[-1], expect="")
            await api.wait_for(lambda: bob.said[-1].deleted, what="bob's code deleted once read")
            used.append(demo.demo_secret("bob"))
        finally:
            await channel.stop()
        use_telegram(app, api, mode="webhook", secret_token=WEBHOOK_SECRET, webhook_url="https://bot.example.com")
        hooked = TelegramChannel.for_app(app)
        await hooked.start()
        await hooked.stop()
        assert api.called("setWebhook")[0].params["secret_token"] == WEBHOOK_SECRET
    finally:
        logs.close()
    log = stream.getvalue()
    assert "getUpdates" in log  # the libraries did log their requests
    assert "Scan this QR code" in log  # and their payloads
    for secret in used:
        assert absent(secret, log), f"{secret!r} is in the log"


# -- long answers, limits and redelivery ---------------------------------------------------------


def test_long_answers_are_split_where_a_reader_pauses() -> None:
    paragraph = "word " * 700  # 3500 characters
    text = "\n\n".join([paragraph.strip()] * 3)
    pieces = split_message(text)
    assert len(pieces) == 3
    assert all(len(piece) <= MAX_MESSAGE for piece in pieces)
    assert pieces[0] == paragraph.strip()
    emoji = "😀" * 3000  # two UTF-16 code units each: Telegram counts those
    assert [len(piece) for piece in split_message(emoji)] == [2048, 952]
    assert split_message("short") == ["short"]
    assert as_html("a < b & c > d") == "a &lt; b &amp; c &gt; d"


async def test_a_429_is_waited_out_and_the_message_delivered(
    app: App, api: FakeBotApi, channel: TelegramChannel, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await linked(app, api, ALICE, "alice")
    api.fail_next("sendMessage", 429, retry_after=1)
    caplog.set_level(logging.INFO, logger=RATE_LIMITER)
    await alice.says("/menu", expect="What would you like to do?")
    tries = [c for c in api.called("sendMessage") if "What would you like" in str(c.params.get("text"))]
    assert [c.status for c in tries] == [429, 200]
    # Between the two, every send paused for the retry_after Telegram asked for.
    [pause] = [r for r in caplog.records if r.name == RATE_LIMITER and "answered 429" in r.getMessage()]
    assert isinstance(pause.args, tuple)
    assert float(pause.args[1]) >= 1.0


async def test_a_reply_telegram_will_not_take_is_held_and_sent_at_a_later_round(
    app: App, api: FakeBotApi, channel: TelegramChannel, clock: ManualClock
) -> None:
    alice = await linked(app, api, ALICE, "alice")
    before = api.last_message_id
    api.fail_next("sendMessage", 500)  # Telegram down for a moment: the reply is kept, not lost
    api.say(ALICE, "/menu")
    held = select(func.count()).select_from(ChannelState).where(ChannelState.kind == HELD)
    for _ in range(200):
        async with app.database.session() as session:
            if await session.scalar(held):
                break
        await asyncio.sleep(0.025)
    else:
        raise AssertionError("the refused reply was not held")
    clock.advance(timedelta(seconds=31))
    await channel.deliver()
    await api.reply_in(alice.id, "What would you like", after=before)
    await channel.deliver()
    assert sum("What would you like" in m.text for m in api.chat(alice.id) if m.message_id > before) == 1


async def test_a_redelivered_update_is_handled_once_even_after_a_restart(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    alice = await linked(app, api, ALICE, "alice")
    update = api.message_update(ALICE, "menu")
    api.queue(update)
    api.queue(dict(update))  # the same update again, as after a lost getUpdates offset
    await alice.says("/lang", expect="Which language")  # answered after both copies were taken in
    greetings = [m for m in api.chat(ALICE.id) if "What would you like" in m.text]
    assert len(greetings) == 1

    await channel.stop()  # a new process: the in-memory set is empty, the engine's event store is not
    again = TelegramChannel.for_app(app, poll_timeout=timedelta(seconds=1))
    await again.start()
    try:
        api.queue(dict(update))
        await alice.says("/lang", expect="Which language")
        greetings = [m for m in api.chat(ALICE.id) if "What would you like" in m.text]
        assert len(greetings) == 1  # the engine's store of handled events remembered it
    finally:
        await again.stop()


def test_update_keys_tell_apart_restarted_update_ids() -> None:
    from telegram import Update

    first = Update.de_json({"update_id": 5, "callback_query": _query("q1")}, None)
    second = Update.de_json({"update_id": 5, "callback_query": _query("q2")}, None)
    assert event_key(first) != event_key(second)
    assert locale_hint("zh-hans") == "zh-CN"
    assert locale_hint("en-GB") == "en"
    assert locale_hint(None) is None


def _query(query_id: str) -> dict[str, Any]:
    return {"id": query_id, "from": ALICE.as_json(), "chat_instance": "1", "data": "x"}


# -- buttons ---------------------------------------------------------------------------------------


def test_button_tokens_are_bound_short_and_expire(clock: ManualClock) -> None:
    tokens = ButtonTokens(b"k" * 32, clock, lifetime=timedelta(days=7))
    data = tokens.issue("approve:12", Holder.PERSON, 501)
    assert len(data) <= MAX_CALLBACK_DATA
    assert tokens.resolve(data, presser_id=501, chat_id=501) == Press("approve:12", from_card=False)
    assert tokens.resolve(data, presser_id=502, chat_id=501) is None  # someone else's button
    tampered = data[:-2] + ("A" if data[-2] != "A" else "B") + data[-1]
    assert tokens.resolve(tampered, presser_id=501, chat_id=501) is None
    assert ButtonTokens(b"x" * 32, clock, lifetime=timedelta(days=7)).resolve(data, presser_id=501, chat_id=1) is None
    card = tokens.issue("deny:12", Holder.CHAT, ADMIN_GROUP)
    assert tokens.resolve(card, presser_id=999, chat_id=ADMIN_GROUP) == Press("deny:12", from_card=True)
    assert tokens.resolve(card, presser_id=999, chat_id=-5) is None  # the card's buttons work in its group only
    long_action = "faq:" + "a-very-long-topic-id-" * 3
    remembered = tokens.issue(long_action, Holder.PERSON, 501)
    assert len(remembered) <= MAX_CALLBACK_DATA
    assert tokens.resolve(remembered, presser_id=501, chat_id=501) == Press(long_action, from_card=False)
    for garbage in ("", "~nothing", "!!!", "AAAA", "x" * 64):
        assert tokens.resolve(garbage, presser_id=501, chat_id=501) is None
    clock.advance(timedelta(days=8))
    assert tokens.resolve(data, presser_id=501, chat_id=501) is None
    assert tokens.resolve(remembered, presser_id=501, chat_id=501) is None


async def test_forged_and_borrowed_buttons_are_refused_with_an_answer(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    alice = await linked(app, api, ALICE, "alice")
    menu = await alice.says("/menu", expect="What would you like")
    before = len(api.called("sendMessage"))
    api.queue(api.press_update(ALICE, menu, "unlock"))  # hand-made callback_data
    api.queue(api.press_update(KIM, menu, menu.data("Unlock me")))  # another person's button
    await api.wait_for(lambda: len([c for c in api.called("answerCallbackQuery") if c.params.get("text")]) == 2)
    answers = [c for c in api.called("answerCallbackQuery") if c.params.get("text")]
    assert all("expired or isn't yours" in c.params["text"] and c.params["show_alert"] for c in answers)
    await alice.says("/menu", expect="What would you like")  # answered after the presses: they were handled
    assert len(api.called("sendMessage")) == before + 1  # only that answer: the presses reached nothing
    assert not any("6-digit code" in m.text for m in api.chat(ALICE.id))


# -- the admin group -------------------------------------------------------------------------------


async def bob_files_a_request(app: App, api: FakeBotApi) -> tuple[Person, int]:
    bob = await linked(app, api, BOB, "bob")
    await bob.says("unlock me", expect="6-digit code")
    travelling = await bob.says(await code(app, "bob"), expect="travelling")
    assert bob.said[-1].deleted
    await bob.presses(travelling, "Yes", expect="")
    trust = await bob.says("Chengdu", expect="198.51.100.23")
    await bob.presses(trust, "Yes, trust this address", expect="#")
    return bob, (await request_of(app, "bob")).id


async def test_a_seat_request_card_in_the_group_shows_the_seats_and_who_could_free_one(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    dave = await linked(app, api, FakeUser(505, "Dave", "en"), "dave")
    await dave.says("unlock me", expect="6-digit code")
    await dave.says(await code(app, "dave"), expect="#")
    request_id = (await request_of(app, "dave")).id
    await channel.deliver()
    card = await api.reply_in(ADMIN_GROUP, f"解锁申请 #{request_id}，来自 dave")
    assert "已用席位 11 / 10" in card.text
    assert "kim（Kim Sun），从未登录；judy（Judy Xu），上次登录于 " in card.text
    assert card.labels == ["批准", "拒绝"]


async def test_sam_approves_bob_from_the_group_and_bob_is_told(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    sam = await linked(app, api, SAM, "sam")
    bob, request_id = await bob_files_a_request(app, api)
    await channel.deliver()
    # Cards speak the bot's default language, zh-CN here: the group is shared.
    card = await api.reply_in(ADMIN_GROUP, f"解锁申请 #{request_id}，来自 bob")
    assert card.labels == ["批准", "拒绝"]
    assert "状态：等待处理。" in card.text
    await api.reply_in(SAM.id, f"New unlock request #{request_id} from bob")  # sam's notification
    await channel.deliver()
    assert len([m for m in api.chat(ADMIN_GROUP) if f"#{request_id}" in m.text]) == 1  # posted once

    before = api.last_message_id
    api.press(SAM, card, "批准")
    await api.reply_in(SAM.id, "approve this request", after=before)  # the approver's own code, asked privately
    await sam.says(await code(app, "sam"), expect=f"Approved: request #{request_id} for bob")
    await channel.deliver()
    await api.wait_for(lambda: "由 sam" in card.text, what="the card redrawn")
    assert "批准" in card.text
    assert "等待处理" not in card.text
    assert card.labels == []  # a decided card has no buttons
    await app.housekeeper.tick()
    assert not (await app.crm.lock_status("bob")).locked
    await channel.deliver()
    await api.reply_in(BOB.id, f"sam approved your request #{request_id}")
    await api.reply_in(BOB.id, f"Request #{request_id} is done")
    assert (await request_of(app, "bob")).status == "done"
    assert bob.said[-1].text == "Chengdu"


async def test_a_group_member_who_is_no_admin_cannot_decide(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    _, request_id = await bob_files_a_request(app, api)
    kim = await linked(app, api, KIM, "kim")
    await channel.deliver()
    card = await api.reply_in(ADMIN_GROUP, f"#{request_id}，来自 bob")
    presses = len(api.called("answerCallbackQuery"))
    await kim.presses(card, "批准", expect="That's only for admins.", reply_in=ADMIN_GROUP)
    assert len(api.called("answerCallbackQuery")) == presses + 1
    stranger = Person(api, FakeUser(777, "Mallory", "en"))  # not linked at all
    await stranger.presses(card, "批准", expect="That's only for admins.", reply_in=ADMIN_GROUP)
    assert (await request_of(app, "bob")).status == "pending"
    assert card.edits == 0
    assert card.labels == ["批准", "拒绝"]


async def test_a_deny_reason_is_asked_as_a_reply_in_the_group(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    tina = await linked(app, api, TINA, "tina")
    _, request_id = await bob_files_a_request(app, api)
    await channel.deliver()
    card = await api.reply_in(ADMIN_GROUP, f"#{request_id}，来自 bob")
    question = await tina.presses(card, "拒绝", expect=f"#{request_id}", reply_in=ADMIN_GROUP)
    assert question.reply_to == card.message_id
    await tina.says("请先联系 IT <b>确认</b> & 再申请", expect="已拒绝", chat_id=ADMIN_GROUP, reply_to=question)
    assert (await request_of(app, "bob")).status == "denied"
    await api.wait_for(lambda: "请先联系 IT" in card.text, what="the card redrawn with the reason")
    assert "请先联系 IT &lt;b&gt;确认&lt;/b&gt; &amp; 再申请" in card.text  # what people type never becomes markup
    assert card.parse_mode == "HTML"
    assert card.labels == []


async def test_an_approver_code_is_asked_privately_and_a_code_in_the_group_is_refused_and_deleted(
    app: App, api: FakeBotApi, channel: TelegramChannel
) -> None:
    api.can_delete_in_groups = True
    sam = await linked(app, api, SAM, "sam")
    frank = await linked(app, api, FakeUser(504, "Frank", "en"), "frank")
    await frank.says("unlock me", expect="6-digit code")
    await frank.says(await code(app, "frank"), expect="bulk delete")
    request_id = (await request_of(app, "frank")).id
    await channel.deliver()
    card = await api.reply_in(ADMIN_GROUP, f"#{request_id}，来自 frank")

    before = api.last_message_id
    api.press(SAM, card, "批准")
    ask = await api.reply_in(SAM.id, "approve this request", after=before)
    assert not [m for m in api.chat(ADMIN_GROUP) if m.message_id > before]  # nothing about codes in the group

    sams_code = await code(app, "sam")
    typed = api.say(SAM, sams_code, chat_id=ADMIN_GROUP)
    await api.reply_in(SAM.id, "Please don't send codes where others can read them", after=ask.message_id)
    await api.wait_for(lambda: typed.deleted, what="the code deleted from the group")
    assert (await request_of(app, "frank")).status == "pending"

    await sam.says(sams_code, expect=f"Approved: request #{request_id} for frank")
    await channel.deliver()
    await api.wait_for(lambda: "由 sam" in card.text, what="the card redrawn")


async def test_group_chatter_is_not_for_the_bot(app: App, api: FakeBotApi, channel: TelegramChannel) -> None:
    sam = await linked(app, api, SAM, "sam")
    api.say(SAM, "lunch at noon?", chat_id=ADMIN_GROUP)
    api.say(SAM, "/menu@some_other_bot", chat_id=ADMIN_GROUP)
    await sam.says("@unlock_test_bot pending", expect="No requests are waiting", chat_id=ADMIN_GROUP)
    answered = list(api.chat(ADMIN_GROUP))
    assert all(m.reply_to == sam.said[-1].message_id for m in answered)


# -- webhooks on the shared server -----------------------------------------------------------------


async def wait_for_health(port: int, serving: asyncio.Task[None]) -> None:
    """Until the server answers /healthz; if ``serve`` ends first (it could not listen), its error."""
    async with aiohttp.ClientSession() as client:
        while not serving.done():
            try:
                async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectorError:
                await asyncio.wait({serving}, timeout=0.02)  # listening comes first in serve(): not long
    serving.result()
    raise AssertionError("serve() stopped before the server answered")


async def test_webhooks_need_the_secret_token(app: App, api: FakeBotApi) -> None:
    port = free_port()
    use_telegram(app, api, mode="webhook", secret_token=WEBHOOK_SECRET, webhook_path="/telegram/hook")
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    assert [channel.name for channel in configured_channels(app)] == ["telegram"]
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
    try:
        await wait_for_health(port, task)
        url = f"http://127.0.0.1:{port}/telegram/hook"
        async with aiohttp.ClientSession() as client:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}):
                async with client.post(url, json=api.message_update(KIM, "/start"), headers=headers) as response:
                    assert response.status == 403

            good = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
            update = api.message_update(ALICE, "/start")
            for _ in range(2):  # Telegram retries a webhook it thinks failed
                async with client.post(url, json=update, headers=good) as response:
                    assert response.status == 200
            await api.reply_in(ALICE.id, "What would you like to do?")
            # Kim's updates came first and were refused: they reached nothing, where Alice's was answered.
            assert not [c for c in api.called("sendMessage") if c.params["chat_id"] == KIM.id]
            async with app.database.session() as session:
                kims = select(func.count()).select_from(Conversation).where(Conversation.user_id == str(KIM.id))
                assert await session.scalar(kims) == 0
            async with client.post(url, json=api.message_update(ALICE, "/menu"), headers=good) as response:
                assert response.status == 200
            await api.wait_for(lambda: len([m for m in api.chat(ALICE.id) if "What would you like" in m.text]) == 2)
            async with client.post(url, data="not json", headers=good) as response:
                assert response.status == 400
        assert not api.called("getUpdates")
        assert next(m for m in api.chat(ALICE.id) if "What would you like" in m.text).reply_to is None
        assert len([m for m in api.chat(ALICE.id) if "What would you like" in m.text]) == 2
        assert not api.called("setWebhook")  # no public URL configured: the operator registers it
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_a_public_webhook_url_is_registered_with_the_secret(app: App, api: FakeBotApi) -> None:
    use_telegram(app, api, mode="webhook", secret_token=WEBHOOK_SECRET, webhook_url="https://bot.example.com/base")
    channel = TelegramChannel.for_app(app)
    await channel.start()
    await channel.stop()
    (registered,) = api.called("setWebhook")
    assert registered.params["url"] == "https://bot.example.com/base/telegram/webhook"
    assert registered.params["secret_token"] == WEBHOOK_SECRET
    assert registered.params["allowed_updates"] == ["message", "callback_query"]


async def test_someone_without_a_private_chat_is_pointed_to_one(
    app: App, api: FakeBotApi, channel: TelegramChannel, clock: ManualClock
) -> None:
    frank = await linked(app, api, FakeUser(504, "Frank", "en"), "frank")
    await frank.says("unlock me", expect="6-digit code")
    await frank.says(await code(app, "frank"), expect="bulk delete")
    async with app.database.session() as session, session.begin():  # linked, but no private chat with the bot
        await link(session, now=clock.now(), channel="telegram", team_id="", user_id="602", username="tina", by="t")
    tina = Person(api, FakeUser(602, "Tina", "en"))
    await channel.deliver()
    card = await api.reply_in(ADMIN_GROUP, "来自 frank")
    note = await tina.presses(card, "批准", expect="Open a chat with me", reply_in=ADMIN_GROUP)
    assert note.reply_markup == {
        "inline_keyboard": [[{"text": "@unlock_test_bot", "url": "https://t.me/unlock_test_bot"}]]
    }
    assert not any("6-digit code" in m.text for m in api.chat(ADMIN_GROUP))


# -- settings ----------------------------------------------------------------------------------------


def test_webhook_mode_needs_a_valid_secret_token(tmp_path: Any) -> None:
    from bot.config import load_settings

    config = tmp_path / "unlockbot.toml"
    config.write_text('[telegram]\ntoken = "123:abc"\nmode = "webhook"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="needs secret_token"):
        load_settings(config, environ={})
    config.write_text(
        '[telegram]\ntoken = "123:abc"\nmode = "webhook"\nsecret_token = "no spaces!"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="A-Z, a-z, 0-9") as refused:
        load_settings(config, environ={})
    assert "no spaces" not in str(refused.value)
    config.write_text('[telegram]\ntoken = "not a token"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"telegram\.token") as refused:
        load_settings(config, environ={})
    assert "not a token" not in str(refused.value)
    settings = Settings.model_validate(
        {"telegram": {"token": "123:abc", "mode": "webhook", "secret_token": WEBHOOK_SECRET}}
    )
    assert WEBHOOK_SECRET not in repr(settings)
    assert "123:abc" not in repr(settings)


async def test_channels_check_asks_telegram_who_the_token_belongs_to(
    app: App, api: FakeBotApi, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import _channels_check

    use_telegram(app, api)
    assert await _channels_check(app, as_json=False) == 0
    assert "telegram:  ok" in capsys.readouterr().out
    use_telegram(app, api, token="123:revoked-token")
    assert await _channels_check(app, as_json=False) == 1
    assert "telegram:  fails: Telegram refused the token" in capsys.readouterr().out


# -- the weekly digest ---------------------------------------------------------------------------


async def test_the_weekly_digest_is_posted_with_its_chart_in_the_admin_group_once(
    settings: Settings, clock: ManualClock, demo_templates: DemoTemplates, api: FakeBotApi
) -> None:
    from bot.app import open_app

    section = {"token": api.token, "base_url": api.base_url, "base_file_url": api.base_file_url}
    digest = with_weekly_digest(settings, "telegram", {**section, "admin_chat_id": ADMIN_GROUP})
    async with (
        demo_app(digest, clock, demo_templates) as app,
        open_app(app.settings, clock=clock) as other,  # a second replica on the same database
    ):
        replicas = [TelegramChannel.for_app(app, poll_timeout=timedelta(seconds=1)), TelegramChannel.for_app(other)]
        for channel in replicas:
            await channel.start()
        try:
            await digest_passes([app, other], replicas, clock)
            photo, summary = api.chat(ADMIN_GROUP)
            assert photo.photo is not None
            assert photo.photo.startswith(b"\x89PNG")
            assert not photo.protect_content  # the admins may forward the chart
            assert "Your weekly lock digest" in summary.text
            assert "Press the button" not in summary.text
            assert summary.buttons == []
            assert await digest_notices(app) == 0
        finally:
            for channel in replicas:
                await channel.stop()


async def test_without_an_admin_group_each_admin_is_notified_of_the_digest_instead(
    settings: Settings, clock: ManualClock, demo_templates: DemoTemplates, api: FakeBotApi
) -> None:
    section = {"token": api.token, "base_url": api.base_url, "base_file_url": api.base_file_url}
    async with demo_app(with_weekly_digest(settings, "telegram", section), clock, demo_templates) as app:
        await app.housekeeper.tick()
        assert await digest_notices(app) == 2  # sam and tina, with the button that draws the chart
