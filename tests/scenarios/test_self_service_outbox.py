"""A self-service unlock is recorded before the CRM is asked, and carried out once by the outbox.

The CRM here is Keycloak's fake: it can clear the lock and then never answer, which is the case that used to
roll the whole turn back (code, audit, daily count) while the account was in fact unlocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from bot.app import App, open_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.identity.linking import link
from bot.storage.models import AuditEvent, OutboxItem, TotpEnrolment, UnlockRequest
from tests.chat import Chat
from tests.conftest import START
from tests.fakes import crm_section, serving
from tests.fakes.keycloak import FakeKeycloak, keycloak_settings

SHORT = 0.3  # seconds: one call's time limit, so a CRM that never answers is given up on quickly
SECRET = pyotp.random_base32()
UNLOCK_PATH = "DELETE /admin/realms/acme/attack-detection/"


@pytest.fixture
async def realm(clock: ManualClock) -> AsyncIterator[FakeKeycloak]:
    async with serving(FakeKeycloak(clock.now)) as fake:
        fake.add_user("bob", "bob@example.com", "Bob", "Li")
        fake.lock_out("bob", START - timedelta(minutes=5), "203.0.113.50")
        yield fake


@pytest.fixture
async def app(settings: Settings, clock: ManualClock, realm: FakeKeycloak) -> AsyncIterator[App]:
    crm = crm_section("keycloak", keycloak_settings(realm), timeout_seconds=SHORT, resilience={"retries": 0})
    configured = Settings.model_validate({**settings.model_dump(), "crm": crm})
    async with open_app(configured, clock=clock) as opened:
        async with opened.database.session() as session, session.begin():
            await link(session, now=clock.now(), channel="console", team_id="", user_id="bob", username="bob", by="t")
            await opened.totp.enrol(session, "bob", SECRET, active=True, actor="test")
        yield opened


def code(clock: ManualClock) -> str:
    return pyotp.TOTP(SECRET).at(clock.now())


async def counts(app: App) -> tuple[int, int, list[str]]:
    async with app.database.session() as session:
        audited = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "unlock.self_service")
        )
        queued = await session.scalar(select(func.count()).select_from(OutboxItem))
        statuses = list(await session.scalars(select(UnlockRequest.status).order_by(UnlockRequest.id)))
    return int(audited or 0), int(queued or 0), statuses


async def test_an_unlock_the_crm_answers_too_late_is_audited_counted_and_reported_later(
    app: App, clock: ManualClock, realm: FakeKeycloak
) -> None:
    bob = Chat(app.engine, "bob", locale="en")
    await bob.start()
    await bob.say("unlock me")
    realm.set_mode("late", only=UNLOCK_PATH)
    used = code(clock)
    said = await bob.say(used)
    # The CRM cleared the lock but never answered: the person hears it is under way, not "nothing changed".
    assert "unlocking your CRM account now" in said.text
    assert "nothing was changed" not in said.text.lower()
    assert not (await app.crm.lock_status("bob")).locked
    audited, queued, statuses = await counts(app)
    assert (audited, queued, statuses) == (1, 1, ["executing"])

    # The code is used up, and a second try neither unlocks again nor asks for another code.
    said = await bob.say("unlock me")
    assert "already under way" in said.text or "not locked" in said.text

    # The CRM answers again: the outbox finishes the job once (the repeat is idempotent) and says so.
    realm.set_mode("up")
    clock.advance(timedelta(minutes=1))
    await app.housekeeper.tick()
    audited, queued, statuses = await counts(app)
    assert (audited, queued, statuses) == (1, 1, ["done"])
    said = await bob.say("menu")
    assert "Done: your CRM account is unlocked." in said.text


async def test_a_code_used_for_an_unlock_is_not_accepted_again(
    app: App, clock: ManualClock, realm: FakeKeycloak
) -> None:
    bob = Chat(app.engine, "bob", locale="en")
    await bob.say("unlock me")
    realm.set_mode("hang", only=UNLOCK_PATH)
    used = code(clock)
    await bob.say(used)
    said = await bob.say("unlock me")
    assert "already under way" in said.text
    # The code was used up with the intent, before the CRM was asked: it can never serve again.
    async with app.database.session() as session:
        enrolment = await session.get(TotpEnrolment, "bob")
    assert enrolment is not None
    assert enrolment.last_used_step == int(clock.now().timestamp()) // 30
