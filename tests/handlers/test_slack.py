"""The Slack channel on the real slack-bolt ``AsyncApp``, against a fake Slack on 127.0.0.1.

Slack's side is ``tests.fakes.slack_api``: signed HTTP requests (or Socket Mode envelopes) go to the
app, and its ``AsyncWebClient`` calls the fake Web API, which records every call. The tests read like a
chat: a person writes or clicks, and the test reads what the bot posted.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot import admin, demo
from bot.app import App
from bot.clock import ManualClock
from bot.config import Settings, SlackSettings
from bot.errors import ConfigError
from bot.handlers.base import admin_destinations, configured_channels
from bot.handlers.slack import SlackChannel, verified_email
from bot.logs import configure as configure_logging
from bot.logs import secrets_of
from bot.serve import serve
from tests.databases import DemoTemplates, demo_app
from tests.fakes.slack_api import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    Json,
    SlackSender,
    click,
    dm_of,
    home_opened,
    message_event,
    slash_command,
    view_closed,
    view_submission,
)
from tests.handlers.common import (
    code,
    digest_notices,
    digest_passes,
    file_for,
    free_port,
    request_of,
    routes_served,
    with_weekly_digest,
)

ADMINS = "C0ADMINS"
# Seconds after which a wait that should end on an event fails instead of hanging; never a measure of speed.
HANG_GUARD = 60
PEOPLE = {
    "U0ALICE": "alice",
    "U0BOB": "bob",
    "U0DAVE": "dave",
    "U0FRANK": "frank",
    "U0KIM": "kim",
    "U0SAM": "sam",
    "U0TINA": "tina",
}


def text_of(message: Json) -> str:
    """What a person reads in a message: its sections' text."""
    sections = [block["text"]["text"] for block in message.get("blocks", []) if block["type"] == "section"]
    return "\n".join(sections) if sections else html.unescape(message.get("text", ""))


def buttons_of(message: Json) -> list[Json]:
    return [
        element for block in message.get("blocks", []) if block["type"] == "actions" for element in block["elements"]
    ]


def labels_of(message: Json) -> list[str]:
    return [button["text"]["text"] for button in buttons_of(message)]


@dataclass
class SlackChat:
    """A workspace talking to the bot: people write, click and fill modals; the test reads the DMs."""

    channel: SlackChannel
    slack: FakeSlack
    sender: SlackSender
    app: App

    async def say(self, user: str, text: str) -> list[Json]:
        """Write to the bot in its DM; what it posted back."""
        before = len(self.slack.posted(dm_of(user)))
        sent = await self.sender.event(message_event(user, text))
        assert sent.status == 200, sent.body
        await self.channel.settled()
        return self.slack.posted(dm_of(user))[before:]

    def dm(self, user: str) -> list[Json]:
        return self.slack.posted(dm_of(user))

    def said(self, user: str) -> str:
        return "\n".join(text_of(message) for message in self.dm(user))

    async def press(self, user: str, label: str, *, channel: str | None = None) -> None:
        """Click the newest button with this label in a channel (the person's DM unless told)."""
        where = channel or dm_of(user)
        for message in reversed(self.slack.posted(where)):
            for button in buttons_of(message):
                if button["text"]["text"].casefold() == label.casefold():
                    await self.click(user, button, channel=where, message_ts=message["ts"])
                    return
        raise AssertionError(f"no button {label!r} in {where}")

    async def click(
        self, user: str, button: Json, *, channel: str, message_ts: str = "", ephemeral: bool = False
    ) -> Json:
        payload = click(user, button, channel=channel, message_ts=message_ts, ephemeral=ephemeral)
        sent = await self.sender.interaction(payload)
        assert sent.status == 200, sent.body
        await self.channel.settled()
        return payload

    async def enter_code(self, user: str, code: str) -> Json:
        """Open the code modal with the newest "Enter code" button, type the code, submit."""
        await self.press(user, "Enter code")
        view = self.last_modal()
        assert view["callback_id"] == "unlockbot.code"
        await self.submit(user, view, code)
        return view

    def last_modal(self) -> Json:
        opened = self.slack.calls_to("views.open")
        assert opened, "no modal was opened"
        view: Json = opened[-1].args["view"]
        return view

    async def submit(self, user: str, view: Json, value: str) -> None:
        sent = await self.sender.interaction(view_submission(user, view, value))
        assert sent.status == 200, sent.body
        assert sent.body == ""  # an empty acknowledgement closes the modal
        await self.channel.settled()

    async def deliver(self) -> None:
        await self.channel.deliver()
        await self.channel.settled()

    def cards(self) -> list[Json]:
        return self.slack.posted(ADMINS)

    def told(self, user: str) -> str:
        """What only this person saw in the admin channel (ephemeral messages)."""
        return "\n".join(text_of(message) for message in self.slack.ephemeral(ADMINS, user))


