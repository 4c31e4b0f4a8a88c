"""One contract for every CRM backend: what each capability promises, checked against sql, Salesforce, Keycloak, REST.

Each backend is built the way the app builds it (``bot.crm.registry``, so the
remote ones come wrapped in ``ResilientCrm``) and runs against its world: a
fresh embedded database for ``sql``, a local fake of the vendor's API for the
others. A ``World`` sets up users and locks in the vendor's own terms and reads
back what really happened there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.config import Settings
from bot.crm.base import Capability, CrmBackend, LockReason
from bot.crm.registry import build_crm
from bot.crm.sql import SqlCrm
from bot.crm.sql_schema import CrmAdminAction, CrmLicence, CrmLockEvent, CrmLoginAttempt, CrmTrustedIp, CrmUser
from bot.errors import AccountNotFound, CrmUnavailable, CrmUnsupported
from bot.storage.db import Database
from tests.conftest import START
from tests.fakes import FakeService, crm_section, self_signed_certificate
from tests.fakes.keycloak import FakeKeycloak, keycloak_settings
from tests.fakes.rest_crm import FakeRestCrm, rest_settings
from tests.fakes.salesforce import FakeSalesforce, salesforce_settings

LOCKED_AT = START - timedelta(minutes=10)
IP = "203.0.113.77"
BACKENDS = ["sql", "salesforce", "keycloak", "rest"]


class World(Protocol):
    """A CRM as its vendor sees it, and the backend that talks to it."""

    crm: CrmBackend

    async def add_user(
        self, username: str, email: str, name: str, *, licence: tuple[str, int, int] | None = None
    ) -> None:
        """A user; ``licence`` is (name, seats in total, seats used)."""

    async def lock_out(self, username: str) -> None:
        """Wrong passwords from ``IP`` until the CRM locks the user out at ``LOCKED_AT``."""

    async def is_locked(self, username: str) -> bool: ...

    async def signed_in(self, username: str, at: datetime) -> None:
        """The user signed in successfully at ``at``."""

    async def resets(self) -> int: ...

    async def trusted(self, username: str) -> set[str]: ...

    async def go_down(self) -> None:
        """From now on the CRM cannot be reached."""

    async def close(self) -> None: ...


class SqlWorld:
    def __init__(self, folder: Path, clock: ManualClock) -> None:
        self.clock = clock
        self.database = Database(f"sqlite:///{folder / 'contract-crm.db'}")
        self.crm: CrmBackend = SqlCrm(self.database, clock, timeout=1.0)

    async def start(self) -> None:
        assert isinstance(self.crm, SqlCrm)
        await self.crm.create_schema()

    async def _user(self, username: str) -> CrmUser:
        async with self.database.session() as session:
            user = await session.scalar(select(CrmUser).where(CrmUser.username == username))
            assert user is not None
            return user

    async def add_user(
        self, username: str, email: str, name: str, *, licence: tuple[str, int, int] | None = None
    ) -> None:
        async with self.database.session() as session, session.begin():
            licence_row = None
            if licence is not None:
                licence_row = await session.scalar(select(CrmLicence).where(CrmLicence.name == licence[0]))
            if licence is not None and licence_row is None:
                licence_row = CrmLicence(name=licence[0], expires_at=None, seats_total=licence[1])
                session.add(licence_row)
                await session.flush()
            session.add(
                CrmUser(
                    username=username,
                    email=email,
                    display_name=name,
                    licence_id=licence_row.id if licence_row else None,
                )
            )

    async def lock_out(self, username: str) -> None:
        user = await self._user(username)
        async with self.database.session() as session, session.begin():
            for minutes in (3, 2, 1):
                session.add(
                    CrmLoginAttempt(user_id=user.id, at=LOCKED_AT - timedelta(minutes=minutes), ip=IP, success=False)
                )
            row = await session.get(CrmUser, user.id)
            assert row is not None
            row.locked, row.lock_reason, row.locked_at = True, LockReason.FAILED_PASSWORD.value, LOCKED_AT
            session.add(CrmLockEvent(user_id=user.id, reason=LockReason.FAILED_PASSWORD.value, at=LOCKED_AT))

    async def is_locked(self, username: str) -> bool:
        return (await self._user(username)).locked

    async def signed_in(self, username: str, at: datetime) -> None:
        user = await self._user(username)
        async with self.database.session() as session, session.begin():
            session.add(CrmLoginAttempt(user_id=user.id, at=at, ip=IP, success=True))

    async def resets(self) -> int:
        async with self.database.session() as session:
            query = select(func.count()).select_from(CrmAdminAction).where(CrmAdminAction.action == "reset_password")
            return int(await session.scalar(query) or 0)

    async def trusted(self, username: str) -> set[str]:
        user = await self._user(username)
        async with self.database.session() as session:
            return set(await session.scalars(select(CrmTrustedIp.ip).where(CrmTrustedIp.user_id == user.id)))

    async def go_down(self) -> None:
        await self.crm.aclose()
        # Nothing listens on port 1: every connection is refused.
        self.crm = SqlCrm(Database("postgresql+psycopg://crm@127.0.0.1:1/crm"), self.clock, timeout=1.0)

    async def close(self) -> None:
        await self.crm.aclose()
        await self.database.dispose()


class RemoteWorld:
    """The parts every world behind a fake HTTP API shares."""

    fake: FakeService
    crm: CrmBackend

    async def go_down(self) -> None:
        await self.fake.stop()

    async def close(self) -> None:
        await self.crm.aclose()
        await self.fake.stop()


class SalesforceWorld(RemoteWorld):
    def __init__(self, fake: FakeSalesforce, settings: Settings, clock: ManualClock) -> None:
        self.fake = self.salesforce = fake
        self.crm = build_crm(settings, clock)

    async def add_user(
        self, username: str, email: str, name: str, *, licence: tuple[str, int, int] | None = None
    ) -> None:
        licence_id = None
        if licence is not None:
            named = (key for key, row in self.salesforce.licences.items() if row["Name"] == licence[0])
            licence_id = next(named, None) or self.salesforce.add_licence(*licence)
        self.salesforce.add_user(username, email, name, licence_id=licence_id)

    async def lock_out(self, username: str) -> None:
        self.salesforce.lock_out(username, LOCKED_AT, IP)

    async def is_locked(self, username: str) -> bool:
        login = self.salesforce.logins[self.salesforce.user(username).id]
        return login.password_locked or login.frozen

    async def signed_in(self, username: str, at: datetime) -> None:
        self.salesforce.sign_in(username, at, IP, "Success")
        self.salesforce.user(username).last_login = at

    async def resets(self) -> int:
        return len(self.salesforce.password_resets)

    async def trusted(self, username: str) -> set[str]:
        raise AssertionError("Salesforce keeps no per-user trusted addresses")


class KeycloakWorld(RemoteWorld):
    def __init__(self, fake: FakeKeycloak, settings: Settings, clock: ManualClock) -> None:
        self.fake = self.keycloak = fake
        self.crm = build_crm(settings, clock)

    async def add_user(
        self, username: str, email: str, name: str, *, licence: tuple[str, int, int] | None = None
    ) -> None:
        first, _, last = name.partition(" ")
        self.keycloak.add_user(username, email, first, last)

    async def lock_out(self, username: str) -> None:
        self.keycloak.lock_out(username, LOCKED_AT, IP)

    async def is_locked(self, username: str) -> bool:
        return self.keycloak.is_locked(username)

    async def signed_in(self, username: str, at: datetime) -> None:
        pass  # the backend reads no sign-in times from Keycloak

    async def resets(self) -> int:
        return len(self.keycloak.action_emails)

    async def trusted(self, username: str) -> set[str]:
        raise AssertionError("Keycloak keeps no trusted addresses")


class RestWorld(RemoteWorld):
    def __init__(self, fake: FakeRestCrm, settings: Settings, clock: ManualClock) -> None:
        self.fake = self.rest = fake
        self.crm = build_crm(settings, clock)

    async def add_user(
        self, username: str, email: str, name: str, *, licence: tuple[str, int, int] | None = None
    ) -> None:
        self.rest.add_account(username, email, name)
        if licence:
            self.rest.licences[username] = {"name": licence[0], "seats_total": licence[1], "seats_used": licence[2]}

    async def lock_out(self, username: str) -> None:
        attempts = [
            {"at": (LOCKED_AT - timedelta(minutes=m)).isoformat(), "ip": IP, "success": False} for m in (3, 2, 1)
        ]
        self.rest.lock(username, "failed_password", LOCKED_AT, {"failed_attempts": attempts})

    async def is_locked(self, username: str) -> bool:
        return bool(self.rest.accounts[username]["locked"])

    async def signed_in(self, username: str, at: datetime) -> None:
        self.rest.last_sign_in[username] = at

    async def resets(self) -> int:
        return len(self.rest.resets)

    async def trusted(self, username: str) -> set[str]:
        return self.rest.trusted.get(username, set())


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=BACKENDS)
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock, certificate: tuple[Path, Path]
) -> AsyncIterator[World]:
    opened: World
    if request.param == "sql":
        sql = SqlWorld(tmp_path, clock)
        await sql.start()
        opened = sql
    elif request.param == "salesforce":
        salesforce = FakeSalesforce(clock.now, certificate=certificate)
        await salesforce.start()
        settings = Settings.model_validate(
            {"crm": crm_section("salesforce", salesforce_settings(salesforce, certificate[0]))}
        )
        opened = SalesforceWorld(salesforce, settings, clock)
    elif request.param == "keycloak":
        keycloak = FakeKeycloak(clock.now)
        await keycloak.start()
        opened = KeycloakWorld(
            keycloak, Settings.model_validate({"crm": crm_section("keycloak", keycloak_settings(keycloak))}), clock
        )
    else:
        rest = FakeRestCrm(clock.now)
        await rest.start()
        every = [c.value for c in Capability]
        settings = Settings.model_validate({"crm": crm_section("rest", rest_settings(rest, capabilities=every))})
        opened = RestWorld(rest, settings, clock)
    await opened.add_user("ann", "ann@example.com", "Ann Lee", licence=("Sales Cloud", 10, 7))
    await opened.add_user("ben", "ben@example.com", "Ben Ko")
    try:
        yield opened
    finally:
        await opened.close()


def needs(world: World, capability: Capability) -> None:
    if capability not in world.crm.capabilities:
        pytest.skip(f"{world.crm.name} does not offer {capability.value}")


# --- accounts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["ann", "ann@example.com", "ANN@Example.com"])
async def test_an_account_is_found_by_username_or_email(world: World, query: str) -> None:
    account = await world.crm.find_account(query)
    assert account is not None
    assert (account.username, account.email, account.display_name, account.active) == (
        "ann",
        "ann@example.com",
        "Ann Lee",
        True,
    )


@pytest.mark.parametrize("query", ["nobody", "nobody@example.com", "' OR Username != '"])
async def test_an_unknown_query_finds_nobody(world: World, query: str) -> None:
    assert await world.crm.find_account(query) is None


# --- lock status -----------------------------------------------------------------------------------------------


async def test_an_account_nobody_locked_is_not_locked(world: World) -> None:
    needs(world, Capability.LOCK_STATUS)
    status = await world.crm.lock_status("ben")
    assert (status.username, status.locked, status.reason) == ("ben", False, None)


async def test_a_lock_out_after_wrong_passwords_is_a_failed_password_lock(world: World) -> None:
    needs(world, Capability.LOCK_STATUS)
    await world.lock_out("ann")
    status = await world.crm.lock_status("ann")
    assert status.locked is True
    assert status.reason is LockReason.FAILED_PASSWORD
    assert status.locked_at is not None
    assert abs(status.locked_at - LOCKED_AT) < timedelta(minutes=5)


async def test_login_history_gives_the_failed_sign_ins_as_evidence(world: World) -> None:
    needs(world, Capability.LOGIN_HISTORY)
    await world.lock_out("ann")
    attempts = (await world.crm.lock_status("ann")).evidence.failed_attempts
    assert attempts
    assert all(not a.success and a.ip == IP for a in attempts)
    assert [a.at for a in attempts] == sorted(a.at for a in attempts)
    assert all(a.at <= LOCKED_AT for a in attempts)


async def test_the_lock_status_of_an_unknown_account_is_account_not_found(world: World) -> None:
    needs(world, Capability.LOCK_STATUS)
    with pytest.raises(AccountNotFound):
        await world.crm.lock_status("nobody")


# --- unlocking -------------------------------------------------------------------------------------------------


async def test_unlock_lets_the_person_in_again(world: World) -> None:
    needs(world, Capability.UNLOCK)
    await world.lock_out("ann")
    await world.crm.unlock("ann", idempotency_key="contract-unlock-1")
    assert await world.is_locked("ann") is False
    assert (await world.crm.lock_status("ann")).locked is False
    assert await world.is_locked("ben") is False


async def test_an_unlock_repeated_with_its_key_does_nothing_more(world: World) -> None:
    needs(world, Capability.UNLOCK)
    await world.lock_out("ann")
    await world.crm.unlock("ann", idempotency_key="contract-unlock-2")
    await world.lock_out("ann")  # locked again, for a new reason of its own
    await world.crm.unlock("ann", idempotency_key="contract-unlock-2")
    assert await world.is_locked("ann") is True


async def test_unlocking_an_unknown_account_is_account_not_found(world: World) -> None:
    needs(world, Capability.UNLOCK)
    with pytest.raises(AccountNotFound):
        await world.crm.unlock("nobody", idempotency_key="contract-unlock-3")


# --- the other capabilities ------------------------------------------------------------------------------------


async def test_a_password_reset_goes_to_a_masked_address_once_per_key(world: World) -> None:
    needs(world, Capability.RESET_PASSWORD)
    first = await world.crm.reset_password("ann", idempotency_key="contract-reset-1")
    again = await world.crm.reset_password("ann", idempotency_key="contract-reset-1")
    assert first.sent_to == again.sent_to == "a***@example.com"
    assert await world.resets() == 1


async def test_licence_facts_name_the_licence_and_its_seats(world: World) -> None:
    needs(world, Capability.LICENCES)
    licence = await world.crm.licence("ann")
    assert licence is not None
    assert (licence.name, licence.seats_total) == ("Sales Cloud", 10)
    assert licence.seats_used is None or 0 <= licence.seats_used <= 10
    assert await world.crm.licence("ben") is None


async def test_the_licence_list_names_each_licence_once_with_its_seats(world: World) -> None:
    needs(world, Capability.LICENCE_LIST)
    await world.add_user("cat", "cat@example.com", "Cat Wu", licence=("Sales Cloud", 10, 7))
    licences = await world.crm.all_licences()
    assert [(licence.name, licence.seats_total) for licence in licences] == [("Sales Cloud", 10)]
    assert licences[0].seats_used is None or 0 <= licences[0].seats_used <= 10


async def test_the_seat_holders_come_longest_without_a_sign_in_first(world: World) -> None:
    needs(world, Capability.SEAT_USAGE)
    for name in ("cat", "dan", "eve"):
        await world.add_user(name, f"{name}@example.com", f"{name.title()} Lee", licence=("Sales Cloud", 10, 7))
    await world.signed_in("ann", START - timedelta(days=2))
    await world.signed_in("cat", START - timedelta(days=90))
    await world.signed_in("cat", START - timedelta(days=40))  # the last sign-in is what counts
    await world.signed_in("eve", START - timedelta(days=60))
    holders = await world.crm.inactive_users("Sales Cloud", limit=3)  # dan never signed in
    assert [(h.username, h.last_sign_in_at) for h in holders] == [
        ("dan", None),
        ("eve", START - timedelta(days=60)),
        ("cat", START - timedelta(days=40)),
    ]
    assert holders[0].display_name == "Dan Lee"
    assert await world.crm.inactive_users("Nobody's Licence", limit=3) == []


async def test_locks_since_counts_locks_at_or_after_the_time(world: World) -> None:
    needs(world, Capability.LOCK_STATISTICS)
    await world.lock_out("ann")
    assert await world.crm.locks_since(LOCKED_AT - timedelta(hours=1)) == 1
    assert await world.crm.locks_since(LOCKED_AT + timedelta(hours=1)) == 0


async def test_lock_events_name_each_lock_since_the_time_with_an_id_that_stays(world: World) -> None:
    needs(world, Capability.LOCK_EVENTS)
    await world.lock_out("ann")
    first = await world.crm.lock_events(LOCKED_AT - timedelta(hours=1))
    assert [(e.username, e.reason, e.at) for e in first] == [("ann", LockReason.FAILED_PASSWORD, LOCKED_AT)]
    assert [e.id for e in await world.crm.lock_events(LOCKED_AT)] == [first[0].id]  # "at or after", the same id
    assert await world.crm.lock_events(LOCKED_AT + timedelta(seconds=1)) == []


async def test_a_trusted_address_is_added_once_however_often_asked(world: World) -> None:
    needs(world, Capability.TRUSTED_IPS)
    await world.crm.add_trusted_ip("ann", IP, note="contract")
    await world.crm.add_trusted_ip("ann", IP, note="contract again")
    assert await world.trusted("ann") == {IP}


async def test_system_status_answers_in_its_own_terms(world: World) -> None:
    needs(world, Capability.SYSTEM_STATUS)
    status = await world.crm.system_status()
    assert isinstance(status.maintenance, tuple)
    assert isinstance(status.incidents, tuple)


async def test_the_probe_says_the_crm_answers(world: World) -> None:
    needs(world, Capability.PROBE)
    reach = await world.crm.probe()
    assert reach.reachable is True
    assert reach.latency_ms is not None
    assert reach.latency_ms >= 0


CALLS: dict[Capability, Callable[[CrmBackend], Awaitable[Any]]] = {
    Capability.LOCK_STATUS: lambda crm: crm.lock_status("ann"),
    Capability.UNLOCK: lambda crm: crm.unlock("ann", idempotency_key="contract-unsupported"),
    Capability.RESET_PASSWORD: lambda crm: crm.reset_password("ann", idempotency_key="contract-unsupported"),
    Capability.TRUSTED_IPS: lambda crm: crm.add_trusted_ip("ann", IP, note="contract"),
    Capability.LICENCES: lambda crm: crm.licence("ann"),
    Capability.LICENCE_LIST: lambda crm: crm.all_licences(),
    Capability.SEAT_USAGE: lambda crm: crm.inactive_users("Sales Cloud", limit=3),
    Capability.SYSTEM_STATUS: lambda crm: crm.system_status(),
    Capability.LOCK_STATISTICS: lambda crm: crm.locks_since(LOCKED_AT),
    Capability.LOCK_EVENTS: lambda crm: crm.lock_events(LOCKED_AT),
}


async def test_what_a_backend_lacks_is_refused_as_unsupported(world: World) -> None:
    lacking = [c for c in CALLS if c not in world.crm.capabilities]
    for capability in lacking:
        with pytest.raises(CrmUnsupported) as refused:
            await CALLS[capability](world.crm)
        assert refused.value.capability == capability.value


# --- when the CRM is down --------------------------------------------------------------------------------------


async def test_a_crm_that_cannot_be_reached_is_reported_unavailable(world: World) -> None:
    # Each backend bounds its calls with its time limit; how that limit holds is tests/crm/test_resilience.py's.
    await world.go_down()
    with pytest.raises(CrmUnavailable):
        await world.crm.find_account("ann")
    reach = await world.crm.probe()
    assert reach.reachable is False
    assert reach.detail
