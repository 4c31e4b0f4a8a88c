"""Nobody approves their own request through another admin's name (issue: invite, link, approve as tina).

Bob is an admin here and has a request of his own. He must not be able to hand himself a second chat account
in another admin's name, and an account bound with a code he issued never decides his request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot import demo
from bot.app import App, open_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.storage.models import AuditEvent, ChatIdentity, UnlockRequest
from tests.chat import Chat


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[App]:
    with_bob = Settings.model_validate({**settings.model_dump(), "admins": {"usernames": ["sam", "tina", "bob"]}})
    async with open_app(with_bob, clock=clock) as opened:
        await demo.seed(opened, reset=True)
        yield opened


async def bob_files(app: App) -> int:
    bob = Chat(app.engine, "bob", locale="en")
    await bob.say("unlock me")
    await bob.say(await demo.current_code(app, "bob"))
    await bob.press("No")  # not travelling: the request goes to the admins
    async with app.database.session() as session:
        request_id = await session.scalar(select(UnlockRequest.id).where(UnlockRequest.crm_username == "bob"))
    assert request_id is not None
    return request_id


async def test_an_admin_with_an_open_request_gets_no_link_code_for_another_admin(app: App) -> None:
    await bob_files(app)
    bob = Chat(app.engine, "bob", locale="en")
    said = await bob.say("invite tina")
    assert "while you have a request of your own" in said.text
    assert not any(c.isdigit() and "-" in r.text for r in said.replies for c in r.text[:1])
    said = await bob.say("invite bob")
    assert "your own admin account" in said.text
    async with app.database.session() as session:
        refusals = list(
            await session.scalars(select(AuditEvent.details).where(AuditEvent.action == "link_code.refused_for_admin"))
        )
    assert [r["why"] for r in refusals] == ["open_request", "own_account"]


async def test_an_account_bob_linked_as_tina_cannot_approve_bobs_request(app: App) -> None:
    bob = Chat(app.engine, "bob", locale="en")
    said = await bob.say("invite tina")  # before he has a request: allowed, and remembered
    link_code = said.replies[-1].text.strip().split()[-1]
    request_id = await bob_files(app)

    second = Chat(app.engine, "bobs-other-phone", locale="en")
    said = await second.say(link_code)
    assert "tina" in said.text
    said = await second.say(f"approve {request_id}")
    assert "You can't decide your own request" in said.text
    said = await second.press_action(f"approve:{request_id}")
    assert "You can't decide your own request" in said.text or "isn't one of the options" in said.text

    async with app.database.session() as session:
        request = await session.get(UnlockRequest, request_id)
        identity = await session.scalar(select(ChatIdentity).where(ChatIdentity.platform_user_id == "bobs-other-phone"))
        refused = list(
            await session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "request.own_decision_refused"))
        )
    assert request is not None
    assert request.status == "pending"
    assert identity is not None
    assert identity.invited_by == "bob"
    assert refused == ["console::bobs-other-phone"]


async def test_tinas_own_accounts_hear_that_a_new_one_was_linked(app: App) -> None:
    sam = Chat(app.engine, "sam", locale="en")
    said = await sam.say("invite tina")
    link_code = said.replies[-1].text.strip().split()[-1]
    newcomer = Chat(app.engine, "tina-laptop", locale="en")
    said = await newcomer.say(link_code)
    assert "was linked to your CRM user" not in said.text  # not told to the new account itself
    tina = Chat(app.engine, "tina", locale="en")
    said = await tina.start()
    assert "A new console chat account was linked to your CRM user" in said.text


async def test_an_approval_records_the_chat_account_that_pressed(app: App) -> None:
    request_id = await bob_files(app)
    sam = Chat(app.engine, "sam", locale="en")
    await sam.say(f"approve {request_id}")
    said = await sam.say(await demo.current_code(app, "sam"))
    assert f"Approved: request #{request_id} for bob" in said.text
    async with app.database.session() as session:
        request = await session.get(UnlockRequest, request_id)
        approved = await session.scalar(select(AuditEvent).where(AuditEvent.action == "request.approved"))
    assert request is not None
    assert (request.decided_by, request.decided_via) == ("sam", "console::sam")
    assert approved is not None
    assert approved.actor == "console::sam"
    assert approved.details["admin"] == "sam"