def slack_settings(app: App, slack: FakeSlack, **changes: Any) -> None:
    values: dict[str, Any] = {
        "bot_token": SecretStr(BOT_TOKEN),
        "signing_secret": SecretStr(SIGNING_SECRET),
        "api_base_url": slack.api_url,
        "mode": "http",
        "admin_channel": ADMINS,
        **changes,
    }
    # An English-speaking workspace: cards are drawn in the default language.
    bot = app.settings.bot.model_copy(update={"default_locale": "en"})
    app.settings = app.settings.model_copy(update={"slack": SlackSettings.model_validate(values), "bot": bot})


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    for user_id, name in PEOPLE.items():
        fake.add_person(user_id, name)
    yield fake
    await fake.stop()


@pytest.fixture
async def chat(app: App, slack: FakeSlack) -> AsyncIterator[SlackChat]:
    """The Slack channel's own route on an aiohttp server of its own, in HTTP mode."""
    slack_settings(app, slack)
    channel = SlackChannel.for_app(app, working_after=0.2)
    async with routes_served(channel) as port:
        await channel.start()
        yield SlackChat(channel, slack, SlackSender(f"http://127.0.0.1:{port}/slack/events"), app)
        await channel.stop()


# ---- an employee in the direct messages -----------------------------------------------------------


async def test_alice_is_linked_by_email_asks_why_and_unlocks_with_a_code_in_a_modal(chat: SlackChat) -> None:
    app, slack = chat.app, chat.slack
    said = await chat.say("U0ALICE", "hello")
    assert [call.args["user"] for call in slack.calls_to("users.info")] == ["U0ALICE"]
    assert await app.engine.is_linked("slack", TEAM, "U0ALICE")
    assert "Hi alice" in text_of(said[0])
    assert "Why am I locked?" in labels_of(said[-1])

    await chat.press("U0ALICE", "Why am I locked?")
    assert "wrong password" in text_of(chat.dm("U0ALICE")[-1]).lower()
    assert " UTC" in text_of(chat.dm("U0ALICE")[-1])  # times in her Slack profile's zone

    said = await chat.say("U0ALICE", "unlock me")
    assert "6-digit code" in text_of(said[-1])
    assert labels_of(said[-1])[0] == "Enter code"

    right = await code(app, "alice")
    view = await chat.enter_code("U0ALICE", right)
    assert slack.calls_to("views.open")[-1].args["trigger_id"]
    assert json.loads(view["private_metadata"])["channel"] == dm_of("U0ALICE")
    assert "Done: your CRM account is unlocked." in text_of(chat.dm("U0ALICE")[-1])
    assert not (await app.crm.lock_status("alice")).locked
    # The code went through the modal only: never posted, never in a message.
    assert all(right not in json.dumps(call.args) for call in slack.calls if call.method != "views.open")
    assert len(slack.calls_to("users.info")) == 1  # linked once, not looked up again


async def test_times_are_shown_in_the_person_s_slack_time_zone(chat: SlackChat) -> None:
    chat.slack.add_person("U0ALICE", "alice", tz="Asia/Tokyo")
    await chat.say("U0ALICE", "hello")
    await chat.press("U0ALICE", "Why am I locked?")
    assert "UTC+9" in text_of(chat.dm("U0ALICE")[-1])


