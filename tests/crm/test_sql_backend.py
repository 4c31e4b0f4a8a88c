"""The embedded CRM backend against the demo data, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import App
from bot.clock import ManualClock
from bot.crm.base import Capability, LockReason
from bot.crm.sql import SqlCrm
from bot.crm.sql_schema import CrmAdminAction, CrmIncident, CrmTrustedIp, CrmUser
from bot.errors import AccountNotFound, CrmUnavailable
from bot.storage.db import Database

LOCKED = {
    "alice": LockReason.FAILED_PASSWORD,
    "bob": LockReason.UNUSUAL_IP,
    "carol": LockReason.LICENSE_EXPIRED,
    "dave": LockReason.SEAT_LIMIT,
    "erin": LockReason.SYSTEM_FAULT,
    "frank": LockReason.POLICY_VIOLATION,
    "grace": LockReason.NETWORK,
    "heidi": LockReason.RATE_LIMIT,
    "ivan": LockReason.TRIAL_LIMIT,
    "judy": LockReason.MAINTENANCE,
}


def crm(app: App) -> SqlCrm:
    assert isinstance(app.crm, SqlCrm)
    return app.crm


async def admin_actions(app: App) -> list[CrmAdminAction]:
    async with crm(app).database.session() as session:
        return list(await session.scalars(select(CrmAdminAction)))


async def crm_user(app: App, username: str) -> CrmUser:
    async with crm(app).database.session() as session:
        user = await session.scalar(select(CrmUser).where(CrmUser.username == username))
        assert user is not None
        return user


# --- accounts -------------------------------------------------------------------------------------------------


async def test_find_account_by_username(app: App) -> None:
    account = await app.crm.find_account("alice")
    assert account is not None
    assert account.username == "alice"
    assert account.email == "alice@example.com"
    assert account.display_name == "Alice Wang"
    assert account.active is True


@pytest.mark.parametrize("query", ["bob@example.com", "BOB@Example.COM", "Bob@example.com"])
async def test_find_account_by_email_ignores_case(app: App, query: str) -> None:
    account = await app.crm.find_account(query)
    assert account is not None
    assert account.username == "bob"
    assert account.display_name == "Bob Li"


@pytest.mark.parametrize("query", ["mallory", "mallory@example.com", "", "%", "alice%", "example.com"])
async def test_find_account_is_none_for_unknown(app: App, query: str) -> None:
    assert await app.crm.find_account(query) is None


# --- lock status ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("username", "reason"), sorted(LOCKED.items()))
async def test_every_demo_user_is_locked_for_its_reason(
    app: App, clock: ManualClock, username: str, reason: LockReason
) -> None:
    status = await app.crm.lock_status(username)
    assert status.username == username
    assert status.locked is True
    assert status.reason is reason
    assert status.locked_at == clock.now() - timedelta(minutes=12)


async def test_alice_has_five_failed_attempts_oldest_first(app: App, clock: ManualClock) -> None:
    evidence = (await app.crm.lock_status("alice")).evidence
    attempts = evidence.failed_attempts
    assert len(attempts) == 5
    assert {a.ip for a in attempts} == {"203.0.113.7"}
    assert not any(a.success for a in attempts)
    assert [a.at for a in attempts] == [clock.now() - timedelta(minutes=m) for m in (16, 15, 14, 13, 12)]
    assert all(a.at.tzinfo is not None for a in attempts)


async def test_bob_shows_the_unusual_ip_and_place(app: App) -> None:
    evidence = (await app.crm.lock_status("bob")).evidence
    assert evidence.ip == "198.51.100.23"
    assert evidence.location == "Chengdu, CN"
    # Only the failed attempt is evidence; his successful login from Shanghai is not.
    assert [(a.ip, a.location) for a in evidence.failed_attempts] == [("198.51.100.23", "Chengdu, CN")]


async def test_frank_shows_the_flagged_action(app: App, clock: ManualClock) -> None:
    flagged = (await app.crm.lock_status("frank")).evidence.flagged_action
    assert flagged is not None
    assert flagged.action == "bulk delete of customer records"
    assert "312" in flagged.detail
    assert flagged.at == clock.now() - timedelta(minutes=13)


async def test_carol_shows_the_expired_licence(app: App, clock: ManualClock) -> None:
    licence = (await app.crm.lock_status("carol")).evidence.licence
    assert licence is not None
    assert licence.name == "Sales Partner"
    assert licence.expires_at is not None
    assert licence.expires_at < clock.now()
    assert licence.expires_at == clock.now() - timedelta(days=3)


async def test_heidi_shows_the_rate_limit(app: App, clock: ManualClock) -> None:
    evidence = (await app.crm.lock_status("heidi")).evidence
    assert evidence.operations == 480
    assert evidence.window_minutes == 10
    assert evidence.lifts_at == clock.now() + timedelta(minutes=45)


async def test_judy_shows_the_maintenance_window_around_now(app: App, clock: ManualClock) -> None:
    window = (await app.crm.lock_status("judy")).evidence.maintenance
    assert window is not None
    assert window.starts_at <= clock.now() <= window.ends_at
    assert window.starts_at == clock.now() - timedelta(minutes=30)
    assert window.ends_at == clock.now() + timedelta(minutes=90)
    assert window.note


async def test_erin_shows_the_open_incident(app: App, clock: ManualClock) -> None:
    incident = (await app.crm.lock_status("erin")).evidence.incident
    assert incident is not None
    assert incident.status == "investigating"
    assert incident.resolved_at is None
    assert incident.started_at == clock.now() - timedelta(minutes=40)
    assert "orders" in incident.title


async def test_ivan_shows_the_used_up_trial(app: App) -> None:
    licence = (await app.crm.lock_status("ivan")).evidence.licence
    assert licence is not None
    assert licence.trial is True
    assert (licence.usage_used, licence.usage_cap) == (1000, 1000)


async def test_other_reasons_carry_no_unrelated_evidence(app: App) -> None:
    evidence = (await app.crm.lock_status("alice")).evidence
    assert evidence.flagged_action is None
    assert evidence.maintenance is None
    assert evidence.incident is None
    assert evidence.lifts_at is None


@pytest.mark.parametrize("username", ["kim", "sam", "tina"])
async def test_unlocked_users_are_not_locked(app: App, username: str) -> None:
    status = await app.crm.lock_status(username)
    assert status.locked is False
    assert status.reason is None
    assert status.locked_at is None


async def test_lock_status_of_an_unknown_user_raises(app: App) -> None:
    with pytest.raises(AccountNotFound) as raised:
        await app.crm.lock_status("mallory")
    assert raised.value.username == "mallory"


async def test_an_unknown_reason_code_reads_as_unknown(app: App) -> None:
    async with crm(app).database.session() as session, session.begin():
        user = await session.scalar(select(CrmUser).where(CrmUser.username == "grace"))
        assert user is not None
        user.lock_reason = "cosmic_rays"
    status = await app.crm.lock_status("grace")
    assert status.locked is True
    assert status.reason is LockReason.UNKNOWN


# --- unlock and idempotency -----------------------------------------------------------------------------------


async def test_unlock_unlocks(app: App) -> None:
    await app.crm.unlock("alice", idempotency_key="unlock-alice-1")
    status = await app.crm.lock_status("alice")
    assert status.locked is False
    user = await crm_user(app, "alice")
    assert (user.locked, user.lock_reason, user.locked_at, user.lock_detail) == (False, None, None, {})
    # Only alice: the others stay locked.
    assert (await app.crm.lock_status("bob")).locked is True


async def test_a_repeated_unlock_is_a_no_op(app: App) -> None:
    await app.crm.unlock("alice", idempotency_key="unlock-alice-1")
    await app.crm.unlock("alice", idempotency_key="unlock-alice-1")
    assert (await app.crm.lock_status("alice")).locked is False
    actions = await admin_actions(app)
    assert [(a.idempotency_key, a.action, a.username) for a in actions] == [("unlock-alice-1", "unlock", "alice")]


async def test_an_idempotency_key_is_remembered(app: App, clock: ManualClock) -> None:
    await app.crm.unlock("alice", idempotency_key="unlock-alice-1")
    # Someone locks alice again by hand in the CRM.
    async with crm(app).database.session() as session, session.begin():
        user = await session.scalar(select(CrmUser).where(CrmUser.username == "alice"))
        assert user is not None
        user.locked = True
        user.lock_reason = LockReason.FAILED_PASSWORD.value
        user.locked_at = clock.now()
    # A retry of the old request must not undo that new lock...
    await app.crm.unlock("alice", idempotency_key="unlock-alice-1")
    status = await app.crm.lock_status("alice")
    assert status.locked is True
    assert status.reason is LockReason.FAILED_PASSWORD
    # ...while a new request does unlock.
    await app.crm.unlock("alice", idempotency_key="unlock-alice-2")
    assert (await app.crm.lock_status("alice")).locked is False


async def test_concurrent_unlocks_with_one_key_act_once(app: App) -> None:
    results = await asyncio.gather(
        app.crm.unlock("bob", idempotency_key="unlock-bob"),
        app.crm.unlock("bob", idempotency_key="unlock-bob"),
        return_exceptions=True,
    )
    assert results == [None, None]
    assert (await app.crm.lock_status("bob")).locked is False
    assert len([a for a in await admin_actions(app) if a.idempotency_key == "unlock-bob"]) == 1


async def test_unlocks_racing_past_the_key_check_act_once(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both calls look the key up before either writes it: the second insert must lose quietly."""
    arrived = 0
    both = asyncio.Event()
    flush = AsyncSession.flush

    async def gated_flush(self: AsyncSession, objects: Any = None) -> None:
        nonlocal arrived
        arrived += 1
        if arrived >= 2:
            both.set()
        with contextlib.suppress(TimeoutError):
            # A backend that serialises the calls some other way must not hang here.
            await asyncio.wait_for(both.wait(), timeout=2)
        await flush(self, objects)

    monkeypatch.setattr(AsyncSession, "flush", gated_flush)
    results = await asyncio.gather(
        app.crm.unlock("bob", idempotency_key="unlock-bob"),
        app.crm.unlock("bob", idempotency_key="unlock-bob"),
        return_exceptions=True,
    )
    monkeypatch.undo()
    assert arrived == 2
    assert results == [None, None]
    assert (await app.crm.lock_status("bob")).locked is False
    assert len([a for a in await admin_actions(app) if a.idempotency_key == "unlock-bob"]) == 1


