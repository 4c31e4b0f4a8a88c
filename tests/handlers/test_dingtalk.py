"""The DingTalk channel on dingtalk-stream's client and our open-API calls, against a fake DingTalk on 127.0.0.1.

DingTalk's side is ``tests.fakes.dingtalk_api``. In http mode the test posts what the robot posts,
signed, to the channel's route; in stream mode the fake pushes the same over the Stream websocket the
channel opened. Either way the channel answers through the fake's open API, which keeps every chat as
its people see it. The tests read like a chat: a person writes or presses, the test reads the chat.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import func, select

from bot import admin, demo
from bot.app import App
from bot.channel_settings import DingTalkSettings
from bot.clock import ManualClock
from bot.config import Settings
from bot.errors import ConfigError
from bot.handlers.base import configured_channels
from bot.handlers.dingtalk import DingTalkChannel
from bot.logs import configure as configure_logging
from bot.logs import secrets_of
from bot.serve import serve
from bot.storage.models import Conversation
from tests.databases import DemoTemplates
from tests.fakes.dingtalk_api import (
    ADMIN_GROUP,
    CARD_TOPIC,
    CHATBOT_TOPIC,
    CLIENT_ID,
    CLIENT_SECRET,
    CORP,
    DingTalkSender,
    FakeDingTalk,
    Posted,
    message,
    press,
)
from tests.handlers.common import (
    after_digest_rounds,
    code,
    digest_notices,
    file_for,
    free_port,
    request_of,
    with_weekly_digest,
)

PEOPLE = {"alice": "alice", "bob": "bob", "frank": "frank", "kim": "kim", "sam": "sam", "tina": "tina"}
MODES = ["http", "stream"]
# Seconds after which a wait that should end on an event fails instead of hanging; never a measure of speed.
HANG_GUARD = 30


async def until_connected(channel: DingTalkChannel) -> None:
    """Until the channel's Stream connection is up (the guard only keeps a broken test from hanging)."""
    deadline = time.monotonic() + HANG_GUARD
    while not await channel.connected():
        if time.monotonic() > deadline:
            raise AssertionError("the Stream connection never came up")
        await asyncio.sleep(0.01)


def use_dingtalk(app: App, fake: FakeDingTalk, *, locale: str = "en", **changes: Any) -> None:
    values: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(CLIENT_SECRET),
        "api_base_url": fake.url,
        "oapi_base_url": fake.url,
        "mode": "http",
        "admin_conversation_id": ADMIN_GROUP,
        **changes,
    }
    bot = app.settings.bot.model_copy(update={"default_locale": locale})
    section = DingTalkSettings.model_validate(values)
    app.settings = app.settings.model_copy(update={"dingtalk": section, "bot": bot})


@dataclass
class DingTalkChat:
    """An organisation talking to the robot, over http or the Stream websocket; the test reads the chats."""

    channel: DingTalkChannel
    fake: FakeDingTalk
    sender: DingTalkSender | None  # None: stream mode
    app: App

    async def deliver_callback(self, topic: str, body: dict[str, Any]) -> None:
        if self.sender is None:
            ack = await self.fake.push(topic, body)
            assert ack["code"] == 200, ack
        else:
            sent = await self.sender.post(body)
            assert sent.status == 200, sent.body
        await self.channel.settled()

    async def say(self, user: str, text: str, *, group: str = "") -> list[Posted]:
        """Write to the robot (privately, or @-mentioning it in ``group``); what it put in that chat."""
        where = group or user
        before = len(self.fake.chat(where))
        await self.deliver_callback(CHATBOT_TOPIC, message(user, text, group=group))
        return self.fake.chat(where)[before:]

    async def press(self, user: str, label: str, *, where: str = "") -> Posted:
        """Press the button with this label on the newest card that has one (in the person's chat unless told)."""
        card = self.fake.last_card(where or user, label)
        await self.deliver_callback(CARD_TOPIC, press(user, card, label))
        return card

    def said(self, user: str) -> str:
        return self.fake.said(user)

    def last(self, where: str) -> Posted:
        return self.fake.chat(where)[-1]

    async def deliver(self) -> None:
        await self.channel.deliver()
        await self.channel.settled()

    def cards(self) -> list[Posted]:
        return [posted for posted in self.fake.chat(ADMIN_GROUP) if posted.kind == "card"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDingTalk]:
    dingtalk = FakeDingTalk()
    await dingtalk.start()
    for user_id, name in PEOPLE.items():
        dingtalk.add_person(user_id, name)
    yield dingtalk
    await dingtalk.stop()