async def test_a_wrong_code_keeps_the_modal_button_and_a_dm_stays_private(chat: SlackChat) -> None:
    await chat.say("U0ALICE", "unlock me")
    await chat.enter_code("U0ALICE", "000000")
    last = chat.dm("U0ALICE")[-1]
    assert "That code isn't right" in text_of(last)
    assert "Enter code" in labels_of(last)


async def test_the_enrolment_qr_code_is_uploaded_into_the_dm(chat: SlackChat) -> None:
    await admin.reset_totp(chat.app, "alice", by="cli:sam")
    await chat.say("U0ALICE", "unlock me")
    await chat.press("U0ALICE", "Set up my authenticator app")
    assert "Scan this QR code" in chat.said("U0ALICE")
    [asked] = chat.slack.calls_to("files.getUploadURLExternal")
    [completed] = chat.slack.calls_to("files.completeUploadExternal")
    assert completed.args["channel_id"] == dm_of("U0ALICE")
    [(file_id, png)] = chat.slack.uploads.items()
    assert png.startswith(b"\x89PNG")
    assert json.loads(completed.args["files"])[0]["id"] == file_id
    assert asked.args["filename"].endswith(".png")
    assert "Enter code" in labels_of(chat.dm("U0ALICE")[-1])


@pytest.mark.parametrize(
    "flags",
    [
        {"is_restricted": True},
        {"is_ultra_restricted": True},
        {"deleted": True},
        {"is_bot": True},
        {"confirmed": False},
    ],
    ids=["guest", "single-channel-guest", "deleted", "bot", "unconfirmed-email"],
)
async def test_slack_must_vouch_for_the_email_before_anyone_is_linked(chat: SlackChat, flags: dict[str, bool]) -> None:
    chat.slack.add_person("U0CAROL", "carol", **flags)
    await chat.say("U0CAROL", "why am I locked")
    assert not await chat.app.engine.is_linked("slack", TEAM, "U0CAROL")
    # The engine answers an unknown person itself: nothing about carol's account.
    assert "I don't know which CRM account is yours" in chat.said("U0CAROL")
    assert "licence" not in chat.said("U0CAROL").lower()


def test_what_slack_vouches_for() -> None:
    person = {"is_email_confirmed": True, "profile": {"email": "kim@example.com"}}
    assert verified_email(person) == "kim@example.com"
    assert verified_email({**person, "is_stranger": True}) is None
    assert verified_email({**person, "profile": {}}) is None
    assert verified_email({"profile": {"email": "kim@example.com"}}) is None


async def test_the_slash_command_and_the_home_tab(chat: SlackChat) -> None:
    sent = await chat.sender.command(slash_command("U0ALICE", "faq is my data safe"))
    assert sent.status == 200
    assert sent.body == ""
    await chat.channel.settled()
    assert "data" in chat.said("U0ALICE").lower()
    assert chat.slack.calls_to("conversations.open")[0].args["users"] == "U0ALICE"

    sent = await chat.sender.event(home_opened("U0ALICE"))
    assert sent.status == 200
    await chat.channel.settled()
    [published] = chat.slack.calls_to("views.publish")
    assert published.args["user_id"] == "U0ALICE"
    home = published.args["view"]
    assert home["type"] == "home"
    assert "Why am I locked?" in labels_of(home)


# ---- admins in the admin channel ----------------------------------------------------------------


async def bob_asks_for_an_unlock(chat: SlackChat) -> int:
    await chat.say("U0BOB", "unlock me")
    await chat.enter_code("U0BOB", await code(chat.app, "bob"))
    await chat.press("U0BOB", "Yes")
    await chat.say("U0BOB", "Chengdu")
    await chat.press("U0BOB", "Yes, trust this address")
    request = await request_of(chat.app, "bob")
    assert f"#{request.id}" in text_of(chat.dm("U0BOB")[-1])
    return request.id


def card_button(card: Json, label: str) -> Json:
    for button in buttons_of(card):
        if button["text"]["text"] == label:
            return button
    raise AssertionError(f"no {label} on the card")