async def test_unlock_of_an_unknown_user_raises_and_records_nothing(app: App) -> None:
    with pytest.raises(AccountNotFound):
        await app.crm.unlock("mallory", idempotency_key="unlock-mallory")
    assert await admin_actions(app) == []


# --- passwords, trusted IPs, licences -------------------------------------------------------------------------


async def test_reset_password_masks_the_address_and_forces_a_change(app: App) -> None:
    assert (await crm_user(app, "alice")).must_change_password is False
    reset = await app.crm.reset_password("alice", idempotency_key="reset-alice")
    assert reset.sent_to == "a***@example.com"
    assert (await crm_user(app, "alice")).must_change_password is True
    assert [a.action for a in await admin_actions(app)] == ["reset_password"]


async def test_a_repeated_reset_is_recorded_once(app: App) -> None:
    first = await app.crm.reset_password("carol", idempotency_key="reset-carol")
    second = await app.crm.reset_password("carol", idempotency_key="reset-carol")
    assert first.sent_to == second.sent_to == "c***@example.com"
    assert len(await admin_actions(app)) == 1


async def test_reset_password_of_an_unknown_user_raises(app: App) -> None:
    with pytest.raises(AccountNotFound):
        await app.crm.reset_password("mallory", idempotency_key="reset-mallory")


