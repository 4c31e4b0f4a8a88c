"""The Salesforce backend against a fake org over HTTPS: reasons from LoginHistory, sessions, errors, TLS."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.config import SalesforceSettings
from bot.crm.base import LockReason
from bot.crm.salesforce import SalesforceCrm, refusal_reason
from bot.errors import AccountNotFound, CrmError, CrmUnavailable, CrmUnsupported
from tests.conftest import START
from tests.fakes import TEST_TIMEOUT, self_signed_certificate, serving
from tests.fakes.salesforce import FakeSalesforce, salesforce_settings

AT = START - timedelta(minutes=20)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def org(clock: ManualClock, certificate: tuple[Path, Path]) -> AsyncIterator[FakeSalesforce]:
    async with serving(FakeSalesforce(clock.now, certificate=certificate)) as fake:
        fake.add_user("ann@acme.example", "ann@acme.example", "Ann Lee")
        yield fake


def settings_for(org: FakeSalesforce, certificate: tuple[Path, Path], **changes: object) -> SalesforceSettings:
    return SalesforceSettings.model_validate({**salesforce_settings(org, certificate[0]), **changes})


@pytest.fixture
async def crm(org: FakeSalesforce, certificate: tuple[Path, Path]) -> AsyncIterator[SalesforceCrm]:
    backend = SalesforceCrm(settings_for(org, certificate), timeout=TEST_TIMEOUT)
    yield backend
    await backend.aclose()


# --- how a lock is read ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("Password Lockout", LockReason.FAILED_PASSWORD),
        ("Invalid Password", LockReason.FAILED_PASSWORD),
        ("Restricted IP", LockReason.UNUSUAL_IP),
        ("Failed: Computer activation required", LockReason.UNUSUAL_IP),
        ("Computer activation required", LockReason.UNUSUAL_IP),
        ("User is Frozen", LockReason.UNKNOWN),
        ("Success", None),
        ("Failed: API security token required", None),
    ],
)
def test_login_history_statuses_map_to_reasons(status: str, reason: LockReason | None) -> None:
    assert refusal_reason(status) is reason


async def test_a_password_lockout_shows_the_wrong_passwords_since_the_last_success(
    org: FakeSalesforce, crm: SalesforceCrm
) -> None:
    org.sign_in("ann@acme.example", AT - timedelta(days=1), "198.51.100.1", "Success", "CN")
    org.lock_out("ann@acme.example", AT, "203.0.113.9", failures=4)
    status = await crm.lock_status("ann@acme.example")
    assert (status.locked, status.reason, status.locked_at) == (True, LockReason.FAILED_PASSWORD, AT)
    attempts = status.evidence.failed_attempts
    assert [a.ip for a in attempts] == ["203.0.113.9"] * 4
    assert attempts[-1].at == AT
    assert attempts[0].location == "CN"
    assert status.evidence.ip is None  # an address is "flagged" only for unusual-IP locks


async def test_a_sign_in_refused_for_its_address_is_an_unusual_ip_lock(org: FakeSalesforce, crm: SalesforceCrm) -> None:
    org.sign_in("ann@acme.example", AT, "198.51.100.23", "Restricted IP", "VN")
    status = await crm.lock_status("ann@acme.example")
    assert (status.locked, status.reason, status.locked_at) == (True, LockReason.UNUSUAL_IP, AT)
    assert (status.evidence.ip, status.evidence.location) == ("198.51.100.23", "VN")


async def test_a_success_after_refusals_means_not_locked(org: FakeSalesforce, crm: SalesforceCrm) -> None:
    org.sign_in("ann@acme.example", AT, "198.51.100.23", "Restricted IP")
    org.sign_in("ann@acme.example", AT + timedelta(minutes=1), "198.51.100.23", "Success")
    assert (await crm.lock_status("ann@acme.example")).locked is False


async def test_a_frozen_user_is_locked_for_an_unknown_reason_and_says_so(
    org: FakeSalesforce, crm: SalesforceCrm
) -> None:
    org.freeze("ann@acme.example", AT)
    status = await crm.lock_status("ann@acme.example")
    assert (status.locked, status.reason, status.locked_at) == (True, LockReason.UNKNOWN, AT)
    assert "froze" in status.evidence.detail
    await crm.unlock("ann@acme.example", idempotency_key="unfreeze-1")
    assert org.logins[org.user("ann@acme.example").id].frozen is False


async def test_an_email_shared_by_two_users_finds_nobody(org: FakeSalesforce, crm: SalesforceCrm) -> None:
    org.add_user("ann.sandbox@acme.example", "ann@acme.example", "Ann Lee (sandbox)")
    org.add_user("dan@acme.example", "shared@acme.example", "Dan")
    org.add_user("dee@acme.example", "shared@acme.example", "Dee")
    assert await crm.find_account("shared@acme.example") is None
    account = await crm.find_account("ann@acme.example")
    assert account is not None
    assert account.username == "ann@acme.example"


# --- what it changes -------------------------------------------------------------------------------------------


async def test_unlock_patches_user_login_only_when_something_is_locked(org: FakeSalesforce, crm: SalesforceCrm) -> None:
    await crm.unlock("ann@acme.example", idempotency_key="nothing-to-do")
    assert org.calls("PATCH") == 0
    org.lock_out("ann@acme.example", AT, "203.0.113.9")
    await crm.unlock("ann@acme.example", idempotency_key="unlock-1")
    assert org.calls("PATCH", "/sobjects/UserLogin/") == 1
    assert org.unlocks == 1


async def test_a_password_reset_never_keeps_the_temporary_password(
    org: FakeSalesforce, crm: SalesforceCrm, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reset = await crm.reset_password("ann@acme.example", idempotency_key="reset-1")
    assert reset.sent_to == "a***@acme.example"
    assert org.calls("DELETE", "/password") == 1
    assert "NewPassword" not in caplog.text
    assert "NewPassword" not in repr(reset)


async def test_licence_facts_come_from_user_license(org: FakeSalesforce, crm: SalesforceCrm) -> None:
    licence_id = org.add_licence("Salesforce Platform", 50, 50)
    org.add_user("bo@acme.example", "bo@acme.example", "Bo", licence_id=licence_id)
    licence = await crm.licence("bo@acme.example")
    assert licence is not None
    assert (licence.name, licence.seats_total, licence.seats_used, licence.expires_at) == (
        "Salesforce Platform",
        50,
        50,
        None,
    )


async def test_the_licence_list_is_the_active_user_licenses_the_company_holds_seats_of(
    org: FakeSalesforce, crm: SalesforceCrm
) -> None:
    org.add_licence("Salesforce", 25, 24)
    org.add_licence("Chatter Free", 0, 0)  # every org lists licence types it holds none of
    disabled = org.add_licence("Salesforce Platform", 10, 0)
    org.licences[disabled]["Status"] = "Disabled"
    licences = await crm.all_licences()
    assert [(x.name, x.seats_total, x.seats_used, x.expires_at) for x in licences] == [("Salesforce", 25, 24, None)]


async def test_seat_holders_are_active_users_of_the_licence_by_last_login(
    org: FakeSalesforce, crm: SalesforceCrm
) -> None:
    licence_id = org.add_licence("Salesforce", 25, 24)
    other = org.add_licence("Salesforce Platform", 10, 1)
    org.add_user("old@acme.example", "old@acme.example", "Old Timer", licence_id=licence_id).last_login = (
        START - timedelta(days=120)
    )
    org.add_user("new@acme.example", "new@acme.example", "New Hire", licence_id=licence_id)  # never signed in
    org.add_user("now@acme.example", "now@acme.example", "Busy Bee", licence_id=licence_id).last_login = START
    gone = org.add_user("gone@acme.example", "gone@acme.example", "Gone", licence_id=licence_id)
    gone.active = False
    org.add_user("plat@acme.example", "plat@acme.example", "Platform User", licence_id=other)
    holders = await crm.inactive_users("Salesforce", limit=2)
    assert [(h.username, h.display_name, h.last_sign_in_at) for h in holders] == [
        ("new@acme.example", "New Hire", None),
        ("old@acme.example", "Old Timer", START - timedelta(days=120)),
    ]
    assert await crm.inactive_users("x' OR Name != 'y", limit=5) == []  # a name never widens the query


# --- sessions and errors ---------------------------------------------------------------------------------------


async def test_an_expired_session_signs_in_once_more_and_carries_on(org: FakeSalesforce, crm: SalesforceCrm) -> None:
    assert await crm.find_account("ann@acme.example") is not None
    org.expire_sessions()
    assert await crm.find_account("ann@acme.example") is not None
    assert org.sign_ins == 2


async def test_a_session_refused_even_when_fresh_is_an_error_not_an_outage(
    org: FakeSalesforce, crm: SalesforceCrm
) -> None:
    await crm.find_account("ann@acme.example")
    invalid = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    org.answer_next(401, invalid)
    org.answer_next(200, {"access_token": "another", "instance_url": org.url, "token_type": "Bearer"})
    org.answer_next(401, invalid)
    with pytest.raises(CrmError, match="fresh session") as refused:
        await crm.lock_status("ann@acme.example")
    assert not isinstance(refused.value, CrmUnavailable)


async def test_wrong_app_credentials_are_an_error_naming_salesforce(
    org: FakeSalesforce, certificate: tuple[Path, Path]
) -> None:
    crm = SalesforceCrm(settings_for(org, certificate, client_secret="wrong"), timeout=TEST_TIMEOUT)
    try:
        with pytest.raises(CrmError, match="invalid client credentials"):
            await crm.find_account("ann@acme.example")
    finally:
        await crm.aclose()


@pytest.mark.parametrize(
    ("status", "code", "error", "match"),
    [
        (403, "INSUFFICIENT_ACCESS", CrmError, "does not let the connected app"),
        (400, "INVALID_NEW_PASSWORD", CrmError, "refused the new password"),
        (404, "NOT_FOUND", AccountNotFound, "ann@acme.example"),
        (403, "REQUEST_LIMIT_EXCEEDED", CrmUnavailable, "request limit"),
        (503, "SERVER_UNAVAILABLE", CrmUnavailable, "503"),
    ],
)
async def test_salesforce_errors_become_ours(
    org: FakeSalesforce, crm: SalesforceCrm, status: int, code: str, error: type[Exception], match: str
) -> None:
    await crm.find_account("ann@acme.example")  # signed in, user known
    org.answer_next(200, {"totalSize": 1, "done": True, "records": [_user_record(org)]})
    org.answer_next(status, [{"message": f"{code} from the fake", "errorCode": code}])
    with pytest.raises(error, match=match):
        await crm.reset_password("ann@acme.example", idempotency_key=f"reset-{code}")


def _user_record(org: FakeSalesforce) -> dict[str, object]:
    user = org.user("ann@acme.example")
    return {"attributes": {"type": "User"}, "Id": user.id, "Username": user.username, "Email": user.email}


async def test_a_certificate_nobody_trusts_is_refused(org: FakeSalesforce, certificate: tuple[Path, Path]) -> None:
    crm = SalesforceCrm(settings_for(org, certificate, ca_file=None), timeout=TEST_TIMEOUT)
    try:
        with pytest.raises(CrmUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await crm.find_account("ann@acme.example")
    finally:
        await crm.aclose()


def test_settings_insist_on_https() -> None:
    with pytest.raises(ValueError, match="https"):
        SalesforceSettings(instance_url="http://acme.my.salesforce.com")


async def test_what_salesforce_cannot_do_here_is_refused_unasked(org: FakeSalesforce, crm: SalesforceCrm) -> None:
    with pytest.raises(CrmUnsupported):
        await crm.add_trusted_ip("ann@acme.example", "198.51.100.23", note="")
    with pytest.raises(CrmUnsupported):
        await crm.system_status()
    assert org.requests == []