async def test_sam_approves_bobs_request_in_the_admin_channel_and_bob_is_told(chat: SlackChat) -> None:
    request_id = await bob_asks_for_an_unlock(chat)
    await chat.deliver()
    [card] = chat.cards()
    assert f"Unlock request #{request_id} from bob" in text_of(card)
    assert labels_of(card) == ["Approve", "Deny"]

    await chat.click("U0SAM", card_button(card, "Approve"), channel=ADMINS, message_ts=card["ts"])
    asked = chat.slack.ephemeral(ADMINS, "U0SAM")[-1]  # approving an unlock takes the approver's own code
    enter = next(b for b in buttons_of(asked) if b["text"]["text"] == "Enter code")
    await chat.click("U0SAM", enter, channel=ADMINS, ephemeral=True)
    await chat.submit("U0SAM", chat.last_modal(), await code(chat.app, "sam"))
    assert f"Approved: request #{request_id} for bob" in chat.told("U0SAM")
    [updated] = chat.slack.calls_to("chat.update")
    assert updated.args["ts"] == card["ts"]
    [card] = chat.cards()
    assert "Approved by sam" in text_of(card)
    assert labels_of(card) == []

    await chat.app.housekeeper.tick()
    await chat.deliver()
    assert f"sam approved your request #{request_id}" in chat.said("U0BOB")
    assert not (await chat.app.crm.lock_status("bob")).locked
    updates = len(chat.slack.calls_to("chat.update"))
    assert updates in (1, 2)  # approved and done, or done at once when the CRM answered within the turn
    await chat.deliver()
    assert len(chat.slack.calls_to("chat.update")) == updates  # then left alone


async def test_a_seat_request_card_shows_the_seats_and_who_could_free_one(chat: SlackChat) -> None:
    await chat.say("U0DAVE", "unlock me")
    await chat.enter_code("U0DAVE", await code(chat.app, "dave"))
    request = await request_of(chat.app, "dave")
    await chat.deliver()
    [card] = chat.cards()
    text = text_of(card)
    assert f"Unlock request #{request.id} from dave" in text
    assert '"Sales Standard": 11 of 10 seats used' in text
    assert "kim (Kim Sun), never signed in; judy (Judy Xu), last signed in " in text
    assert labels_of(card) == ["Approve", "Deny"]


async def test_nobody_approves_their_own_request(chat: SlackChat, clock: ManualClock) -> None:
    own = await file_for(chat.app, "sam", clock, "slack")
    await chat.deliver()
    [card] = chat.cards()
    await chat.click("U0SAM", card_button(card, "Approve"), channel=ADMINS, message_ts=card["ts"])
    assert "You can't decide your own request" in chat.told("U0SAM")
    assert (await request_of(chat.app, "sam")).status == "pending"
    assert chat.slack.calls_to("chat.update") == []
    assert f"#{own}" in text_of(chat.cards()[0])


async def test_a_non_admin_click_on_a_card_is_refused(chat: SlackChat, clock: ManualClock) -> None:
    await file_for(chat.app, "bob", clock, "slack")
    await chat.deliver()
    [card] = chat.cards()
    await chat.click("U0KIM", card_button(card, "Approve"), channel=ADMINS, message_ts=card["ts"])
    assert "That's only for admins." in chat.told("U0KIM")
    assert (await request_of(chat.app, "bob")).status == "pending"
    assert chat.slack.calls_to("chat.update") == []


async def test_deny_asks_the_reason_in_a_modal_and_bob_hears_it(chat: SlackChat, clock: ManualClock) -> None:
    await chat.say("U0BOB", "hello")  # bob is on Slack, so he is told there
    request_id = await file_for(chat.app, "bob", clock, "slack")
    await chat.deliver()
    [card] = chat.cards()
    await chat.click("U0TINA", card_button(card, "Deny"), channel=ADMINS, message_ts=card["ts"])
    view = chat.last_modal()
    assert view["callback_id"] == "unlockbot.answer"
    assert f"Why are you denying request #{request_id}?" in text_of(view)
    assert "Why are you denying" not in chat.told("U0TINA")  # the question is in the modal, not the channel

    await chat.submit("U0TINA", view, "Please call IT first")
    assert f"Denied: request #{request_id} for bob" in chat.told("U0TINA")
    assert "Denied by tina" in text_of(chat.cards()[0])
    await chat.app.housekeeper.tick()
    await chat.deliver()
    assert "tina declined your request" in chat.said("U0BOB")
    assert "Please call IT first" in chat.said("U0BOB")


