"""The Feishu channel on the real lark-oapi, against a fake Feishu open platform on 127.0.0.1.

Feishu's side is ``tests.fakes.feishu_api``: events go to the app encrypted and signed over HTTP (webhook
mode) or as protobuf frames over the long connection (websocket mode), and the SDK's API calls reach the
fake, which records them. The tests read like a chat: a person writes or presses, and the test reads what
the bot sent to their private chat, or to the admin group.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot import admin, demo
from bot.app import App
from bot.channel_settings import FeishuSettings
from bot.clock import ManualClock
from bot.config import Settings
from bot.errors import ConfigError
from bot.handlers.base import configured_channels
from bot.handlers.feishu import FeishuChannel, verified_email
from bot.logs import configure as configure_logging
from bot.logs import secrets_of
from bot.serve import serve
from bot.storage.models import Conversation
from tests.databases import DemoTemplates
from tests.fakes.feishu_api import (
    ADMIN_CHAT,
    APP_ID,
    APP_SECRET,
    ENCRYPT_KEY,
    TENANT,
    VERIFICATION_TOKEN,
    FakeFeishu,
    FeishuSender,
    Json,
    Message,
    card_action,
    encrypt,
    menu_event,
    message_event,
    p2p_of,
    url_verification,
)
from tests.handlers.common import (
    after_digest_rounds,
    code,
    digest_notices,
    file_for,
    free_port,
    request_of,
    routes_served,
    with_weekly_digest,
)

ALICE, BOB, FRANK, KIM, SAM, TINA = "ou_alice1", "ou_bob1", "ou_frank1", "ou_kim1", "ou_sam1", "ou_tina1"
PEOPLE = {ALICE: "alice", BOB: "bob", FRANK: "frank", KIM: "kim", SAM: "sam", TINA: "tina"}


def elements(message: Message) -> list[Json]:
    return list(message.content.get("body", {}).get("elements", [])) if message.msg_type == "interactive" else []


def text_of(message: Message) -> str:
    """What a person reads on a card; an image reads as ``[image]``."""
    if message.msg_type == "image":
        return "[image]"
    return "\n".join(e["text"]["content"] for e in elements(message) if e["tag"] == "div")


def buttons_of(message: Message) -> list[Json]:
    return [e for e in elements(message) if e["tag"] == "button"]


def labels_of(message: Message) -> list[str]:
    return [button["text"]["content"] for button in buttons_of(message)]


def code_form(message: Message) -> Json | None:
    return next((e for e in elements(message) if e["tag"] == "form"), None)


Deliver = Callable[[Json], Awaitable[None]]


@dataclass
class FeishuChat:
    """A tenant talking to the bot: people write, press buttons and fill the code form; the test reads chats."""

    feishu: FakeFeishu
    app: App
    deliver_event: Deliver
    settled: Callable[[], Awaitable[None]]

    async def send(self, event: Json) -> None:
        await self.deliver_event(event)
        await self.settled()

    async def say(self, person: str, text: str) -> list[Message]:
        """Write to the bot in the private chat; what it sent back."""
        before = len(self.chat(person))
        await self.send(message_event(person, text))
        return self.chat(person)[before:]

    def chat(self, person: str) -> list[Message]:
        return self.feishu.chat(p2p_of(person))

    def said(self, person: str) -> str:
        return "\n".join(text_of(message) for message in self.chat(person))

    def last(self, person: str) -> Message:
        return self.chat(person)[-1]

    async def press(self, person: str, label: str, *, chat: str | None = None) -> Json:
        """Press the newest button with this label in a chat (the person's private chat unless told)."""
        for message in reversed(self.feishu.chat(chat or p2p_of(person))):
            for button in buttons_of(message):
                if button["text"]["content"].casefold() == label.casefold():
                    event = card_action(person, message, button["behaviors"][0]["value"])
                    await self.send(event)
                    return event
        raise AssertionError(f"no button {label!r} in {chat or p2p_of(person)}")

    async def enter_code(self, person: str, code: str) -> None:
        """Type the code into the newest card's password field and submit the form."""
        for message in reversed(self.chat(person)):
            form = code_form(message)
            if form is not None:
                submit = next(e for e in form["elements"] if e["tag"] == "button")
                assert next(e for e in form["elements"] if e["tag"] == "input")["input_type"] == "password"
                await self.send(card_action(person, message, submit["behaviors"][0]["value"], form={"code": code}))
                return
        raise AssertionError(f"no code form in the chat with {person}")

    def cards(self) -> list[Message]:
        return self.feishu.chat(ADMIN_CHAT)


def use_feishu(app: App, feishu: FakeFeishu, **changes: Any) -> None:
    values: dict[str, Any] = {
        "app_id": APP_ID,
        "app_secret": SecretStr(APP_SECRET),
        "verification_token": SecretStr(VERIFICATION_TOKEN),
        "encrypt_key": SecretStr(ENCRYPT_KEY),
        "mode": "webhook",
        "api_base_url": feishu.base_url,
        "admin_chat_id": ADMIN_CHAT,
        **changes,
    }
    app.settings = app.settings.model_copy(update={"feishu": FeishuSettings.model_validate(values)})


@pytest.fixture
async def feishu() -> AsyncIterator[FakeFeishu]:
    fake = FakeFeishu()
    await fake.start()
    for open_id, name in PEOPLE.items():
        fake.add_person(open_id, name)
    yield fake
    await fake.stop()


@dataclass
class Webhook:
    channel: FeishuChannel
    sender: FeishuSender


@pytest.fixture
async def webhook(app: App, feishu: FakeFeishu, clock: ManualClock) -> AsyncIterator[Webhook]:
    """The channel's own route on an aiohttp server of its own; Feishu's timestamps come from the test's clock."""
    use_feishu(app, feishu)
    channel = FeishuChannel.for_app(app)
    async with routes_served(channel) as port:
        await channel.start()
        yield Webhook(
            channel, FeishuSender(f"http://127.0.0.1:{port}/feishu/events", now=lambda: clock.now().timestamp())
        )
        await channel.stop()


@pytest.fixture
def chat(app: App, feishu: FakeFeishu, webhook: Webhook) -> FeishuChat:
    async def deliver(event: Json) -> None:
        sent = await webhook.sender.send(event)
        assert sent.status == 200, sent.body

    return FeishuChat(feishu, app, deliver, webhook.channel.settled)


def refusals_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Why lark-oapi refused events, from its error lines (which is what they are), then an empty log."""
    found = [r.getMessage().rpartition("err: ")[2] for r in caplog.records if r.name == "Lark" and "failed" in r.msg]
    caplog.clear()
    return found


async def conversations(app: App) -> int:
    async with app.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Conversation)) or 0)


# ---- an employee in the private chat --------------------------------------------------------------


async def test_alice_is_linked_by_her_mailbox_asks_why_and_unlocks_with_the_code_form(chat: FeishuChat) -> None:
    app, feishu = chat.app, chat.feishu
    said = await chat.say(ALICE, "hello")
    assert [call.path for call in feishu.calls_to("user")] == [f"/open-apis/contact/v3/users/{ALICE}"]
    assert await app.engine.is_linked("feishu", TENANT, ALICE)
    assert "Hi alice" in text_of(said[0])
    assert "Why am I locked?" in labels_of(said[-1])

    await chat.press(ALICE, "Why am I locked?")
    assert "wrong password" in text_of(chat.last(ALICE)).lower()

    said = await chat.say(ALICE, "unlock me")
    assert "6-digit code" in text_of(said[-1])
    form = code_form(said[-1])
    assert form is not None
    assert [e["text"]["content"] for e in form["elements"] if e["tag"] == "button"] == ["Send"]

    right = await code(app, "alice")
    await chat.enter_code(ALICE, right)
    assert "Done: your CRM account is unlocked." in text_of(chat.last(ALICE))
    assert not (await app.crm.lock_status("alice")).locked
    # The code went through the form only: it is in no message the bot sent.
    assert all(right not in json.dumps(call.body) for call in feishu.calls)
    assert len(feishu.calls_to("user")) == 1  # linked once, not looked up again
    assert len(feishu.calls_to("token")) == 1  # one tenant token for all of it
    assert {call.token for call in feishu.calls if call.kind != "token"} == feishu.tokens


async def test_a_wrong_code_keeps_the_form(chat: FeishuChat) -> None:
    await chat.say(ALICE, "unlock me")
    await chat.enter_code(ALICE, "000000")
    assert "That code isn't right" in text_of(chat.last(ALICE))
    assert code_form(chat.last(ALICE)) is not None


@pytest.mark.parametrize(
    "status",
    [{"mailbox": False}, {"is_resigned": True}, {"is_frozen": True}, {"is_activated": False}, {"is_exited": True}],
    ids=["no-enterprise-mailbox", "resigned", "frozen", "not-activated", "exited"],
)
async def test_only_an_active_member_s_enterprise_mailbox_links(chat: FeishuChat, status: dict[str, bool]) -> None:
    chat.feishu.add_person("ou_carol1", "carol", **status)
    await chat.say("ou_carol1", "why am I locked")
    assert not await chat.app.engine.is_linked("feishu", TENANT, "ou_carol1")
    assert "I don't know which CRM account is yours" in chat.said("ou_carol1")
    assert "licence" not in chat.said("ou_carol1").lower()


async def test_someone_feishu_does_not_vouch_for_links_with_a_link_code(chat: FeishuChat) -> None:
    chat.feishu.add_person("ou_kim2", "kim", mailbox=False)
    invitation = await admin.invite(chat.app, "kim", by="test")
    said = await chat.say("ou_kim2", invitation.issued.code)
    assert "kim" in "\n".join(text_of(message) for message in said)
    assert await chat.app.engine.is_linked("feishu", TENANT, "ou_kim2")
    await chat.say("ou_kim2", "hello")
    assert len(chat.feishu.calls_to("user")) == 1  # not asked about again once linked


def test_what_feishu_vouches_for() -> None:
    from lark_oapi.api.contact.v3 import User

    active = {"is_activated": True, "is_frozen": False, "is_resigned": False, "is_exited": False}
    person = {"enterprise_email": "kim@example.com", "email": "kim@example.org", "status": active}
    assert verified_email(User(person)) == "kim@example.com"
    assert verified_email(User({**person, "enterprise_email": None})) is None  # the admin-typed e-mail: never
    assert verified_email(User({**person, "status": {**active, "is_resigned": True}})) is None
    assert verified_email(User({"enterprise_email": "kim@example.com"})) is None  # no status: not vouched for


async def test_the_enrolment_qr_code_is_sent_as_an_image_to_the_private_chat(chat: FeishuChat) -> None:
    await admin.reset_totp(chat.app, "alice", by="cli:sam")
    await chat.say(ALICE, "unlock me")
    await chat.press(ALICE, "Set up my authenticator app")
    [picture] = [message for message in chat.chat(ALICE) if message.msg_type == "image"]
    assert chat.feishu.images[picture.content["image_key"]].startswith(b"\x89PNG")
    assert "Scan this QR code" in chat.said(ALICE)
    assert code_form(chat.last(ALICE)) is not None


async def test_menu_items_are_commands_and_other_messages_have_no_text(chat: FeishuChat) -> None:
    await chat.send(menu_event(KIM, "menu"))  # Feishu says nothing of a person's language: the bot's default
    assert "你想做什么？" in text_of(chat.last(KIM))
    await chat.say(ALICE, "hello")
    await chat.send(menu_event(ALICE, "unlock"))
    assert "6-digit code" in text_of(chat.last(ALICE))
    await chat.send(menu_event(ALICE, "cancel"))
    assert "OK, I've stopped there." in text_of(chat.last(ALICE))
    before = len(chat.chat(ALICE))
    await chat.send(message_event(ALICE, "", message_type="image"))
    assert "I didn't get any text" in text_of(chat.chat(ALICE)[before])


async def test_group_chatter_is_not_for_the_bot(chat: FeishuChat) -> None:
    await chat.send(message_event(SAM, "lunch at noon?", chat_id=ADMIN_CHAT))
    assert chat.feishu.calls == []
    assert await conversations(chat.app) == 0


# ---- admins in the admin group --------------------------------------------------------------------


async def bob_asks_for_an_unlock(chat: FeishuChat) -> int:
    await chat.say(BOB, "unlock me")
    await chat.enter_code(BOB, await code(chat.app, "bob"))
    await chat.press(BOB, "Yes")
    await chat.say(BOB, "Chengdu")
    await chat.press(BOB, "Yes, trust this address")
    request = await request_of(chat.app, "bob")
    assert f"#{request.id}" in text_of(chat.last(BOB))
    return request.id


async def deliver(chat: FeishuChat, channel: FeishuChannel) -> None:
    await channel.deliver()
    await channel.settled()


async def test_sam_approves_bobs_request_on_the_card_and_bob_is_told(chat: FeishuChat, webhook: Webhook) -> None:
    await chat.say(SAM, "hello")
    request_id = await bob_asks_for_an_unlock(chat)
    await deliver(chat, webhook.channel)
    [card] = chat.cards()  # in the bot's default language: the group is shared
    assert f"解锁申请 #{request_id}，来自 bob" in text_of(card)
    assert labels_of(card) == ["批准", "拒绝"]
    assert [button["type"] for button in buttons_of(card)] == ["primary", "danger"]

    await chat.press(SAM, "批准", chat=ADMIN_CHAT)
    asked = chat.last(SAM)  # approving an unlock takes the approver's own code, asked privately
    assert "approve this request" in text_of(asked)
    assert code_form(asked) is not None
    assert len(chat.cards()) == 1  # nothing about codes in the group
    await chat.enter_code(SAM, await code(chat.app, "sam"))
    assert f"Approved: request #{request_id} for bob" in chat.said(SAM)
    [patched] = chat.feishu.calls_to("patch")
    assert patched.path.endswith(card.message_id)
    assert "由 sam" in text_of(card)
    assert "等待处理" not in text_of(card)
    assert labels_of(card) == []

    await chat.app.housekeeper.tick()
    await deliver(chat, webhook.channel)
    assert f"sam approved your request #{request_id}" in chat.said(BOB)
    assert not (await chat.app.crm.lock_status("bob")).locked
    edits = card.edits
    await deliver(chat, webhook.channel)
    assert card.edits == edits  # then left alone


async def test_a_non_admin_press_on_a_card_is_refused(chat: FeishuChat, webhook: Webhook, clock: ManualClock) -> None:
    await file_for(chat.app, "bob", clock, "feishu")
    await deliver(chat, webhook.channel)
    await chat.press(KIM, "批准", chat=ADMIN_CHAT)
    assert "这个操作只有管理员可以使用。" in chat.said(KIM)  # to kim alone, in the bot's default language
    await chat.say(KIM, "hello")
    await chat.press(KIM, "批准", chat=ADMIN_CHAT)
    assert "That's only for admins." in text_of(chat.last(KIM))
    assert (await request_of(chat.app, "bob")).status == "pending"
    assert chat.feishu.calls_to("patch") == []
    assert len(chat.cards()) == 1


async def test_deny_asks_the_reason_privately_and_bob_hears_it(
    chat: FeishuChat, webhook: Webhook, clock: ManualClock
) -> None:
    await chat.say(BOB, "hello")  # bob is on Feishu, so he is told there
    request_id = await file_for(chat.app, "bob", clock, "feishu")
    await deliver(chat, webhook.channel)
    await chat.press(TINA, "拒绝", chat=ADMIN_CHAT)
    assert f"拒绝申请 #{request_id} 的理由是什么？" in text_of(chat.last(TINA))
    await chat.say(TINA, '请先联系 IT：Please call IT first <at user_id="all"></at>')
    assert f"已拒绝：bob 的申请 #{request_id}" in chat.said(TINA)
    await deliver(chat, webhook.channel)  # a reason typed in a chat is on the card by the next round
    [card] = chat.cards()
    assert "由 tina" in text_of(card)
    assert labels_of(card) == []
    await chat.app.housekeeper.tick()
    await deliver(chat, webhook.channel)
    assert "tina declined your request" in chat.said(BOB)
    told = next(m for m in chat.chat(BOB) if "Please call IT first" in text_of(m))
    assert elements(told)[0]["text"]["tag"] == "plain_text"  # what people type never becomes markup or a mention


# ---- forged, replayed and stale callbacks -----------------------------------------------------------


async def test_forged_events_are_refused_and_nothing_is_processed(
    chat: FeishuChat, webhook: Webhook, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    request_id = await file_for(chat.app, "bob", clock, "feishu")
    await deliver(chat, webhook.channel)
    [card] = chat.cards()
    before = len(chat.feishu.calls)
    sender = webhook.sender
    hello = message_event(ALICE, "hello")
    press = card_action(SAM, card, {"action": f"approve:{request_id}"})
    refused = [
        await sender.send(message_event(ALICE, "hello", token="not-the-token")),  # wrong verification token
        await sender.send(press, sign_with="not-the-key"),  # bad signature
        await sender.send(hello, key="not-the-key"),  # encrypted (and signed) with another key
        await sender.send(press, raw=json.dumps({"encrypt": "bm90IGNpcGhlcnRleHQ="}).encode()),  # not ciphertext
        await sender.send(hello, signed=False),  # no signature at all
        await sender.send(press, raw=json.dumps(press).encode(), signed=False),  # in clear and not signed
    ]
    assert [sent.status for sent in refused] == [500] * 6
    stale = await sender.send(press, timestamp=int(clock.now().timestamp()) - 301)
    assert stale.status == 401
    await webhook.channel.settled()
    assert chat.feishu.calls[before:] == []  # nothing was done for any of them
    assert (await request_of(chat.app, "bob")).status == "pending"
    assert await conversations(chat.app) == 0
    assert not await chat.app.engine.is_linked("feishu", TENANT, ALICE)
    assert len(refusals_logged(caplog)) == 6


async def test_a_replayed_event_is_processed_once_even_after_a_restart(
    chat: FeishuChat, webhook: Webhook, app: App, clock: ManualClock
) -> None:
    event = message_event(ALICE, "hello")
    for _ in range(2):  # Feishu retries an event it thinks failed
        assert (await webhook.sender.send(event)).status == 200
    await webhook.channel.settled()
    assert len(chat.chat(ALICE)) == 1

    again = FeishuChannel.for_app(app)  # a new process: the engine's store of events remembers
    async with routes_served(again) as port:
        try:
            sent = await FeishuSender(f"http://127.0.0.1:{port}/feishu/events", now=webhook.sender.now).send(event)
            assert sent.status == 200
            await again.settled()
        finally:
            await again.stop()
            assert len(chat.chat(ALICE)) == 1


async def test_the_request_url_is_verified_with_the_token(webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    answer = await webhook.sender.send(url_verification("3eZbrw1aB10"))
    assert answer.status == 200
    assert answer.json() == {"challenge": "3eZbrw1aB10"}
    assert (await webhook.sender.send(url_verification("x", token="not-the-token"))).status == 500
    body = json.dumps({"encrypt": encrypt(json.dumps(url_verification("y")).encode(), "not-the-key")}).encode()
    assert (await webhook.sender.send({}, raw=body)).status == 500
    assert refusals_logged(caplog) == ["invalid verification_token", "invalid PKCS7 padding"]


# ---- the API side: tokens, failures, check ------------------------------------------------------------


async def test_the_tenant_token_is_renewed_before_it_expires_and_when_feishu_rejects_it(
    chat: FeishuChat, clock: ManualClock
) -> None:
    await chat.say(ALICE, "hello")
    assert len(chat.feishu.calls_to("token")) == 1
    clock.advance(timedelta(hours=1, minutes=51))  # ten minutes before the two hours Feishu gave
    await chat.say(ALICE, "menu")
    assert len(chat.feishu.calls_to("token")) == 2
    chat.feishu.revoke_tokens()
    said = await chat.say(ALICE, "menu")
    assert "What would you like to do?" in text_of(said[-1])
    assert len(chat.feishu.calls_to("token")) == 3


async def test_a_busy_feishu_keeps_a_notification_for_the_next_round(
    chat: FeishuChat, webhook: Webhook, clock: ManualClock
) -> None:
    await chat.say(BOB, "hello")
    request_id = await file_for(chat.app, "bob", clock, "feishu")
    await deliver(chat, webhook.channel)
    await chat.press(TINA, "拒绝", chat=ADMIN_CHAT)
    await chat.say(TINA, "不行")
    await chat.app.housekeeper.tick()
    chat.feishu.fail_next("send", 99991400, msg="request trigger frequency limit")
    await deliver(chat, webhook.channel)
    chat.feishu.break_next("send")
    await deliver(chat, webhook.channel)
    assert "tina declined" not in chat.said(BOB)
    await deliver(chat, webhook.channel)
    assert f"tina declined your request #{request_id}" in chat.said(BOB)


async def test_check_says_whether_the_credentials_work(app: App, feishu: FakeFeishu) -> None:
    use_feishu(app, feishu)
    assert await FeishuChannel.for_app(app).check() is None
    use_feishu(app, feishu, app_secret=SecretStr("wrong"))
    problem = await FeishuChannel.for_app(app).check()
    assert problem is not None
    assert "10014" in problem
    assert "wrong" not in problem


# ---- serve(), in each mode ------------------------------------------------------------------------------


async def wait_for_health(port: int, serving: asyncio.Task[None]) -> None:
    async with aiohttp.ClientSession() as client:
        while not serving.done():
            try:
                async with client.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectorError:
                pass
            await asyncio.wait({serving}, timeout=0.02)
    serving.result()
    raise AssertionError("serve() stopped before it was ready")


async def whole_conversation(chat: FeishuChat) -> None:
    """Link, why, unlock with a code, a request, approval on the card, the decision pushed to bob."""
    feishu, app = chat.feishu, chat.app
    await chat.say(ALICE, "why am I locked?")
    await feishu.wait_for(lambda: "wrong password" in chat.said(ALICE).lower(), "alice's answer")
    await chat.say(ALICE, "unlock me")
    await feishu.wait_for(lambda: code_form(chat.last(ALICE)) is not None, "alice's code form")
    await chat.enter_code(ALICE, await code(app, "alice"))
    await feishu.wait_for(lambda: "unlocked" in text_of(chat.last(ALICE)), "alice unlocked")

    await chat.say(FRANK, "unlock me")
    await feishu.wait_for(lambda: chat.chat(FRANK) and code_form(chat.last(FRANK)) is not None, "frank's code form")
    await chat.enter_code(FRANK, await code(app, "frank"))
    await feishu.wait_for(lambda: len(chat.cards()) == 1, "the request card")
    await chat.press(SAM, "批准", chat=ADMIN_CHAT)
    await feishu.wait_for(lambda: chat.chat(SAM) and code_form(chat.last(SAM)) is not None, "sam asked for a code")
    await chat.enter_code(SAM, await code(app, "sam"))
    await feishu.wait_for(lambda: "由 sam" in text_of(chat.cards()[0]), "the card redrawn")
    await feishu.wait_for(lambda: "sam approved your request" in chat.said(FRANK), "frank told")
    await feishu.wait_for(lambda: "is done" in chat.said(FRANK), "frank told it is done")
    assert not (await app.crm.lock_status("frank")).locked


async def test_serve_runs_the_conversation_over_webhooks(
    app: App, feishu: FakeFeishu, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    use_feishu(app, feishu)
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    assert [channel.name for channel in configured_channels(app)] == ["feishu"]
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
    try:
        await wait_for_health(port, serving)
        sender = FeishuSender(f"http://127.0.0.1:{port}/feishu/events", now=lambda: app.clock.now().timestamp())

        async def post(event: Json) -> None:
            assert (await sender.send(event)).status == 200

        async def nothing() -> None:
            return None

        await whole_conversation(FeishuChat(feishu, app, post, nothing))
        forged = await sender.send(message_event(KIM, "hello"), sign_with="not-the-key")
        assert forged.status == 500
        assert refusals_logged(caplog) == ["signature verification failed"]
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=10)
    assert not [call for call in feishu.calls_to("send") if call.body["receive_id"] == KIM]
    assert not feishu.calls_to("endpoint")  # no long connection in webhook mode


async def test_serve_runs_the_conversation_over_the_long_connection(app: App, feishu: FakeFeishu) -> None:
    port = free_port()
    use_feishu(app, feishu, mode="websocket", verification_token=None, encrypt_key=None)
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
    acks: list[Json] = []
    try:
        await wait_for_health(port, serving)  # ready only once the long connection is up

        async def push(event: Json) -> None:
            acks.append(await feishu.push(event))
            assert acks[-1]["code"] == 200

        async def nothing() -> None:
            return None

        await whole_conversation(FeishuChat(feishu, app, push, nothing))
        # A card callback sent as a CARD frame (lark-oapi drops those) is handled as well.
        said = len(feishu.chat(p2p_of(KIM)))
        answer = await feishu.push(menu_event(KIM, "menu"), frame_type="card")
        assert answer["code"] == 200
        await feishu.wait_for(lambda: len(feishu.chat(p2p_of(KIM))) > said, "kim's menu")
        async with aiohttp.ClientSession() as client, client.post(f"http://127.0.0.1:{port}/feishu/events") as response:
            assert response.status == 404  # nothing listens for Feishu over HTTP in this mode
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=10)
    [endpoint] = feishu.calls_to("endpoint")
    assert endpoint.body == {"AppID": APP_ID}
    card_acks = [ack for ack in acks if ack["data"] is not None]
    assert card_acks
    assert all(ack["data"] == {} for ack in card_acks)


async def test_the_long_connection_comes_back_after_feishu_drops_it(app: App, feishu: FakeFeishu) -> None:
    use_feishu(app, feishu, mode="websocket", verification_token=None, encrypt_key=None)
    channel = FeishuChannel.for_app(app)
    assert not await channel.connected()
    await channel.start()
    try:
        assert await channel.connected()
        await feishu.drop_connection()
        await feishu.wait_for(lambda: len(feishu.calls_to("endpoint")) == 2, "a second endpoint call")
        await feishu.push(message_event(ALICE, "hello"))
        await channel.settled()
        await feishu.wait_for(lambda: feishu.chat(p2p_of(ALICE)), "alice's answer")
    finally:
        await channel.stop()
    assert not await channel.connected()


async def test_refused_credentials_stop_the_long_connection_at_start(app: App, feishu: FakeFeishu) -> None:
    use_feishu(app, feishu, mode="websocket", app_secret=SecretStr("wrong"), verification_token=None, encrypt_key=None)
    channel = FeishuChannel.for_app(app)
    with pytest.raises(Exception, match="10014"):
        await channel.start()
    await channel.stop()


async def test_at_debug_level_no_secret_token_or_code_reaches_the_log(app: App, feishu: FakeFeishu) -> None:
    """The long connection with every library logging its payloads: alice unlocks with the code form."""
    port = free_port()
    use_feishu(app, feishu, mode="websocket", verification_token=None, encrypt_key=None)
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    assert app.settings.security.secret_key is not None
    used = [APP_SECRET, app.settings.security.secret_key.get_secret_value(), demo.demo_secret("alice"), "fake-ticket"]
    stream = io.StringIO()
    logs = configure_logging(2, stream=stream)
    logs.add_secrets(secrets_of(app.settings))
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
    try:
        await wait_for_health(port, serving)
        chat = FeishuChat(feishu, app, lambda event: _pushed(feishu, event), _nothing)
        await chat.say(ALICE, "unlock me")
        await feishu.wait_for(lambda: chat.chat(ALICE) and code_form(chat.last(ALICE)) is not None, "the code form")
        used.append(await code(app, "alice"))
        await chat.enter_code(ALICE, used[-1])
        await feishu.wait_for(lambda: "unlocked" in text_of(chat.last(ALICE)), "alice unlocked")
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=10)
        logs.close()
    used += sorted(feishu.tokens)
    log = stream.getvalue()
    assert "/callback/ws/endpoint" in log  # the libraries did log their requests
    for secret in used:
        found = re.search(rf"(?<!\d){secret}(?!\d)", log) if secret.isdigit() else secret in log
        assert not found, f"{secret!r} is in the log"


async def _pushed(feishu: FakeFeishu, event: Json) -> None:
    assert (await feishu.push(event))["code"] == 200


async def _nothing() -> None:
    return None


# ---- settings ----------------------------------------------------------------------------------------


def test_feishu_settings_name_what_each_mode_needs(app: App) -> None:
    from bot.config import load_settings

    base = {"UNLOCKBOT_FEISHU__APP_ID": "cli_a1b2c3", "UNLOCKBOT_FEISHU__APP_SECRET": "hidden-secret-1"}
    with pytest.raises(ConfigError, match=r"mode = 'webhook' needs \[feishu\] verification_token and encrypt_key"):
        load_settings(environ={**base, "UNLOCKBOT_FEISHU__MODE": "webhook"})
    with pytest.raises(ConfigError, match=r"needs \[feishu\] encrypt_key"):
        load_settings(
            environ={**base, "UNLOCKBOT_FEISHU__MODE": "webhook", "UNLOCKBOT_FEISHU__VERIFICATION_TOKEN": "t"}
        )
    with pytest.raises(ConfigError, match=r"feishu.admin_chat_id"):
        load_settings(environ={**base, "UNLOCKBOT_FEISHU__ADMIN_CHAT_ID": "#admins"})
    with pytest.raises(ConfigError, match=r"feishu.api_base_url"):
        load_settings(environ={**base, "UNLOCKBOT_FEISHU__API_BASE_URL": "https://open.feishu.cn/open-apis"})
    with pytest.raises(ConfigError, match=r"app_id needs app_secret"):
        load_settings(environ={"UNLOCKBOT_FEISHU__APP_ID": "cli_a1b2c3"})
    settings = load_settings(environ=base)
    assert settings.feishu.mode == "websocket"
    assert "hidden" not in repr(settings.feishu)
    assert configured_channels(app) == []


# ---- the weekly digest --------------------------------------------------------------------------


async def test_the_weekly_digest_is_posted_with_its_chart_in_the_admin_chat_once(
    settings: Settings, clock: ManualClock, demo_templates: DemoTemplates, feishu: FakeFeishu
) -> None:
    section = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "verification_token": VERIFICATION_TOKEN,
        "encrypt_key": ENCRYPT_KEY,
        "mode": "webhook",
        "api_base_url": feishu.base_url,
        "admin_chat_id": ADMIN_CHAT,
    }
    digest = with_weekly_digest(settings, "feishu", section)
    async with after_digest_rounds(FeishuChannel.for_app, digest, clock, demo_templates) as app:
        summary, picture = feishu.chat(ADMIN_CHAT)
        assert "Your weekly lock digest" in text_of(summary)
        assert "Press the button" not in text_of(summary)
        assert buttons_of(summary) == []
        assert picture.msg_type == "image"
        assert feishu.images[picture.content["image_key"]].startswith(b"\x89PNG")
        assert await digest_notices(app) == 0
