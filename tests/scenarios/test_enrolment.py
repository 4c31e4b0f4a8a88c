"""Becoming known: an admin invites, the person links with the code, enrols, and later unlocks."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from sqlalchemy import delete

from bot import admin
from bot.app import App
from bot.clock import ManualClock
from bot.identity import enrolment
from bot.storage.models import ChatIdentity, TotpEnrolment
from tests.chat import Chat


async def forget_alice(app: App) -> None:
    """Alice as a newcomer: not linked on the console, not enrolled."""
    async with app.database.session() as session, session.begin():
        await session.execute(delete(ChatIdentity).where(ChatIdentity.crm_username == "alice"))
        await session.execute(delete(TotpEnrolment).where(TotpEnrolment.crm_username == "alice"))


async def secret_behind_the_qr_code(app: App, chat: Chat, username: str) -> str:
    """The stored secret, after checking that the QR code shown is exactly the one for it."""
    assert chat.last is not None
    images = [reply.image for reply in chat.last.replies if reply.image is not None]
    assert len(images) == 1
    async with app.database.session() as session:
        stored = await session.get(TotpEnrolment, username)
    assert stored is not None
    assert not stored.active
    assert app.box is not None
    secret = app.box.decrypt(stored.secret_ciphertext)
    expected = enrolment.provisioning(secret, account=username, issuer="unlockbot")
    assert expected.uri.startswith(f"otpauth://totp/unlockbot:{username}?secret={secret}")
    assert images[0].png == expected.image.png
    assert images[0].text_art == expected.image.text_art
    return secret


async def test_a_newcomer_links_enrols_and_unlocks(app: App, clock: ManualClock) -> None:
    await forget_alice(app)
    chat = Chat(app.engine, "alice-laptop", locale="en")
    await chat.start()
    said = await chat.press("why")
    assert "I don't know which CRM account is yours" in said.text

    invitation = await admin.invite(app, "alice", by="cli:sam")
    assert "hidden" in repr(invitation.issued)
    said = await chat.say(invitation.issued.code.lower())
    assert "now linked to the CRM account alice" in said.text
    assert "Scan this QR code" in said.text
    assert said.asks_secret
    secret = await secret_behind_the_qr_code(app, chat, "alice")
    assert len(secret) == 32  # 160 bits
    assert secret not in said.text

    totp = pyotp.TOTP(secret)
    said = await chat.say("000000" if totp.at(clock.now()) != "000000" else "111111")
    assert "That code isn't right" in said.text
    first = totp.at(clock.now())
    said = await chat.say(first)
    assert "authenticator app is set up" in said.text

    # The code that confirmed the app proved who this is: unlocking straight after needs no second one.
    said = await chat.say("unlock me")
    assert not said.asks_secret
    assert "unlocked" in said.text
    assert not (await app.crm.lock_status("alice")).locked


async def test_a_link_code_works_once(app: App) -> None:
    invitation = await admin.invite(app, "kim", by="cli:sam")
    first = Chat(app.engine, "kim-phone", channel="telegram")
    said = await first.say(invitation.issued.code)
    assert "kim" in said.text
    second = Chat(app.engine, "someone-else", channel="telegram", locale="en")
    said = await second.say(invitation.issued.code)
    assert "That link code isn't valid" in said.text


async def test_a_link_code_expires(app: App, clock: ManualClock) -> None:
    invitation = await admin.invite(app, "kim", by="cli:sam")
    clock.advance(timedelta(hours=24, seconds=1))
    chat = Chat(app.engine, "kim-phone", channel="telegram", locale="en")
    said = await chat.say(invitation.issued.code)
    assert "That link code isn't valid" in said.text


async def test_a_new_invitation_voids_the_old_code(app: App) -> None:
    old = await admin.invite(app, "kim", by="cli:sam")
    await admin.invite(app, "kim", by="cli:sam")
    chat = Chat(app.engine, "kim-phone", channel="telegram", locale="en")
    said = await chat.say(old.issued.code)
    assert "That link code isn't valid" in said.text


async def test_a_wrong_code_and_an_unknown_users_code_look_the_same(app: App) -> None:
    chat = Chat(app.engine, "stranger", channel="telegram", locale="en")
    wrong = await chat.say("ABCD-EFGH-JKMN")
    again = await chat.say("ZZZZ-ZZZZ-ZZZZ")
    assert wrong.text == again.text


async def test_a_deep_link_start_links(app: App) -> None:
    from bot.messages import Inbound, InboundKind

    invitation = await admin.invite(app, "kim", by="cli:sam")
    replies = await app.engine.handle(
        Inbound("telegram", "4242", InboundKind.START, text=invitation.issued.code, locale_hint="en")
    )
    assert "linked to the CRM account kim" in "\n".join(r.text for r in replies)


async def test_an_admin_reset_stops_the_old_secret_and_tells_the_user(app: App) -> None:
    from bot import demo

    old_code = await demo.current_code(app, "alice")
    assert await admin.reset_totp(app, "alice", by="cli:sam")
    chat = Chat(app.engine, "alice", locale="en")
    said = await chat.start()
    assert "An admin reset your authenticator app" in said.text
    said = await chat.say("unlock me")
    assert "haven't set up an authenticator app" in said.text
    assert "Set up my authenticator app" in said.labels
    said = await chat.say(old_code)
    assert "unlocked" not in said.text


async def test_unlink_forgets_the_chat_account(app: App) -> None:
    assert await admin.unlink_user(app, "carol", by="cli:sam") == 1
    chat = Chat(app.engine, "carol", locale="en")
    await chat.start()
    said = await chat.press("why")
    assert "I don't know which CRM account is yours" in said.text


async def test_five_wrong_codes_tell_the_admins(app: App, settings, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    from bot.app import open_app

    configured = settings.model_copy(update={"admins": settings.admins.model_copy(update={"usernames": ("sam",)})})
    async with open_app(configured, clock=clock) as with_admins:
        chat = Chat(with_admins.engine, "alice", locale="en")
        await chat.say("unlock me")
        for _ in range(5):
            await chat.say("000000")
        sam = Chat(with_admins.engine, "sam", locale="en")
        said = await sam.start()
        assert "too many wrong codes were entered for alice" in said.text