async def test_closing_the_reason_modal_cancels_the_denial(chat: SlackChat, clock: ManualClock) -> None:
    await file_for(chat.app, "bob", clock, "slack")
    await chat.deliver()
    [card] = chat.cards()
    await chat.click("U0TINA", card_button(card, "Deny"), channel=ADMINS, message_ts=card["ts"])
    sent = await chat.sender.interaction(view_closed("U0TINA", chat.last_modal()))
    assert sent.status == 200
    await chat.channel.settled()
    assert "Nothing was changed" in chat.told("U0TINA")
    said = await chat.say("U0TINA", "pending")  # not taken as the reason
    assert "Unlock request" in "\n".join(text_of(m) for m in said)
    assert (await request_of(chat.app, "bob")).status == "pending"


async def test_frank_needs_the_approvers_own_code_entered_in_a_modal(chat: SlackChat) -> None:
    await chat.say("U0FRANK", "unlock me")
    await chat.enter_code("U0FRANK", await code(chat.app, "frank"))
    await chat.deliver()
    [card] = chat.cards()
    await chat.click("U0SAM", card_button(card, "Approve"), channel=ADMINS, message_ts=card["ts"])
    asked = chat.slack.ephemeral(ADMINS, "U0SAM")[-1]
    enter = next(b for b in buttons_of(asked) if b["text"]["text"] == "Enter code")
    await chat.click("U0SAM", enter, channel=ADMINS, ephemeral=True)
    view = chat.last_modal()
    assert json.loads(view["private_metadata"]) == {"channel": ADMINS, "ephemeral": True, "message_ts": ""}
    await chat.submit("U0SAM", view, await code(chat.app, "sam"))
    assert "Approved: request" in chat.told("U0SAM")
    assert "Approved by sam" in text_of(chat.cards()[0])


# ---- delivery: signatures, retries, acknowledgement, rate limits ----------------------------------


async def test_a_bad_signature_and_a_stale_timestamp_get_401(chat: SlackChat) -> None:
    body = message_event("U0ALICE", "hello")
    forged = await chat.sender.event(body, secret="not-the-signing-secret")
    assert forged.status == 401
    stale = await chat.sender.event(body, timestamp=int(time.time()) - 301)
    assert stale.status == 401
    await chat.channel.settled()
    assert chat.slack.calls == []  # nothing was done for either
    fresh = await chat.sender.event(body, timestamp=int(time.time()) - 200)
    assert fresh.status == 200


async def test_slack_can_check_the_request_url(chat: SlackChat) -> None:
    sent = await chat.sender.event({"token": "unused", "challenge": "3eZbrw1aB10", "type": "url_verification"})
    assert sent.status == 200
    assert "3eZbrw1aB10" in sent.body


async def test_a_retried_event_is_processed_once(chat: SlackChat) -> None:
    body = message_event("U0ALICE", "hello")
    first = await chat.sender.event(body)
    again = await chat.sender.event(body, retry=1)
    assert (first.status, again.status) == (200, 200)
    await chat.channel.settled()
    assert len(chat.dm("U0ALICE")) == 1
    assert len(chat.slack.calls_to("users.info")) == 1


