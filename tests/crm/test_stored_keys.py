"""Idempotency keys of Salesforce and Keycloak kept in the database: a repeat on another replica does nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.config import KeycloakSettings, SalesforceSettings, Settings
from bot.crm.keycloak import KeycloakCrm
from bot.crm.salesforce import SalesforceCrm
from bot.storage import crm_keys
from bot.storage.crm_keys import StoredKeys
from bot.storage.db import Database
from tests.conftest import START
from tests.fakes import TEST_TIMEOUT, self_signed_certificate, serving
from tests.fakes.keycloak import FakeKeycloak, keycloak_settings
from tests.fakes.salesforce import FakeSalesforce, salesforce_settings

AT = START - timedelta(minutes=7)


@pytest.fixture
async def databases(settings: Settings) -> AsyncIterator[tuple[Database, Database]]:
    """Two handles on one database, as two replicas have."""
    first, second = Database(settings.database_url), Database(settings.database_url)
    await first.upgrade()
    yield first, second
    await first.dispose()
    await second.dispose()


@pytest.fixture
async def realm(clock: ManualClock) -> AsyncIterator[FakeKeycloak]:
    async with serving(FakeKeycloak(clock.now)) as fake:
        fake.add_user("ann", "Ann@Example.com", "Ann", "Lee")
        yield fake


async def keycloak_replicas(
    realm: FakeKeycloak, clock: ManualClock, databases: tuple[Database, Database]
) -> list[KeycloakCrm]:
    settings = KeycloakSettings.model_validate(keycloak_settings(realm))
    return [
        KeycloakCrm(settings, clock, timeout=TEST_TIMEOUT, keys=StoredKeys(database, clock, "keycloak"))
        for database in databases
    ]


async def test_a_keycloak_unlock_repeated_on_another_replica_does_nothing(
    realm: FakeKeycloak, clock: ManualClock, databases: tuple[Database, Database]
) -> None:
    first, second = await keycloak_replicas(realm, clock, databases)
    try:
        realm.lock_out("ann", AT, "203.0.113.50")
        await first.unlock("ann", idempotency_key="outbox-7:0:unlock")
        assert realm.calls("DELETE", "/attack-detection/") == 1
        realm.lock_out("ann", AT, "203.0.113.50")  # locked again since: only a new decision may lift it
        await second.unlock("ann", idempotency_key="outbox-7:0:unlock")
        assert realm.calls("DELETE", "/attack-detection/") == 1
        assert realm.is_locked("ann")
        await second.unlock("ann", idempotency_key="outbox-8:0:unlock")
        assert realm.calls("DELETE", "/attack-detection/") == 2
    finally:
        for crm in (first, second):
            await crm.aclose()


async def test_a_keycloak_reset_link_goes_out_once_per_key_across_replicas(
    realm: FakeKeycloak, clock: ManualClock, databases: tuple[Database, Database]
) -> None:
    first, second = await keycloak_replicas(realm, clock, databases)
    try:
        sent = await first.reset_password("ann", idempotency_key="reset-1")
        again = await second.reset_password("ann", idempotency_key="reset-1")
        assert again == sent
        assert sent.sent_to is not None
        assert "Ann@Example.com" not in sent.sent_to
        assert realm.calls("PUT", "/execute-actions-email") == 1
    finally:
        for crm in (first, second):
            await crm.aclose()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def org(clock: ManualClock, certificate: tuple[Path, Path]) -> AsyncIterator[FakeSalesforce]:
    async with serving(FakeSalesforce(clock.now, certificate=certificate)) as fake:
        fake.add_user("ann@acme.example", "ann@acme.example", "Ann Lee")
        yield fake


async def test_salesforce_keys_outlive_the_process_that_used_them(
    org: FakeSalesforce, certificate: tuple[Path, Path], clock: ManualClock, databases: tuple[Database, Database]
) -> None:
    settings = SalesforceSettings.model_validate(salesforce_settings(org, certificate[0]))
    first = SalesforceCrm(settings, timeout=TEST_TIMEOUT, keys=StoredKeys(databases[0], clock, "salesforce"))
    org.lock_out("ann@acme.example", AT, "203.0.113.9")
    await first.unlock("ann@acme.example", idempotency_key="unlock-1")
    reset = await first.reset_password("ann@acme.example", idempotency_key="reset-1")
    await first.aclose()
    # A restart (or another replica) with the same database repeats neither.
    after = SalesforceCrm(settings, timeout=TEST_TIMEOUT, keys=StoredKeys(databases[1], clock, "salesforce"))
    try:
        org.lock_out("ann@acme.example", AT, "203.0.113.9")
        await after.unlock("ann@acme.example", idempotency_key="unlock-1")
        assert await after.reset_password("ann@acme.example", idempotency_key="reset-1") == reset
        assert org.calls("PATCH", "/sobjects/UserLogin/") == 1
        assert len(org.password_resets) == 1
    finally:
        await after.aclose()


async def test_keys_are_kept_apart_per_system_and_forgotten_after_a_month(
    clock: ManualClock, databases: tuple[Database, Database]
) -> None:
    database = databases[0]
    keycloak, salesforce = StoredKeys(database, clock, "keycloak"), StoredKeys(database, clock, "salesforce")
    await keycloak.done("unlock:k", {})
    await keycloak.done("unlock:k", {"ignored": True})  # a second note of the same key keeps the first
    assert await keycloak.result("unlock:k") == {}
    assert await salesforce.result("unlock:k") is None
    clock.advance(timedelta(days=31))
    async with database.session() as session, session.begin():
        assert await crm_keys.prune(session, now=clock.now(), older_than=timedelta(days=30)) == 1
    assert await keycloak.result("unlock:k") is None
