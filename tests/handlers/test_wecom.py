"""The WeCom channel against a fake WeCom on 127.0.0.1, with callbacks encrypted and signed as WeCom does.

Members write to the app and press buttons on its cards: ``WeComSender`` encrypts and signs each callback with
wechatpy's ``WeChatCrypto`` and posts it to the channel's route; the channel answers through the fake's
app-message API, which keeps each member's chat. The tests read like a chat: a member says or presses
something, and the test reads what the app sent them.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pyotp
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import delete

from bot import admin, demo
from bot.app import App
from bot.cards import CLAIM
from bot.channel_settings import WeComSettings
from bot.clock import ManualClock
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.handlers.base import configured_channels
from bot.handlers.wecom import WeComChannel, company_email
from bot.handlers.wecom_cards import request_card
from bot.logs import configure as configure_logging
from bot.logs import secrets_of
from bot.messages import Rendered, RenderedButton
from bot.serve import serve
from bot.storage.models import TotpEnrolment
from tests.databases import DemoTemplates
from tests.fakes.wecom_api import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    SECRET,
    TOKEN,
    Answer,
    FakeWeCom,
    Message,
    WeComSender,
)
from tests.handlers.common import (
    after_digest_rounds,
    code,
    digest_notices,
    free_port,
    request_of,
    routes_served,
    with_weekly_digest,
)

ALICE, BOB, FRANK, KIM, SAM, TINA = "WangAlice", "LiBob", "LiuFrank", "SunKim", "MaSam", "GuoTina"


def use_wecom(app: App, fake: FakeWeCom, **changes: Any) -> None:
    values: dict[str, Any] = {
        "corp_id": CORP_ID,
        "agent_id": AGENT_ID,
        "secret": SECRET,
        "token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "api_base_url": fake.url,
        "admin_users": [SAM, TINA],
        **changes,
    }
    # An English-speaking company: cards are drawn in the default language.
    bot = app.settings.bot.model_copy(update={"default_locale": "en"})
    app.settings = app.settings.model_copy(update={"wecom": WeComSettings.model_validate(values), "bot": bot})


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    fake = FakeWeCom()
    await fake.start()
    # biz_mail is the WeCom mailbox, email the one the address book keeps; either may be the CRM's.
    fake.add_member(ALICE, "Alice Wang", biz_mail="alice@example.com")
    fake.add_member(BOB, "Bob Li", email="bob@example.com")
    fake.add_member(FRANK, "Frank Liu", email="frank@example.com")
    fake.add_member(KIM, "Kim Sun")  # no e-mail in the address book: links with a code
    fake.add_member(SAM, "Sam Ma", biz_mail="sam@example.com")
    fake.add_member(TINA, "Tina Guo", biz_mail="tina@example.com")
    yield fake
    await fake.stop()


@dataclass
class WeComChat:
    """Members of a company talking to the app; the test reads their chats."""

    channel: WeComChannel
    wecom: FakeWeCom
    sender: WeComSender
    app: App

    async def say(self, user: str, text: str) -> list[Message]:
        before = len(self.wecom.chat(user))
        answer = await self.sender.text(user, text)
        assert (answer.status, answer.body) == (200, "")
        await self.channel.settled()
        return self.wecom.chat(user)[before:]

    def said(self, user: str) -> str:
        return "\n".join(message.text for message in self.wecom.chat(user))

    def last(self, user: str) -> str:
        return self.wecom.chat(user)[-1].text

    def card_with(self, user: str, label: str) -> Message:
        for message in reversed(self.wecom.chat(user)):
            if label in message.labels:
                return message
        raise AssertionError(f"no card with {label!r} in the chat of {user}")

    async def press(self, user: str, label: str, *, card: Message | None = None) -> Answer:
        """Press the button ``label`` on ``card`` (the newest card with it in the member's chat unless told)."""
        card = card or self.card_with(user, label)
        key = next(button["key"] for button in card.buttons if button["text"] == label)
        answer = await self.sender.press(user, card, key, response_code=self.wecom.click_code(card))
        assert (answer.status, answer.body) == (200, "")
        await self.channel.settled()
        return answer

    async def deliver(self) -> None:
        await self.channel.deliver()
        await self.channel.settled()


@pytest.fixture
async def chat(app: App, wecom: FakeWeCom, clock: ManualClock) -> AsyncIterator[WeComChat]:
    """The channel's route on an aiohttp server of its own, as ``serve`` would add it to the shared one."""
    use_wecom(app, wecom)
    channel = WeComChannel.for_app(app)
    async with routes_served(channel) as port:
        await channel.start()
        sender = WeComSender(f"http://127.0.0.1:{port}/wecom/events", now=lambda: int(clock.now().timestamp()))
        yield WeComChat(channel, wecom, sender, app)
        await channel.stop()


def sent_bodies(wecom: FakeWeCom) -> str:
    return "\n".join(str(call.body) for call in wecom.calls)


# ---- an employee in the app's chat ----------------------------------------------------------------


async def test_alice_is_linked_by_her_company_email_asks_why_and_unlocks_with_a_code(chat: WeComChat) -> None:
    app, wecom = chat.app, chat.wecom
    said = await chat.say(ALICE, "hello")
    assert [call.query["userid"] for call in wecom.calls_to("user/get")] == [ALICE]
    assert await app.engine.is_linked("wecom", CORP_ID, ALICE)
    assert "Hi alice" in said[0].text
    menu = said[-1]
    assert menu.msgtype == "template_card"
    assert menu.body["card_type"] == "button_interaction"
    assert "Why am I locked?" in menu.labels
    assert menu.text == "What would you like to do?"  # the reply's question titles the card

    await chat.press(ALICE, "Why am I locked?")
    assert "wrong password" in chat.said(ALICE).lower()

    said = await chat.say(ALICE, "unlock me")
    assert "6-digit code" in "\n".join(message.text for message in said)
    right = await code(app, "alice")
    said = await chat.say(ALICE, right)
    assert "Done: your CRM account is unlocked." in "\n".join(m.text for m in said)
    assert not (await app.crm.lock_status("alice")).locked
    assert right not in sent_bodies(wecom)  # never echoed
    assert len(wecom.calls_to("user/get")) == 1  # linked once, not looked up again
    assert all(len(m.text.encode()) <= 2048 for m in wecom.chat(ALICE))


async def test_kim_without_a_company_email_links_with_a_link_code(chat: WeComChat) -> None:
    await chat.say(KIM, "why am I locked")
    assert not await chat.app.engine.is_linked("wecom", CORP_ID, KIM)
    assert "I don't know which CRM account is yours" in chat.said(KIM)
    invitation = await admin.invite(chat.app, "kim", by="test")
    said = await chat.say(KIM, invitation.issued.code)
    done = "\n".join(message.text for message in said)
    assert "CRM" in done  # "linked to the CRM account kim", in the language of kim's account
    assert "kim" in done
    assert await chat.app.engine.is_linked("wecom", CORP_ID, KIM)


def test_what_wecom_vouches_for() -> None:
    member = {"status": 1, "email": "kim@example.com", "biz_mail": ""}
    assert company_email(member) == "kim@example.com"
    assert company_email({**member, "biz_mail": "kim@corp.wecom.work"}) == "kim@corp.wecom.work"
    for status in (2, 4, 5):  # disabled, never activated, left the company
        assert company_email({**member, "status": status}) is None
    assert company_email({"status": 1, "email": "", "biz_mail": ""}) is None


async def test_the_app_menu_sends_commands(chat: WeComChat) -> None:
    assert [item["key"] for item in chat.wecom.menu["button"]] == ["menu", "unlock"]
    assert chat.wecom.calls_to("menu/create")[0].query["agentid"] == str(AGENT_ID)
    await chat.say(ALICE, "hello")
    answer = await chat.sender.click(ALICE, "unlock")
    assert answer.status == 200
    await chat.channel.settled()
    assert "6-digit code" in chat.said(ALICE)


async def test_the_enrolment_qr_code_is_protected_and_recalled_once_enrolled(
    chat: WeComChat, clock: ManualClock
) -> None:
    app = chat.app
    async with app.database.session() as session, session.begin():
        await session.execute(delete(TotpEnrolment).where(TotpEnrolment.crm_username == "alice"))
    await chat.say(ALICE, "unlock me")
    await chat.press(ALICE, "Set up my authenticator app")
    assert "Scan this QR code" in chat.said(ALICE)
    [qr] = [message for message in chat.wecom.chat(ALICE) if message.msgtype == "image"]
    assert chat.wecom.media[qr.body["media_id"]].startswith(b"\x89PNG")
    assert qr.safe == 1  # watermarked, not forwardable
    async with app.database.session() as session:
        stored = await session.get(TotpEnrolment, "alice")
    assert stored is not None
    assert app.box is not None
    await chat.say(ALICE, pyotp.TOTP(app.box.decrypt(stored.secret_ciphertext)).at(clock.now()))
    assert qr.recalled


# ---- a request, and the admins' cards -------------------------------------------------------------


async def bob_asks_for_an_unlock(chat: WeComChat) -> int:
    await chat.say(BOB, "unlock me")
    await chat.say(BOB, await code(chat.app, "bob"))
    await chat.press(BOB, "Yes")  # travelling
    await chat.say(BOB, "Chengdu")
    await chat.press(BOB, "Yes, trust this address")
    request = await request_of(chat.app, "bob")
    assert f"#{request.id}" in chat.said(BOB)
    return request.id


async def test_sam_approves_on_the_card_and_bob_is_told(chat: WeComChat) -> None:
    wecom = chat.wecom
    request_id = await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    card = chat.card_with(SAM, "Approve")
    assert card in wecom.chat(TINA)  # one card, sent to every admin
    assert f"Unlock request #{request_id} from bob" in card.text
    assert card.labels == ["Approve", "Deny"]
    assert "198.51.100.23" in chat.said(SAM)  # the evidence, on the card or just above it
    await chat.deliver()
    assert len([m for m in wecom.chat(SAM) if m.msgtype == "template_card" and f"#{request_id}" in m.text]) == 1

    await chat.say(SAM, "hello")  # WeCom tells no language: sam's first words do (the bot's default is Chinese)
    await chat.press(SAM, "Approve", card=card)
    # Approving takes the approver's own code, asked in sam's own chat with the app.
    assert "6-digit code from your authenticator app to approve this request" in chat.said(SAM)
    said = await chat.say(SAM, await code(chat.app, "sam"))
    assert f"Approved: request #{request_id} for bob" in "\n".join(m.text for m in said)
    [update] = wecom.calls_to("message/update_template_card")
    assert update.body["response_code"].startswith("click-")  # the code sam's click brought
    assert "Approved by sam" in card.text
    assert card.labels == []
    assert card.body["replace_text"] == "Decided"

    await chat.app.housekeeper.tick()
    await chat.deliver()
    assert f"sam approved your request #{request_id}" in chat.said(BOB)
    assert not (await chat.app.crm.lock_status("bob")).locked
    updates = wecom.calls_to("message/update_template_card")
    assert len(updates) in (1, 2)  # approved, then done; or done at once when the CRM answered in the turn
    await chat.deliver()
    assert len(wecom.calls_to("message/update_template_card")) == len(updates)  # then left alone


async def test_a_press_on_a_card_by_someone_who_is_no_admin_is_refused(chat: WeComChat) -> None:
    await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    card = chat.card_with(SAM, "Approve")
    await chat.say(FRANK, "hello")
    await chat.press(FRANK, "Approve", card=card)  # a press WeCom signed, by someone the card did not go to
    assert "That's only for admins." in chat.said(FRANK)
    assert (await request_of(chat.app, "bob")).status == "pending"
    assert chat.wecom.calls_to("message/update_template_card") == []


async def test_tina_denies_with_a_reason_and_bob_hears_it(chat: WeComChat) -> None:
    request_id = await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    await chat.say(TINA, "hello")
    await chat.press(TINA, "Deny")
    assert f"Why are you denying request #{request_id}?" in chat.said(TINA)
    await chat.say(TINA, "Please call IT first")
    assert f"Denied: request #{request_id} for bob" in chat.said(TINA)
    card = next(m for m in chat.wecom.chat(TINA) if m.msgtype == "template_card" and f"#{request_id}" in m.text)
    assert "Denied by tina" in card.text
    await chat.app.housekeeper.tick()
    await chat.deliver()
    assert "tina declined your request" in chat.said(BOB)
    assert "Please call IT first" in chat.said(BOB)


def test_a_long_card_sends_its_evidence_first_and_keeps_its_status() -> None:
    text = (
        "Unlock request #7 from bob: Sign-in from an unusual place\n\n" + "Evidence line.\n" * 30 + "Status: waiting."
    )
    lead, card = request_card(Rendered(text, (RenderedButton("approve:7", "Approve"),)), "req-7-ab", "Decided")
    assert lead == text.strip()
    assert card["main_title"]["title"].endswith("…")
    assert card["sub_title_text"].endswith("\nStatus: waiting.")
    assert len(card["sub_title_text"]) <= 160
    short, _ = request_card(Rendered("Unlock request #8 from kim\nStatus: waiting."), "req-8-cd", "Decided")
    assert short == ""


# ---- callbacks: signatures, replays, URL verification ---------------------------------------------


async def nothing_was_done(chat: WeComChat) -> bool:
    answered = [c.path for c in chat.wecom.calls if c.path not in ("gettoken", "menu/create")]
    return answered == [] and not await chat.app.engine.is_linked("wecom", CORP_ID, ALICE)


async def test_forged_callbacks_are_refused_and_nothing_is_processed(chat: WeComChat, clock: ManualClock) -> None:
    sender, now = chat.sender, int(clock.now().timestamp())
    plain = "hello"
    assert (await sender.text(ALICE, plain, token="not-the-token")).status == 403
    assert (await sender.text(ALICE, plain, signature="0" * 40)).status == 403
    assert (await sender.text(ALICE, plain, corp_id="ww0another0company")).status == 403  # for someone else
    assert (await sender.text(ALICE, plain, timestamp=now - 301)).status == 403  # too old to be WeCom's now
    assert (await sender.text(ALICE, plain, timestamp=now + 301)).status == 403
    malformed = await sender.send({"msg_signature": "x", "timestamp": str(now), "nonce": "n"}, b"<xml><oops")
    assert malformed.status == 400
    await chat.channel.settled()
    assert await nothing_was_done(chat)
    assert (await sender.text(ALICE, plain, timestamp=now - 299)).status == 200  # within the window


async def test_a_replayed_callback_is_dropped_and_a_retried_message_handled_once(chat: WeComChat) -> None:
    first = await chat.sender.text(ALICE, "hello", msg_id=42)
    await chat.channel.settled()
    seen = len(chat.wecom.chat(ALICE))
    assert seen > 0
    again = await chat.sender.send(first.query, first.data)  # the very same request, replayed
    retried = await chat.sender.text(ALICE, "hello", msg_id=42)  # WeCom's retry: the same MsgId, signed anew
    assert (again.status, retried.status) == (200, 200)
    await chat.channel.settled()
    assert len(chat.wecom.chat(ALICE)) == seen
    assert len(chat.wecom.calls_to("user/get")) == 1


async def test_wecom_can_verify_the_callback_url(chat: WeComChat) -> None:
    verified = await chat.sender.verify_url("echo-1234567890")
    assert (verified.status, verified.body) == (200, "echo-1234567890")
    assert (await chat.sender.verify_url("echo-1", token="not-the-token")).status == 403


async def test_a_busy_wecom_keeps_notifications_for_the_next_round(chat: WeComChat) -> None:
    await chat.say(BOB, "hello")
    request_id = await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    await chat.press(SAM, "Approve")
    await chat.say(SAM, await code(chat.app, "sam"))
    await chat.app.housekeeper.tick()
    chat.wecom.fail.append(("message/send", -1))  # system busy
    await chat.deliver()
    assert "sam approved your request" not in chat.said(BOB)  # WeCom was busy: kept for the next round
    await chat.deliver()
    assert chat.said(BOB).count(f"sam approved your request #{request_id}") == 1


async def test_a_card_update_wecom_was_too_busy_for_is_made_in_a_later_round(
    chat: WeComChat, clock: ManualClock
) -> None:
    request_id = await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    card = chat.card_with(SAM, "Approve")
    await chat.say(SAM, "hello")
    await chat.press(SAM, "Approve", card=card)
    chat.wecom.fail.append(("message/update_template_card", 45009))  # the API's rate limit
    await chat.say(SAM, await code(chat.app, "sam"))
    assert f"Approved: request #{request_id} for bob" in chat.said(SAM)
    assert card.labels == ["Approve", "Deny"]  # not redrawn yet
    clock.advance(CLAIM)  # the failed round's claim on the card has run out, if it was not given back
    await chat.deliver()
    assert "Approved by sam" in card.text
    codes = [call.body["response_code"] for call in chat.wecom.calls_to("message/update_template_card")]
    assert codes[0] == codes[1]
    assert codes[0].startswith("click-")  # the same click code, kept for the next round


async def test_an_expired_access_token_is_renewed(chat: WeComChat) -> None:
    await chat.say(ALICE, "hello")
    chat.wecom.expire_tokens()
    said = await chat.say(ALICE, "unlock me")
    assert "6-digit code" in "\n".join(m.text for m in said)
    assert len(chat.wecom.calls_to("gettoken")) == 2


# ---- serve(), check, settings ---------------------------------------------------------------------


async def test_serve_with_only_wecom_runs_the_whole_conversation(app: App, wecom: FakeWeCom) -> None:
    port = free_port()
    use_wecom(app, wecom)
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    assert [channel.name for channel in configured_channels(app)] == ["wecom"]
    stop = asyncio.Event()
    running = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
    sender = WeComSender(f"http://127.0.0.1:{port}/wecom/events", now=lambda: int(app.clock.now().timestamp()))

    def said(user: str) -> str:
        return "\n".join(message.text for message in wecom.chat(user))

    try:
        checks: dict[str, str] = {}
        async with aiohttp.ClientSession() as client:
            for _ in range(500):  # until serve has started the channel
                try:
                    async with client.get(f"http://127.0.0.1:{port}/readyz") as ready:
                        checks = (await ready.json())["checks"]
                except aiohttp.ClientConnectorError:
                    pass
                if checks.get("channel:wecom") == "connected":
                    break
                await asyncio.sleep(0.02)
        assert checks["channel:wecom"] == "connected"
        assert (await sender.text(ALICE, "unlock me")).status == 200
        await wecom.wait_for(lambda: "6-digit code" in said(ALICE))
        assert (await sender.text(ALICE, await code(app, "alice"))).status == 200
        await wecom.wait_for(lambda: "Done: your CRM account is unlocked." in said(ALICE))

        assert (await sender.text(BOB, "unlock me")).status == 200
        await wecom.wait_for(lambda: "6-digit code" in said(BOB))
        await sender.text(BOB, await code(app, "bob"))
        await wecom.wait_for(lambda: "Yes" in wecom.chat(BOB)[-1].labels)
        card = wecom.chat(BOB)[-1]
        await sender.press(BOB, card, next(b["key"] for b in card.buttons if b["text"] == "Yes"))
        await wecom.wait_for(lambda: len(wecom.chat(BOB)) > 0 and wecom.chat(BOB)[-1] is not card)
        await sender.text(BOB, "Chengdu")
        await wecom.wait_for(lambda: "Yes, trust this address" in wecom.chat(BOB)[-1].labels)
        card = wecom.chat(BOB)[-1]
        await sender.press(BOB, card, next(b["key"] for b in card.buttons if b["text"] == "Yes, trust this address"))
        await wecom.wait_for(lambda: any("Approve" in m.labels for m in wecom.chat(SAM)))
        card = next(m for m in wecom.chat(SAM) if "Approve" in m.labels)
        await sender.text(SAM, "hello")
        await wecom.wait_for(lambda: "Hi sam" in said(SAM))
        key = next(b["key"] for b in card.buttons if b["text"] == "Approve")
        await sender.press(SAM, card, key, response_code=wecom.click_code(card))
        await wecom.wait_for(lambda: "to approve this request" in said(SAM))
        await sender.text(SAM, await code(app, "sam"))
        await wecom.wait_for(lambda: "Approved by sam" in card.text)
        await wecom.wait_for(lambda: "sam approved your request" in said(BOB))
        forged = await sender.text(ALICE, "hello", token="not-the-token")
        assert forged.status == 403
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    assert not (await app.crm.lock_status("bob")).locked


async def test_check_says_whether_the_credentials_work(app: App, wecom: FakeWeCom) -> None:
    use_wecom(app, wecom)
    channel = WeComChannel.for_app(app)
    try:
        assert await channel.check() is None
    finally:
        await channel.stop()
    use_wecom(app, wecom, secret="not-the-secret")
    channel = WeComChannel.for_app(app)
    try:
        problem = await channel.check()
    finally:
        await channel.stop()
    assert problem is not None
    assert "40001" in problem
    assert "not-the-secret" not in problem


async def test_at_debug_level_no_secret_token_or_code_reaches_the_log(chat: WeComChat) -> None:
    stream = io.StringIO()
    logs = configure_logging(2, stream=stream)
    logs.add_secrets(secrets_of(chat.app.settings))
    try:
        await chat.say(ALICE, "unlock me")
        typed = await code(chat.app, "alice")
        await chat.say(ALICE, typed)
    finally:
        logs.close()
    log = stream.getvalue()
    assert "message/send" in log  # the HTTP client did log its requests
    for secret in [SECRET, TOKEN, AES_KEY, *chat.wecom.tokens, demo.demo_secret("alice")]:
        assert secret not in log, f"{secret!r} is in the log"
    assert re.search(rf"(?<!\d){typed}(?!\d)", log) is None


def test_wecom_settings_name_what_is_missing_and_hide_secrets() -> None:
    with pytest.raises(ConfigError, match=r"wecom.*corp_id needs agent_id, secret, token, encoding_aes_key"):
        load_settings(environ={"UNLOCKBOT_WECOM__CORP_ID": CORP_ID})
    with pytest.raises(ValidationError, match="43 letters and digits"):
        WeComSettings(encoding_aes_key=SecretStr("too-short"))
    with pytest.raises(ValidationError, match="not a WeCom user id"):
        WeComSettings(admin_users=("Zhang San",))  # a name, not the account
    settings = WeComSettings(
        corp_id=CORP_ID,
        agent_id=AGENT_ID,
        secret=SecretStr(SECRET),
        token=SecretStr(TOKEN),
        encoding_aes_key=SecretStr(AES_KEY),
        api_base_url="https://qyapi.weixin.qq.com/",
    )
    assert settings.configured
    assert settings.api_base_url == "https://qyapi.weixin.qq.com"
    for secret in (SECRET, TOKEN, AES_KEY):
        assert secret not in repr(settings)
    assert not WeComSettings().configured


# ---- the weekly digest ----------------------------------------------------------------------------


async def test_the_weekly_digest_is_sent_with_its_chart_to_the_admin_users_once(
    settings: Settings, clock: ManualClock, demo_templates: DemoTemplates, wecom: FakeWeCom
) -> None:
    section = {
        "corp_id": CORP_ID,
        "agent_id": AGENT_ID,
        "secret": SECRET,
        "token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "api_base_url": wecom.url,
        "admin_users": [SAM, TINA],
    }
    digest = with_weekly_digest(settings, "wecom", section)
    async with after_digest_rounds(WeComChannel.for_app, digest, clock, demo_templates) as app:
        [sent] = [call for call in wecom.calls_to("message/send") if call.body.get("msgtype") == "image"]
        assert sent.body["touser"] == f"{SAM}|{TINA}"  # one message to both admins
        for admin_user in (SAM, TINA):
            *summary, picture = wecom.chat(admin_user)
            text = "\n".join(message.text for message in summary)
            assert "Your weekly lock digest" in text
            assert "Press the button" not in text
            assert picture.msgtype == "image"
            assert picture.safe == 0  # the admins may forward the chart
            assert wecom.media[picture.body["media_id"]].startswith(b"\x89PNG")
        assert await digest_notices(app) == 0