async def test_a_trusted_ip_is_stored_once(app: App) -> None:
    await app.crm.add_trusted_ip("bob", "198.51.100.23", note="confirmed by TOTP")
    await app.crm.add_trusted_ip("bob", "198.51.100.23", note="again")
    assert await crm(app).trusted_ips("bob") == ["198.51.100.23"]
    async with crm(app).database.session() as session:
        rows = list(await session.scalars(select(CrmTrustedIp)))
    assert [(r.ip, r.note) for r in rows] == [("198.51.100.23", "confirmed by TOTP")]
    assert await crm(app).trusted_ips("alice") == []


async def test_add_trusted_ip_of_an_unknown_user_raises(app: App) -> None:
    with pytest.raises(AccountNotFound):
        await app.crm.add_trusted_ip("mallory", "198.51.100.23", note="")


async def test_dave_is_over_the_seat_limit(app: App) -> None:
    licence = await app.crm.licence("dave")
    assert licence is not None
    assert licence.name == "Sales Standard"
    assert licence.seats_total == 10
    assert licence.seats_used is not None
    assert licence.seats_used > licence.seats_total


async def test_licence_of_an_unknown_user_raises(app: App) -> None:
    with pytest.raises(AccountNotFound):
        await app.crm.licence("mallory")


# --- system-wide facts ----------------------------------------------------------------------------------------