@asynccontextmanager
async def running_channel(app: App, fake: FakeDingTalk, mode: str) -> AsyncIterator[DingTalkChat]:
    """The channel in ``mode``: http on an aiohttp server of its own, stream over the fake's websocket."""
    use_dingtalk(app, fake, mode=mode)
    channel = DingTalkChannel.for_app(app)
    runner = None
    sender = None
    if mode == "http":
        server = web.Application()
        channel.add_routes(server)
        runner = web.AppRunner(server, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        sender = DingTalkSender(f"http://127.0.0.1:{port}/dingtalk/events")
    await channel.start()
    if mode == "stream":
        await until_connected(channel)
    try:
        yield DingTalkChat(channel, fake, sender, app)
    finally:
        await channel.stop()
        if runner is not None:
            await runner.cleanup()


@pytest.fixture(params=MODES)
async def chat(request: pytest.FixtureRequest, app: App, fake: FakeDingTalk) -> AsyncIterator[DingTalkChat]:
    async with running_channel(app, fake, request.param) as running:
        yield running


@pytest.fixture
async def http_chat(app: App, fake: FakeDingTalk) -> AsyncIterator[tuple[DingTalkChat, DingTalkSender]]:
    """http mode only, where every callback is signed."""
    async with running_channel(app, fake, "http") as running:
        assert running.sender is not None
        yield running, running.sender


async def conversations_of(app: App, user: str) -> int:
    async with app.database.session() as session:
        found = select(func.count()).select_from(Conversation).where(Conversation.user_id == user)
        return int(await session.scalar(found) or 0)


# ---- an employee in the private chat -----------------------------------------------------------


async def test_alice_is_linked_by_org_email_asks_why_and_unlocks_with_a_code(chat: DingTalkChat) -> None:
    app, fake = chat.app, chat.fake
    said = await chat.say("alice", "hello")
    assert [call.body["userid"] for call in fake.calls_to("/topapi/v2/user/get")] == ["alice"]
    assert await app.engine.is_linked("dingtalk", CORP, "alice")
    assert "Hi alice" in said[0].text
    assert said[-1].kind == "card"
    assert "Why am I locked?" in said[-1].labels

    await chat.press("alice", "Why am I locked?")
    assert "wrong password" in chat.said("alice").lower()

    said = await chat.say("alice", "unlock me")
    assert "6-digit code" in "\n".join(posted.text for posted in said)
    right = await code(app, "alice")
    said = await chat.say("alice", right)
    assert "Done: your CRM account is unlocked." in "\n".join(posted.text for posted in said)
    assert not (await app.crm.lock_status("alice")).locked
    assert all(right not in json.dumps(call.body) for call in fake.calls)  # the code is never sent back
    assert len(fake.calls_to("/topapi/v2/user/get")) == 1  # linked once, not looked up again
    sent = fake.calls_to("/v1.0/robot/oToMessages/batchSend") + fake.calls_to(
        "/v1.0/im/v1.0/robot/interactiveCards/send"
    )
    assert all(call.token == fake.calls_to("/v1.0/im/v1.0/robot/interactiveCards/send")[0].token for call in sent)
    assert len(fake.calls_to("/v1.0/oauth2/accessToken")) == 1  # one token, reused


async def test_a_link_code_links_someone_without_an_org_mailbox(chat: DingTalkChat) -> None:
    chat.fake.add_person("u-carol", "carol", org_email="")
    said = await chat.say("u-carol", "why am I locked")
    assert "I don't know which CRM account is yours" in "\n".join(posted.text for posted in said)
    invitation = await admin.invite(chat.app, "carol", by="test")
    said = await chat.say("u-carol", invitation.issued.code)
    assert "carol" in "\n".join(posted.text for posted in said)
    assert await chat.app.engine.is_linked("dingtalk", CORP, "u-carol")
    await chat.say("u-carol", "why am I locked")
    assert "licence" in chat.said("u-carol").lower()


@pytest.mark.parametrize("person", [{"org_email": ""}, {"active": False}], ids=["no-org-mailbox", "not-activated"])
async def test_dingtalk_must_vouch_for_the_org_email(chat: DingTalkChat, person: dict[str, Any]) -> None:
    chat.fake.add_person("u-kim2", "kim", **person)  # kim@example.com is a CRM user, but not vouched for here
    said = await chat.say("u-kim2", "why am I locked")
    assert not await chat.app.engine.is_linked("dingtalk", CORP, "u-kim2")
    assert "I don't know which CRM account is yours" in "\n".join(posted.text for posted in said)


async def test_the_enrolment_qr_code_is_an_image_in_the_private_chat(chat: DingTalkChat) -> None:
    await admin.reset_totp(chat.app, "alice", by="cli:sam")
    await chat.say("alice", "unlock me")
    await chat.press("alice", "Set up my authenticator app")
    assert "Scan this QR code" in chat.said("alice")
    [image] = [posted for posted in chat.fake.chat("alice") if posted.kind == "image"]
    assert image.png.startswith(b"\x89PNG")
    [upload] = chat.fake.calls_to("/media/upload")
    assert upload.body == {"type": "image"}


async def test_a_press_on_a_choice_never_offered_changes_nothing(chat: DingTalkChat, clock: ManualClock) -> None:
    menu = (await chat.say("alice", "hello"))[-1]
    await file_for(chat.app, "bob", clock, "dingtalk")
    before = len(chat.fake.chat("alice"))
    await chat.deliver_callback(CARD_TOPIC, press("kim", menu, "Why am I locked?"))  # someone else's card
    assert len(chat.fake.chat("alice")) == before
    assert "wrong password" not in chat.said("kim").lower()
    # A card action pressed on a reply card is no decision: only request cards carry those.
    forged = Posted("card", card_id=menu.card_id, buttons=[("Approve", "approve:1")])
    await chat.deliver_callback(CARD_TOPIC, press("sam", forged, "Approve"))
    assert (await request_of(chat.app, "bob")).status == "pending"
    assert "approve this request" not in chat.said("sam")


# ---- admins in the admin group -------------------------------------------------------------------


async def bob_asks_for_an_unlock(chat: DingTalkChat) -> int:
    # DingTalk tells nothing of a person's language: what they first write in says it (zh-CN otherwise).
    for someone in ("sam", "tina", "kim"):
        await chat.say(someone, "hello")
    await chat.say("bob", "unlock me")
    await chat.say("bob", await code(chat.app, "bob"))
    await chat.press("bob", "Yes")
    await chat.say("bob", "Chengdu")
    await chat.press("bob", "Yes, trust this address")
    request = await request_of(chat.app, "bob")
    assert f"#{request.id}" in chat.last("bob").text
    return request.id


async def test_sam_approves_bobs_request_in_the_admin_group_and_bob_is_told(chat: DingTalkChat) -> None:
    request_id = await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    [card] = chat.cards()
    assert f"Unlock request #{request_id} from bob" in card.text
    assert card.labels == ["Approve", "Deny"]
    assert card.title == "CRM unlock"

    await chat.press("sam", "Approve", where=ADMIN_GROUP)
    assert "approve this request" in chat.said("sam")  # the approver's own code, asked privately
    assert not [posted for posted in chat.fake.chat(ADMIN_GROUP) if posted is not card]
    await chat.say("sam", await code(chat.app, "sam"))
    assert f"Approved: request #{request_id} for bob" in chat.said("sam")
    await chat.deliver()
    assert "Approved by sam" in card.text
    assert card.labels == []
    assert len(chat.cards()) == 1  # redrawn in place, not posted again

    await chat.app.housekeeper.tick()
    await chat.deliver()
    assert f"sam approved your request #{request_id}" in chat.said("bob")
    assert not (await chat.app.crm.lock_status("bob")).locked
    updates = card.updates
    await chat.deliver()
    assert card.updates == updates  # then left alone


async def test_a_press_by_someone_who_is_no_admin_is_refused(chat: DingTalkChat, clock: ManualClock) -> None:
    request_id = await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    await chat.press("kim", "Approve", where=ADMIN_GROUP)
    assert "That's only for admins." in chat.said("kim")
    chat.fake.add_person("u-mallory", "mallory", org_email="")  # in the group, linked to nobody
    await chat.press("u-mallory", "Approve", where=ADMIN_GROUP)
    assert "只有管理员" in chat.said("u-mallory")  # a stranger who never wrote to the robot: the default language
    assert (await request_of(chat.app, "bob")).status == "pending"
    [card] = chat.cards()
    assert card.updates == 0
    assert f"#{request_id}" in card.text


async def test_deny_asks_the_reason_privately_and_bob_hears_it(chat: DingTalkChat) -> None:
    request_id = await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    await chat.press("tina", "Deny", where=ADMIN_GROUP)
    assert f"Why are you denying request #{request_id}?" in chat.said("tina")
    await chat.say("tina", "Please call IT <first> & **then** ask")
    assert f"Denied: request #{request_id} for bob" in chat.said("tina")
    await chat.deliver()
    [card] = chat.cards()
    assert "Denied by tina" in card.text
    assert "Please call IT <first> & **then** ask" in card.text  # shown as typed, never as markup
    await chat.app.housekeeper.tick()
    await chat.deliver()
    assert "tina declined your request" in chat.said("bob")


async def test_an_admin_asks_in_the_group_and_is_answered_there(chat: DingTalkChat) -> None:
    await chat.say("sam", "hello")
    said = await chat.say("sam", "pending", group=ADMIN_GROUP)
    assert "No requests are waiting" in "\n".join(posted.text for posted in said)
    assert chat.fake.calls_to("/v1.0/robot/groupMessages/send")[0].body["openConversationId"] == ADMIN_GROUP


async def test_a_code_typed_in_the_group_is_refused(chat: DingTalkChat) -> None:
    await chat.say("alice", "unlock me")
    await chat.say("alice", await code(chat.app, "alice"), group=ADMIN_GROUP)
    assert "Please don't send codes where others can read them" in chat.said("alice")
    assert (await chat.app.crm.lock_status("alice")).locked


# ---- delivery: signatures, redelivery, failures ----------------------------------------------------


async def test_a_forged_or_stale_callback_is_refused_and_nothing_is_processed(
    app: App, fake: FakeDingTalk, http_chat: tuple[DingTalkChat, DingTalkSender]
) -> None:
    chat, sender = http_chat
    body = message("alice", "hello")
    forged = await sender.post(body, secret="not-the-app-secret")
    stale = await sender.post(body, timestamp=int(time.time() * 1000) - 3_601_000)
    future = await sender.post(body, timestamp=int(time.time() * 1000) + 3_601_000)
    bare = await sender.post(body, headers={})
    assert [forged.status, stale.status, future.status, bare.status] == [401, 401, 401, 401]
    await chat.channel.settled()
    assert fake.calls == []  # nothing was looked up or sent for any of them
    assert await conversations_of(app, "alice") == 0
    fresh = await sender.post(body, timestamp=int(time.time() * 1000) - 3_000_000)
    assert fresh.status == 200
    await chat.channel.settled()
    assert "Hi alice" in chat.said("alice")


async def test_a_replayed_callback_is_handled_once_and_a_reused_sign_with_another_body_refused(
    http_chat: tuple[DingTalkChat, DingTalkSender],
) -> None:
    chat, sender = http_chat
    stamp = int(time.time() * 1000)
    body = message("alice", "hello")
    assert (await sender.post(body, timestamp=stamp)).status == 200
    assert (await sender.post(body, timestamp=stamp)).status == 200  # DingTalk retrying: answered once
    await chat.channel.settled()
    assert len(chat.fake.chat("alice")) == 1  # the greeting with the menu, once
    # The sign covers only the timestamp: the same headers on another body are someone else's doing.
    borrowed = await sender.post(message("sam", "approve 1"), timestamp=stamp)
    assert borrowed.status == 401
    await chat.channel.settled()
    assert chat.fake.chat("sam") == []


async def test_a_redelivered_stream_message_is_handled_once_even_after_a_restart(app: App, fake: FakeDingTalk) -> None:
    use_dingtalk(app, fake, mode="stream")
    first = DingTalkChannel.for_app(app)
    await first.start()
    await until_connected(first)
    body = message("alice", "hello")
    await fake.push(CHATBOT_TOPIC, body, message_id="frame-1")
    await fake.push(CHATBOT_TOPIC, body, message_id="frame-1")
    await first.settled()
    assert len(fake.chat("alice")) == 1
    await first.stop()
    again = DingTalkChannel.for_app(app)  # a new process: only the engine's store of events remembers
    await again.start()
    await until_connected(again)
    await fake.push(CHATBOT_TOPIC, body, message_id="frame-2")
    await again.settled()
    await again.stop()
    assert len(fake.chat("alice")) == 1


async def test_the_stream_answers_pings_reconnects_and_reports_its_connection(app: App, fake: FakeDingTalk) -> None:
    use_dingtalk(app, fake, mode="stream")
    channel = DingTalkChannel.for_app(app)
    assert not await channel.connected()
    await channel.start()
    await until_connected(channel)
    ack = await fake.ping()
    assert ack["code"] == 200
    assert json.loads(ack["data"])["opaque"].startswith("opaque-")
    [opened] = fake.calls_to("/v1.0/gateway/connections/open")
    assert opened.body["clientId"] == CLIENT_ID
    assert {item["topic"] for item in opened.body["subscriptions"]} == {CHATBOT_TOPIC, CARD_TOPIC}
    await fake.disconnect()  # DingTalk moving the connection elsewhere: the client opens a new one
    await fake.wait_for(lambda: fake.connections == 2, within=HANG_GUARD)
    await fake.push(CHATBOT_TOPIC, message("alice", "hello"))
    await channel.settled()
    assert "Hi alice" in fake.said("alice")
    await channel.stop()
    assert not await channel.connected()


async def test_a_stream_that_cannot_connect_says_why_and_is_not_ready(
    app: App, fake: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    use_dingtalk(app, fake, mode="stream", client_secret=SecretStr("not-the-secret"))
    channel = DingTalkChannel.for_app(app)
    await channel.start()
    await fake.wait_for(lambda: any("Stream connection failed" in r.getMessage() for r in caplog.records))
    assert "invalidClientIdOrSecret" in caplog.text
    assert "not-the-secret" not in caplog.text
    assert not await channel.connected()
    await channel.stop()
    assert fake.connections == 0


async def test_a_failed_notification_waits_for_the_next_round(chat: DingTalkChat, clock: ManualClock) -> None:
    request_id = await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    await chat.press("tina", "Deny", where=ADMIN_GROUP)
    await chat.say("tina", "No")
    await chat.app.housekeeper.tick()
    chat.fake.fail_next("/v1.0/robot/oToMessages/batchSend", 503, {"code": "ServiceUnavailable", "message": "busy"})
    before = chat.said("bob")
    await chat.deliver()
    assert chat.said("bob") == before  # DingTalk was busy: nothing lost
    await chat.deliver()
    assert f"tina declined your request #{request_id}" in chat.said("bob")


async def test_check_says_whether_the_credentials_work(app: App, fake: FakeDingTalk) -> None:
    use_dingtalk(app, fake)
    channel = DingTalkChannel.for_app(app)
    assert await channel.check() is None
    use_dingtalk(app, fake, client_secret=SecretStr("wrong-secret"))
    wrong = DingTalkChannel.for_app(app)
    assert await wrong.check() == "DingTalk refused the app's Client ID and Secret (invalidClientIdOrSecret)"
    await channel.stop()
    await wrong.stop()


# ---- serve(), both modes --------------------------------------------------------------------------


async def wait_until_listening(port: int, serving: asyncio.Task[None]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as client:
        while not serving.done():
            try:
                async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectorError:
                await asyncio.wait({serving}, timeout=0.02)
    serving.result()


async def test_serve_runs_dingtalk_in_stream_mode_over_the_fake_websocket(app: App, fake: FakeDingTalk) -> None:
    """Only [dingtalk], in Chinese: bob asks, the card goes to the group, sam approves, bob is told."""
    port = free_port()
    use_dingtalk(app, fake, locale="zh-CN", mode="stream")
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    assert [channel.name for channel in configured_channels(app)] == ["dingtalk"]
    stop = asyncio.Event()
    running = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))

    async def told(user: str, expect: str, before: int) -> None:
        try:
            await fake.wait_for(lambda: expect in "\n".join(p.text for p in fake.chat(user)[before:]))
        except AssertionError:
            raise AssertionError(f"{user} was not told {expect!r}: {fake.said(user)[-400:]!r}") from None

    async def says(user: str, text: str, expect: str) -> None:
        before = len(fake.chat(user))
        await fake.push(CHATBOT_TOPIC, message(user, text))
        await told(user, expect, before)

    async def presses(user: str, label: str, expect: str, where: str = "") -> None:
        before = len(fake.chat(user))
        await fake.push(CARD_TOPIC, press(user, fake.last_card(where or user, label), label))
        await told(user, expect, before)

    try:
        await fake.wait_for(lambda: fake.connections == 1)
        await says("bob", "帮我解锁", "6 位验证码")
        await says("bob", await code(app, "bob"), "198.51.100.23")
        await presses("bob", "是", "哪里")
        await says("bob", "成都", "信任")
        await presses("bob", "是，信任这个地址", "#")
        request_id = (await request_of(app, "bob")).id
        await fake.wait_for(lambda: fake.chat(ADMIN_GROUP))
        card = fake.last_card(ADMIN_GROUP)
        assert f"解锁申请 #{request_id}，来自 bob" in card.text
        assert card.labels == ["批准", "拒绝"]
        await presses("sam", "批准", "验证码", where=ADMIN_GROUP)
        await says("sam", await code(app, "sam"), f"#{request_id}")
        await fake.wait_for(lambda: "sam" in card.text and not card.labels)
        await fake.wait_for(lambda: f"sam 批准了你的申请 #{request_id}" in fake.said("bob"))
        await fake.wait_for(lambda: fake.chat("bob") and "完成" in fake.said("bob"))
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    assert not (await app.crm.lock_status("bob")).locked


async def test_serve_runs_dingtalk_in_http_mode_and_refuses_forgeries(app: App, fake: FakeDingTalk) -> None:
    port = free_port()
    use_dingtalk(app, fake, public_url="https://bot.example.com/base")
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    stop = asyncio.Event()
    running = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
    try:
        await wait_until_listening(port, running)
        sender = DingTalkSender(f"http://127.0.0.1:{port}/dingtalk/events")
        assert (await sender.post(message("kim", "hello"), secret="forged")).status == 401
        assert (await sender.post(message("alice", "unlock me"))).status == 200
        await fake.wait_for(lambda: "6-digit code" in fake.said("alice"))
        assert (await sender.post(message("alice", await code(app, "alice")))).status == 200
        await fake.wait_for(lambda: "unlocked" in fake.said("alice"))
        # serve listens before the channels start: the registration may come just after the first messages
        await fake.wait_for(lambda: fake.calls_to("/v1.0/card/callbacks/register"))
        [registered] = fake.calls_to("/v1.0/card/callbacks/register")
        assert registered.body["callbackUrl"] == "https://bot.example.com/base/dingtalk/events"
        assert registered.body["callbackRouteKey"] == "unlockbot"
        assert fake.calls_to("/v1.0/im/v1.0/robot/interactiveCards/send")[0].body["callbackRouteKey"] == "unlockbot"
        assert fake.chat("kim") == []
        assert fake.calls_to("/v1.0/gateway/connections/open") == []  # http mode opens no Stream connection
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    assert await conversations_of(app, "kim") == 0


async def test_at_debug_level_no_token_secret_or_code_reaches_the_log(app: App, fake: FakeDingTalk) -> None:
    stream = io.StringIO()
    logs = configure_logging(2, stream=stream)
    try:
        use_dingtalk(app, fake, mode="stream")
        logs.add_secrets(secrets_of(app.settings))
        channel = DingTalkChannel.for_app(app)
        await channel.start()
        await until_connected(channel)
        await fake.push(CHATBOT_TOPIC, message("alice", "unlock me"))
        await fake.wait_for(lambda: "6-digit code" in fake.said("alice"))
        typed = await code(app, "alice")
        await fake.push(CHATBOT_TOPIC, message("alice", typed))
        await fake.wait_for(lambda: "unlocked" in fake.said("alice"))
        await channel.stop()
    finally:
        logs.close()
    log = stream.getvalue()
    assert "/topapi/v2/user/get" in log  # httpx logged the oapi URL, without its token
    token = fake.calls_to("/v1.0/im/v1.0/robot/interactiveCards/send")[0].token
    for secret in (CLIENT_SECRET, token, demo.demo_secret("alice")):
        assert secret not in log, f"{secret!r} is in the log"
    assert re.search(rf"(?<!\d){typed}(?!\d)", log) is None
    assert "ticket-" not in log


# ---- settings --------------------------------------------------------------------------------------


def test_dingtalk_settings_name_what_is_wrong() -> None:
    from bot.config import load_settings

    with pytest.raises(ConfigError, match=r"client_id needs client_secret"):
        load_settings(environ={"UNLOCKBOT_DINGTALK__CLIENT_ID": "ding1"})
    with pytest.raises(ConfigError, match=r"openConversationId"):
        load_settings(environ={"UNLOCKBOT_DINGTALK__ADMIN_CONVERSATION_ID": "CRM admins"})
    with pytest.raises(ConfigError, match=r"https://"):
        load_settings(environ={"UNLOCKBOT_DINGTALK__PUBLIC_URL": "http://bot.example.com"})
    settings = load_settings(
        environ={"UNLOCKBOT_DINGTALK__CLIENT_ID": "ding1", "UNLOCKBOT_DINGTALK__CLIENT_SECRET": "hidden-secret-1"}
    )
    assert "hidden" not in repr(settings.dingtalk)
    assert settings.dingtalk.configured
    assert settings.dingtalk.mode == "stream"
    assert settings.dingtalk.robot == "ding1"  # the robot code is the Client ID unless told


# ---- the weekly digest --------------------------------------------------------------------------


async def test_the_weekly_digest_is_posted_with_its_chart_in_the_admin_group_once(
    settings: Settings, clock: ManualClock, demo_templates: DemoTemplates, fake: FakeDingTalk
) -> None:
    section = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "api_base_url": fake.url,
        "oapi_base_url": fake.url,
        "mode": "http",
        "admin_conversation_id": ADMIN_GROUP,
    }
    digest = with_weekly_digest(settings, "dingtalk", section)
    async with after_digest_rounds(DingTalkChannel.for_app, digest, clock, demo_templates) as app:
        *summary, picture = fake.chat(ADMIN_GROUP)
        assert [posted.kind for posted in summary] == ["text"] * len(summary)
        text = "\n".join(posted.text for posted in summary)
        assert "Your weekly lock digest" in text
        assert "Press the button" not in text
        assert picture.kind == "image"
        assert picture.png.startswith(b"\x89PNG")
        assert await digest_notices(app) == 0
