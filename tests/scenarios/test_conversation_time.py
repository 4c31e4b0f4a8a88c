"""Time in a conversation: a fresh code covers a follow-up, and a conversation left idle starts fresh."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import demo
from bot.app import App
from bot.clock import ManualClock
from bot.storage.models import TotpEnrolment
from tests.chat import Chat


async def test_a_follow_up_within_the_grace_period_needs_no_second_code(app: App, clock: ManualClock) -> None:
    alice = Chat(app.engine, "alice", locale="en")
    await alice.start()
    await alice.press("Why am I locked?")
    said = await alice.press("details")
    assert said.asks_secret
    said = await alice.say(await demo.current_code(app, "alice"))
    assert "Failed sign-ins" in said.text or "wrong password" in said.text.lower()
    clock.advance(timedelta(minutes=4))
    said = await alice.say("unlock me")
    assert not said.asks_secret
    assert "Done: your CRM account is unlocked." in said.text


async def test_after_the_grace_period_a_code_is_asked_again(app: App, clock: ManualClock) -> None:
    alice = Chat(app.engine, "alice", locale="en")
    await alice.start()
    await alice.press("Why am I locked?")
    await alice.press("details")
    await alice.say(await demo.current_code(app, "alice"))
    clock.advance(timedelta(minutes=6))
    said = await alice.say("unlock me")
    assert said.asks_secret


async def test_the_grace_period_belongs_to_the_chat_account_that_gave_the_code(app: App, clock: ManualClock) -> None:
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say("invite alice")
    link_code = said.replies[-1].text.strip()
    phone = Chat(app.engine, "alice-phone", channel="telegram", locale="en")
    said = await phone.say(link_code)
    assert "alice" in said.text
    alice = Chat(app.engine, "alice", locale="en")
    await alice.start()
    await alice.press("Why am I locked?")
    await alice.press("details")
    await alice.say(await demo.current_code(app, "alice"))
    said = await phone.say("unlock me")
    assert said.asks_secret  # the code was given in the console, not on this phone


async def test_an_idle_conversation_starts_fresh(app: App, clock: ManualClock) -> None:
    alice = Chat(app.engine, "alice", locale="en")
    await alice.start()
    said = await alice.say("unlock me")
    assert said.asks_secret
    clock.advance(timedelta(minutes=31))
    said = await alice.say("123456")  # typed long after: not an answer to the old question
    assert "code isn't right" not in said.text
    async with app.database.session() as session:
        enrolment = await session.scalar(select(TotpEnrolment).where(TotpEnrolment.crm_username == "alice"))
    assert enrolment is not None
    assert enrolment.failed_attempts == 0
    said = await alice.say("unlock me")
    assert said.asks_secret  # and the new question works as usual
    said = await alice.say(await demo.current_code(app, "alice"))
    assert "Done: your CRM account is unlocked." in said.text


async def test_a_conversation_within_the_idle_timeout_carries_on(app: App, clock: ManualClock) -> None:
    alice = Chat(app.engine, "alice", locale="en")
    await alice.say("unlock me")
    clock.advance(timedelta(minutes=29))
    said = await alice.say("000000")
    assert "code isn't right" in said.text