async def test_system_status(app: App, clock: ManualClock) -> None:
    status = await app.crm.system_status()
    assert status.last_backup_at is not None
    assert status.last_backup_at <= clock.now()
    assert status.last_backup_at == clock.now().replace(hour=2, minute=0)
    assert status.writes_paused is False
    assert status.inbound_channels == {"email": True, "web_forms": True, "phone_sync": False}
    assert len(status.maintenance) == 1
    assert status.maintenance[0].starts_at <= clock.now() <= status.maintenance[0].ends_at
    assert len(status.incidents) == 1
    assert status.incidents[0].status == "investigating"
    assert status.incidents[0].resolved_at is None


async def test_a_finished_window_is_no_longer_reported(app: App, clock: ManualClock) -> None:
    clock.advance(timedelta(hours=2))
    assert (await app.crm.system_status()).maintenance == ()


async def test_a_resolved_incident_is_no_longer_reported(app: App, clock: ManualClock) -> None:
    async with crm(app).database.session() as session, session.begin():
        incident = await session.scalar(select(CrmIncident))
        assert incident is not None
        incident.status = "resolved"
        incident.resolved_at = clock.now()
    assert (await app.crm.system_status()).incidents == ()
    assert (await app.crm.lock_status("erin")).evidence.incident is None


async def test_locks_since(app: App, clock: ManualClock) -> None:
    assert await app.crm.locks_since(clock.now() - timedelta(hours=1)) == len(LOCKED) == 10
    assert await app.crm.locks_since(clock.now() - timedelta(minutes=12)) == 10  # "at or after"
    assert await app.crm.locks_since(clock.now() - timedelta(minutes=11)) == 0
    assert await app.crm.locks_since(clock.now() + timedelta(days=1)) == 0


async def test_an_unlocked_user_no_longer_counts(app: App, clock: ManualClock) -> None:
    await app.crm.unlock("alice", idempotency_key="unlock-alice")
    assert await app.crm.locks_since(clock.now() - timedelta(hours=1)) == 9


async def test_probe_reaches_the_database(app: App) -> None:
    reach = await app.crm.probe()
    assert reach.reachable is True
    assert reach.latency_ms is not None
    assert reach.latency_ms >= 0


def test_every_capability_is_supported(app: App) -> None:
    assert app.crm.capabilities == frozenset(Capability)
    assert app.crm.name == "sql"


async def test_the_demo_crm_holds_every_demo_user(app: App) -> None:
    async with crm(app).database.session() as session:
        assert await session.scalar(select(func.count()).select_from(CrmUser)) == 13


# --- an unreachable backend -----------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_url(kind: str, tmp_path: Path) -> str:
    if kind == "postgresql":
        return f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/crm?connect_timeout=2"
    return f"sqlite:///{tmp_path / 'gone' / 'crm.db'}"


async def wait_for_new_threads(before: set[threading.Thread]) -> None:
    """Let worker threads started by the test finish while the loop still runs.

    When aiosqlite fails to connect it queues its own shutdown without awaiting it; its worker thread then
    reports back to the event loop, which must not be closed yet.
    """
    for _ in range(500):
        if not [t for t in threading.enumerate() if t not in before and t.is_alive()]:
            return
        await asyncio.sleep(0.01)


@pytest.fixture(params=["sqlite", "postgresql"])
async def down(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqlCrm]:
    threads = set(threading.enumerate())
    url = unreachable_url(request.param, tmp_path)
    if request.param == "sqlite":
        (tmp_path / "gone").mkdir()  # a database is only made in a folder that exists
    backend = SqlCrm(Database(url), clock, timeout=5)
    if request.param == "sqlite":
        # Then a file takes the folder's place, so the database cannot be opened.
        shutil.rmtree(tmp_path / "gone")
        (tmp_path / "gone").write_text("not a directory", encoding="utf-8")
    yield backend
    await backend.aclose()
    await wait_for_new_threads(threads)


async def test_an_unreachable_backend_raises_crm_unavailable(down: SqlCrm) -> None:
    with pytest.raises(CrmUnavailable):
        await down.lock_status("alice")
    with pytest.raises(CrmUnavailable):
        await down.find_account("alice")
    with pytest.raises(CrmUnavailable):
        await down.unlock("alice", idempotency_key="k")


async def test_probe_reports_an_unreachable_backend(down: SqlCrm) -> None:
    reach = await down.probe()
    assert reach.reachable is False
    assert reach.latency_ms is None
    assert reach.detail
