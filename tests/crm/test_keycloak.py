"""The Keycloak backend against a fake realm: brute-force locks, disabled users, the token, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.clock import ManualClock
from bot.config import KeycloakSettings
from bot.crm.base import LockReason
from bot.crm.keycloak import KeycloakCrm
from bot.errors import CrmError, CrmUnavailable, CrmUnsupported
from tests.conftest import START
from tests.fakes import TEST_TIMEOUT, serving
from tests.fakes.keycloak import TOKEN_SECONDS, FakeKeycloak, keycloak_settings

AT = START - timedelta(minutes=7)


@pytest.fixture
async def realm(clock: ManualClock) -> AsyncIterator[FakeKeycloak]:
    async with serving(FakeKeycloak(clock.now)) as fake:
        fake.add_user("ann", "Ann@Example.com", "Ann", "Lee")
        yield fake


@pytest.fixture
async def crm(realm: FakeKeycloak, clock: ManualClock) -> AsyncIterator[KeycloakCrm]:
    backend = KeycloakCrm(KeycloakSettings.model_validate(keycloak_settings(realm)), clock, timeout=TEST_TIMEOUT)
    yield backend
    await backend.aclose()


async def test_a_brute_force_lock_out_is_a_failed_password_lock_with_its_evidence(
    realm: FakeKeycloak, crm: KeycloakCrm
) -> None:
    realm.lock_out("ann", AT, "203.0.113.50", failures=6)
    status = await crm.lock_status("ann")
    assert (status.locked, status.reason, status.locked_at) == (True, LockReason.FAILED_PASSWORD, AT)
    (attempt,) = status.evidence.failed_attempts
    assert (attempt.at, attempt.ip, attempt.success) == (AT, "203.0.113.50", False)
    assert "6 failed sign-in" in status.evidence.detail


async def test_a_permanent_lock_out_is_a_failed_password_lock_and_unlock_enables_the_user(
    realm: FakeKeycloak, crm: KeycloakCrm
) -> None:
    realm.lock_out("ann", AT, "203.0.113.50")
    realm.failures[realm.user("ann")["id"]]["disabled"] = False
    realm.disable("ann", reason="permanentLockout")
    assert (await crm.lock_status("ann")).reason is LockReason.FAILED_PASSWORD
    await crm.unlock("ann", idempotency_key="unlock-1")
    assert realm.user("ann")["enabled"] is True
    assert realm.calls("DELETE", "/attack-detection/") == 1
    assert realm.calls("PUT", "/users/") == 1
    assert (await crm.lock_status("ann")).locked is False


async def test_a_user_disabled_by_an_administrator_is_locked_for_an_unknown_reason(
    realm: FakeKeycloak, crm: KeycloakCrm
) -> None:
    realm.disable("ann")
    status = await crm.lock_status("ann")
    assert (status.locked, status.reason, status.locked_at) == (True, LockReason.UNKNOWN, None)
    assert "disabled" in status.evidence.detail


async def test_an_unlocked_user_needs_no_enabling(realm: FakeKeycloak, crm: KeycloakCrm) -> None:
    realm.lock_out("ann", AT, "203.0.113.50")
    await crm.unlock("ann", idempotency_key="unlock-2")
    assert realm.calls("PUT") == 0
    assert realm.unlocks == 1


async def test_the_reset_link_is_sent_by_keycloak(realm: FakeKeycloak, crm: KeycloakCrm) -> None:
    reset = await crm.reset_password("ann", idempotency_key="reset-1")
    assert reset.sent_to == "a***@example.com"
    assert realm.action_emails == [(realm.user("ann")["id"], ["UPDATE_PASSWORD"])]


async def test_an_account_is_found_by_email_too(crm: KeycloakCrm) -> None:
    account = await crm.find_account("ann@example.com")
    assert account is not None
    assert (account.username, account.display_name) == ("ann", "Ann Lee")


# --- the token -------------------------------------------------------------------------------------------------


async def test_the_token_is_kept_until_shortly_before_it_expires(
    realm: FakeKeycloak, crm: KeycloakCrm, clock: ManualClock
) -> None:
    await crm.find_account("ann")
    await crm.lock_status("ann")
    assert realm.token_requests == 1
    clock.advance(timedelta(seconds=TOKEN_SECONDS - 10))
    await crm.find_account("ann")
    assert realm.token_requests == 2


async def test_a_revoked_token_is_replaced_once(realm: FakeKeycloak, crm: KeycloakCrm) -> None:
    await crm.find_account("ann")
    realm.revoke_tokens()
    assert await crm.find_account("ann") is not None
    assert realm.token_requests == 2


async def test_wrong_client_credentials_are_an_error_not_an_outage(realm: FakeKeycloak, clock: ManualClock) -> None:
    settings = KeycloakSettings.model_validate({**keycloak_settings(realm), "client_secret": "wrong"})
    crm = KeycloakCrm(settings, clock, timeout=TEST_TIMEOUT)
    try:
        with pytest.raises(CrmError, match="Invalid client") as refused:
            await crm.find_account("ann")
        assert not isinstance(refused.value, CrmUnavailable)
    finally:
        await crm.aclose()


async def test_a_service_account_without_the_role_is_told_what_it_lacks(realm: FakeKeycloak, crm: KeycloakCrm) -> None:
    await crm.find_account("ann")
    realm.answer_next(403, {"error": "HTTP 403 Forbidden"})
    with pytest.raises(CrmError, match="manage-users"):
        await crm.lock_status("ann")


async def test_a_keycloak_that_answers_500_is_unavailable(realm: FakeKeycloak, crm: KeycloakCrm) -> None:
    realm.set_mode("error")
    with pytest.raises(CrmUnavailable, match="500"):
        await crm.lock_status("ann")


async def test_what_keycloak_does_not_know_is_refused_without_asking(realm: FakeKeycloak, crm: KeycloakCrm) -> None:
    with pytest.raises(CrmUnsupported):
        await crm.licence("ann")
    with pytest.raises(CrmUnsupported):
        await crm.system_status()
    with pytest.raises(CrmUnsupported):
        await crm.locks_since(AT)
    with pytest.raises(CrmUnsupported):
        await crm.add_trusted_ip("ann", "198.51.100.23", note="")
    assert realm.requests == []