async def test_the_ack_comes_at_once_while_the_crm_takes_its_time(
    chat: SlackChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await chat.say("U0ALICE", "hello")
    crm = chat.app.crm
    real = crm.lock_status
    asked, release, answered = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_lock_status(username: str) -> Any:
        asked.set()
        try:
            # A CRM that answers only when the test lets it (the guard only keeps a broken test from hanging).
            await asyncio.wait_for(release.wait(), timeout=HANG_GUARD)
            return await real(username)
        finally:
            answered.set()

    monkeypatch.setattr(crm, "lock_status", slow_lock_status)
    before = len(chat.dm("U0ALICE"))
    sent = await chat.sender.event(message_event("U0ALICE", "why am I locked?"))
    assert sent.status == 200
    # Slack wants its acknowledgement within 3 seconds, however long the CRM takes: it came before any answer.
    assert not answered.is_set()
    await asyncio.wait_for(asked.wait(), timeout=HANG_GUARD)
    await chat.slack.wait_for(lambda: chat.slack.calls_to("reactions.add"))
    [working] = chat.slack.calls_to("reactions.add")
    assert working.args["name"] == "hourglass_flowing_sand"
    assert working.args["channel"] == dm_of("U0ALICE")
    assert len(chat.dm("U0ALICE")) == before  # no answer yet: the CRM is still thinking
    release.set()
    await chat.channel.settled()
    assert "wrong password" in text_of(chat.dm("U0ALICE")[-1]).lower()
    assert chat.slack.calls_to("reactions.remove")[0].args["timestamp"] == working.args["timestamp"]


async def test_a_rate_limited_call_is_retried_after_retry_after(chat: SlackChat) -> None:
    chat.slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    said = await chat.say("U0ALICE", "hello")
    assert "Hi alice" in text_of(said[0])
    first, second = chat.slack.calls_to("chat.postMessage")[:2]
    assert second.args == first.args
    assert second.at - first.at >= 1.0


async def test_a_reply_slack_keeps_refusing_is_held_and_sent_at_a_later_round(
    chat: SlackChat, clock: ManualClock
) -> None:
    # More 429s than the client retries: the reply is kept in the database, not lost, and goes out once
    # Slack's Retry-After has passed, at the next delivery round (on whichever replica runs it).
    chat.slack.rate_limit("chat.postMessage", times=4, retry_after=0)
    assert await chat.say("U0ALICE", "hello") == []
    await chat.deliver()
    assert chat.dm("U0ALICE") == []  # not due yet: held for Retry-After, or 30 s when Slack gave none
    clock.advance(timedelta(seconds=31))
    await chat.deliver()
    [said] = chat.dm("U0ALICE")
    assert "Hi alice" in text_of(said)
    assert buttons_of(said), "the held reply keeps its buttons"
    await chat.deliver()
    assert len(chat.dm("U0ALICE")) == 1  # sent once


# ---- serve(), Socket Mode and settings ----------------------------------------------------------


async def test_serve_runs_slack_in_socket_mode_over_the_fake_websocket(app: App, slack: FakeSlack) -> None:
    port = free_port()
    slack_settings(app, slack, mode="socket", app_token=SecretStr(APP_TOKEN), signing_secret=None)
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    stop = asyncio.Event()
    running = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
    try:
        body = message_event("U0ALICE", "hello")
        ack, _ = await slack.send_envelope("events_api", body)
        assert ack["envelope_id"].startswith("envelope-")
        await slack.send_envelope("events_api", body, retry_attempt=1)
        await slack.wait_for(lambda: slack.posted(dm_of("U0ALICE")))
        [opened] = slack.calls_to("apps.connections.open")
        assert opened.token == APP_TOKEN

        ack, _ = await slack.send_envelope("slash_commands", slash_command("U0BOB", ""))
        await slack.wait_for(lambda: slack.posted(dm_of("U0BOB")))
        assert "Hi bob" in text_of(slack.posted(dm_of("U0BOB"))[0])
        # Nothing listens for Slack over HTTP in Socket Mode.
        sender = SlackSender(f"http://127.0.0.1:{port}/slack/events")
        assert (await sender.event(body)).status == 404
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    assert len(slack.posted(dm_of("U0ALICE"))) == 1


DEBUG_PATIENCE = 60.0


async def test_at_debug_level_no_token_code_or_secret_reaches_the_log(app: App, slack: FakeSlack) -> None:
    """Socket Mode with every library logging its payloads: alice types her code into the modal.

    Every SQL statement and payload is written to the log here, which makes each turn slow on a busy machine:
    the waits are hang guards, not a measure of speed.
    """
    port = free_port()
    slack_settings(app, slack, mode="socket", app_token=SecretStr(APP_TOKEN), signing_secret=None)
    app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
    assert app.settings.security.secret_key is not None
    used = [BOT_TOKEN, APP_TOKEN, app.settings.security.secret_key.get_secret_value(), demo.demo_secret("alice")]
    stream = io.StringIO()
    logs = configure_logging(2, stream=stream)
    logs.add_secrets(secrets_of(app.settings))
    stop = asyncio.Event()
    running = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.2))
    try:
        await slack.send_envelope("events_api", message_event("U0ALICE", "unlock me"))
        await slack.wait_for(
            lambda: any("Enter code" in labels_of(m) for m in slack.posted(dm_of("U0ALICE"))), within=DEBUG_PATIENCE
        )
        asked = next(m for m in reversed(slack.posted(dm_of("U0ALICE"))) if "Enter code" in labels_of(m))
        enter = next(b for b in buttons_of(asked) if b["text"]["text"] == "Enter code")
        pressed = click("U0ALICE", enter, channel=dm_of("U0ALICE"), message_ts=asked["ts"])
        await slack.send_envelope("interactive", pressed)
        await slack.wait_for(lambda: slack.calls_to("views.open"), within=DEBUG_PATIENCE)
        used.append(await code(app, "alice"))
        view = slack.calls_to("views.open")[-1].args["view"]
        await slack.send_envelope("interactive", view_submission("U0ALICE", view, used[-1]))
        await slack.wait_for(lambda: "unlocked" in text_of(slack.posted(dm_of("U0ALICE"))[-1]), within=DEBUG_PATIENCE)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
        logs.close()
    log = stream.getvalue()
    assert "envelope_id" in log  # Socket Mode payloads were logged
    assert "plain_text_input" in log  # the modal submission among them
    for secret in used:
        found = re.search(rf"(?<!\d){secret}(?!\d)", log) if secret.isdigit() else secret in log
        assert not found, f"{secret!r} is in the log"


