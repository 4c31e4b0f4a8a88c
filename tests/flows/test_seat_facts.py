"""The seat facts on a seat-limit request card: what the CRM can tell, and only that."""

from __future__ import annotations

from datetime import timedelta

from bot.app import App
from bot.clock import ManualClock
from bot.config import RestCrmSettings
from bot.crm.rest import RestCrm
from bot.flows.decisions import card
from bot.flows.facts import seat_facts
from bot.storage.models import UnlockRequest
from tests.conftest import START
from tests.fakes import TEST_TIMEOUT, serving
from tests.fakes.rest_crm import FakeRestCrm, rest_settings

SEATS = {"name": "Sales", "seats_total": 2, "seats_used": 3}


async def test_a_crm_that_cannot_tell_who_holds_the_seats_gives_the_seats_only(clock: ManualClock) -> None:
    async with serving(FakeRestCrm(clock.now)) as fake:
        for name in ("dave", "kim", "lee"):
            fake.add_account(name, f"{name}@example.com", name.title())
            fake.licences[name] = SEATS
        fake.last_sign_in["lee"] = START - timedelta(days=50)
        seats_only = RestCrm(
            RestCrmSettings.model_validate(rest_settings(fake, capabilities=["licences"])), timeout=TEST_TIMEOUT
        )
        both = RestCrm(
            RestCrmSettings.model_validate(rest_settings(fake, capabilities=["licences", "seat_usage"])),
            timeout=TEST_TIMEOUT,
        )
        try:
            facts = await seat_facts(seats_only, "dave", None)
            unknown = {"expires_at": None, "trial": False, "usage_cap": None, "usage_used": None}
            assert facts == {"licence": {**SEATS, **unknown}}  # no seat holders: the card says the seats only
            facts = await seat_facts(both, "dave", None)
            assert facts["inactive_accounts"] == [  # dave, who asks, is never suggested
                {"username": "kim", "display_name": "Kim", "last_sign_in_at": None},
                {"username": "lee", "display_name": "Lee", "last_sign_in_at": (START - timedelta(days=50)).isoformat()},
            ]
            await fake.stop()  # the CRM goes away: the request is still filed, with what the lock said
            assert await seat_facts(both, "dave", None) == {}
        finally:
            await seats_only.aclose()
            await both.aclose()


def seat_request(evidence: dict[str, object]) -> UnlockRequest:
    return UnlockRequest(
        id=4,
        kind="unlock",
        crm_username="dave",
        reason="seat_limit",
        evidence=evidence,
        answers={},
        created_at=START,
        expires_at=START + timedelta(days=1),
        status="pending",
        decided_by=None,
        decided_at=None,
        decision_note=None,
    )


def test_the_card_says_seats_used_of_total_and_names_nobody_when_the_crm_cannot_tell(app: App) -> None:
    licence = {**SEATS, "expires_at": None}
    for locale, seats, longest in (("en", "3 of 2 seats used", "Longest"), ("zh-CN", "已用席位 3 / 2", "最久")):
        text = app.renderer.render(card(seat_request({"licence": licence}), now_pending=True), locale).text
        assert seats in text
        assert longest not in text
        holders = [{"username": "kim", "display_name": "Kim", "last_sign_in_at": None}]
        text = app.renderer.render(
            card(seat_request({"licence": licence, "inactive_accounts": holders}), now_pending=True), locale
        ).text
        assert longest in text
        assert "kim" in text