def test_slack_settings_name_what_each_mode_needs(app: App) -> None:
    from bot.config import load_settings

    with pytest.raises(ConfigError, match=r"slack: mode = 'http' needs slack.signing_secret"):
        load_settings(environ={"UNLOCKBOT_SLACK__BOT_TOKEN": "xoxb-1", "UNLOCKBOT_SLACK__MODE": "http"})
    with pytest.raises(ConfigError, match=r"slack: mode = 'socket' needs slack.app_token"):
        load_settings(environ={"UNLOCKBOT_SLACK__BOT_TOKEN": "xoxb-1"})
    with pytest.raises(ConfigError, match=r"slack.admin_channel"):
        load_settings(environ={"UNLOCKBOT_SLACK__ADMIN_CHANNEL": "#admins"})
    settings = load_settings(
        environ={"UNLOCKBOT_SLACK__BOT_TOKEN": "xoxb-hidden-1", "UNLOCKBOT_SLACK__APP_TOKEN": "xapp-hidden-2"}
    )
    assert "hidden" not in repr(settings.slack)
    assert settings.slack.api_base_url == "https://slack.com/api/"
    assert configured_channels(app) == []


async def test_channels_check_says_whether_the_credentials_work(
    app: App, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import _channels_check

    slack_settings(app, slack)
    assert await _channels_check(app, as_json=True) == 0
    states = json.loads(capsys.readouterr().out)
    assert states["slack"] == "ok"
    assert states["telegram"] == "not configured"
    slack_settings(app, slack, bot_token=SecretStr("xoxb-1-revoked"))
    assert await _channels_check(app, as_json=False) == 1
    assert "slack:     fails: Slack refused the bot token: invalid_auth" in capsys.readouterr().out


async def test_two_replicas_on_one_database_answer_each_delivery_once(
    app: App, slack: FakeSlack, clock: ManualClock
) -> None:
    """Slack's retry of an event can reach another replica while the first still works on it."""
    from bot.app import open_app

    slack_settings(app, slack)
    async with open_app(app.settings, clock=clock) as other:  # a second process on the same database
        replicas = [SlackChannel.for_app(app, working_after=HANG_GUARD), SlackChannel.for_app(other)]
        senders: list[SlackSender] = []
        runners: list[web.AppRunner] = []
        for channel in replicas:
            server = web.Application()
            channel.add_routes(server)
            runner = web.AppRunner(server, access_log=None)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await channel.start()
            runners.append(runner)
            senders.append(SlackSender(f"http://127.0.0.1:{port}/slack/events"))
        try:
            events = [message_event(user, "why am I locked?") for user in PEOPLE]
            answers = await asyncio.gather(*(sender.event(event) for event in events for sender in senders))
            assert {answer.status for answer in answers} == {200}
            for channel in replicas:
                await channel.settled()
            for user in PEOPLE:
                texts = [text_of(message) for message in slack.posted(dm_of(user))]
                assert texts, f"{user} got no answer"
                assert len(texts) == len(set(texts)), f"{user} was answered twice: {texts}"
                assert not any("sorry" in text.lower() for text in texts), texts
        finally:
            for channel in replicas:
                await channel.stop()
            for runner in runners:
                await runner.cleanup()


# ---- the weekly digest --------------------------------------------------------------------------


def digest_settings(settings: Settings, slack: FakeSlack) -> Settings:
    """``[admins] weekly_digest`` with the Slack channel and its admin channel, in an English workspace."""
    section = {
        "bot_token": BOT_TOKEN,
        "signing_secret": SIGNING_SECRET,
        "api_base_url": slack.api_url,
        "mode": "http",
        "admin_channel": ADMINS,
    }
    return with_weekly_digest(settings, "slack", section)


async def test_the_weekly_digest_is_posted_with_its_chart_in_the_admin_channel_once(
    settings: Settings, clock: ManualClock, demo_templates: DemoTemplates, slack: FakeSlack
) -> None:
    from bot.app import open_app

    async with (
        demo_app(digest_settings(settings, slack), clock, demo_templates) as app,
        open_app(app.settings, clock=clock) as other,  # a second replica on the same database
    ):
        assert admin_destinations(app.settings) == ("slack",)
        replicas = [SlackChannel.for_app(app), SlackChannel.for_app(other)]
        for channel in replicas:
            await channel.start()
        try:
            await digest_passes([app, other], replicas, clock)
            [post] = slack.posted(ADMINS)
            assert "Your weekly lock digest" in text_of(post)
            assert "Locks in the last 7 days" in text_of(post)
            assert "Press the button" not in text_of(post)  # the chart comes with it
            assert buttons_of(post) == []
            [completed] = slack.calls_to("files.completeUploadExternal")
            assert completed.args["channel_id"] == ADMINS  # into the admin channel, not someone's DM
            [(file_id, png)] = slack.uploads.items()
            assert json.loads(completed.args["files"])[0]["id"] == file_id
            assert png.startswith(b"\x89PNG")
            assert slack.calls_to("conversations.open") == []
            assert await digest_notices(app) == 0  # posted, so no admin is notified as well
        finally:
            for channel in replicas:
                await channel.stop()


async def test_a_digest_slack_keeps_refusing_waits_and_is_posted_later(
    settings: Settings, clock: ManualClock, demo_templates: DemoTemplates, slack: FakeSlack
) -> None:
    async with demo_app(digest_settings(settings, slack), clock, demo_templates) as app:
        channel = SlackChannel.for_app(app)
        await channel.start()
        try:
            await app.housekeeper.tick()
            slack.rate_limit("chat.postMessage", times=4, retry_after=0)  # more 429s than the client retries
            await channel.deliver()
            assert slack.posted(ADMINS) == []
            await channel.deliver()
            assert slack.posted(ADMINS) == []  # not due yet: kept for Retry-After, or 30 s when Slack gave none
            clock.advance(timedelta(seconds=31))
            await channel.deliver()
            [post] = slack.posted(ADMINS)
            assert "Your weekly lock digest" in text_of(post)
            assert len(slack.uploads) == 1
            await channel.deliver()
            assert len(slack.posted(ADMINS)) == 1
        finally:
            await channel.stop()
