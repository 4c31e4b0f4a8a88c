"""Outages: a CRM refusing connections, hanging, answering 500, flapping, answering too late.

The Keycloak backend stands for any remote backend here (the resilience layer
wraps them all alike), running its real HTTP client against the fake realm.
Lookups are retried within the time limit and unlocks never are; the breaker
stops asking a CRM that keeps failing; the person is told within seconds; and
an approved unlock waiting in the outbox is carried out exactly once when the
CRM answers again.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import App, open_app
from bot.clock import ManualClock
from bot.config import KeycloakSettings, Settings
from bot.crm.base import LockReason
from bot.crm.keycloak import KeycloakCrm
from bot.crm.resilient import BreakerState, ResilientCrm
from bot.errors import CrmUnavailable
from bot.identity.linking import link
from bot.requests.approvals import ChatAccount, Verdict, decide
from bot.requests.outbox import OutboxWorker
from bot.requests.unlock_requests import file_request
from bot.storage.models import Notification, OutboxItem, UnlockRequest
from tests.chat import Chat
from tests.conftest import START
from tests.fakes import crm_section, serving
from tests.fakes.keycloak import FakeKeycloak, keycloak_settings

SHORT = 0.3  # seconds: the time limit of one call in these tests
# A time limit no refusal comes near, however busy the machine: what happens before it is "at once".
LONG = 60.0
THRESHOLD = 4
COOL_DOWN = timedelta(seconds=30)


@pytest.fixture
async def realm(clock: ManualClock) -> AsyncIterator[FakeKeycloak]:
    async with serving(FakeKeycloak(clock.now)) as fake:
        fake.add_user("ann", "ann@example.com", "Ann", "Lee")
        fake.add_user("bob", "bob@example.com", "Bob", "Li")
        fake.lock_out("bob", START - timedelta(minutes=5), "203.0.113.50")
        yield fake


def resilient(realm: FakeKeycloak, clock: ManualClock, *, timeout: float) -> ResilientCrm:
    backend = KeycloakCrm(KeycloakSettings.model_validate(keycloak_settings(realm)), clock, timeout=timeout)
    return ResilientCrm(
        backend,
        clock,
        timeout=timeout,
        retries=2,
        backoff=0.001,
        failure_threshold=THRESHOLD,
        cool_down=COOL_DOWN,
        rng=random.Random(7),
    )


@pytest.fixture
async def crm(realm: FakeKeycloak, clock: ManualClock) -> AsyncIterator[ResilientCrm]:
    wrapped = resilient(realm, clock, timeout=SHORT)
    yield wrapped
    await wrapped.aclose()


# --- each kind of outage on a single call ----------------------------------------------------------------------


async def test_a_crm_refusing_connections_is_reported_unavailable_at_once(
    realm: FakeKeycloak, clock: ManualClock
) -> None:
    crm = resilient(realm, clock, timeout=LONG)
    await realm.stop()
    try:
        with pytest.raises(CrmUnavailable, match="could not be reached"):
            await crm.lock_status("ann")
    finally:
        await crm.aclose()
    # All three tries were refused well inside the time limit: a refusal is known at once, never waited for.
    assert crm.breaker.failures == 3


async def test_a_hanging_crm_is_reported_unavailable_when_the_time_limit_runs_out(
    realm: FakeKeycloak, crm: ResilientCrm
) -> None:
    await crm.find_account("ann")  # signed in while it answered
    realm.set_mode("hang")
    realm.requests.clear()
    with pytest.raises(CrmUnavailable, match="did not answer"):  # the time limit ran out
        await crm.lock_status("ann")
    # Retries never stretch the promise: the one try used up the time limit, and no second one was sent.
    assert len(realm.requests) == 1
    assert crm.breaker.failures == 1


async def test_lookups_are_retried_but_an_unlock_is_tried_once(realm: FakeKeycloak, crm: ResilientCrm) -> None:
    await crm.find_account("ann")
    realm.set_mode("error")
    realm.requests.clear()
    with pytest.raises(CrmUnavailable, match="500"):
        await crm.lock_status("bob")
    assert realm.calls("GET", "/users") == 3  # the first try and two retries
    realm.requests.clear()
    with pytest.raises(CrmUnavailable):
        await crm.unlock("bob", idempotency_key="once")
    assert len(realm.requests) == 1


async def test_a_flapping_crm_is_smoothed_over_by_a_retry(realm: FakeKeycloak, crm: ResilientCrm) -> None:
    await crm.find_account("ann")
    for _ in range(3):
        realm.answer_next(500, {"error": "unknown_error"})
        status = await crm.lock_status("bob")
        assert status.reason is LockReason.FAILED_PASSWORD
    assert crm.breaker.state is BreakerState.CLOSED
    assert crm.breaker.failures == 0


# --- the circuit breaker ---------------------------------------------------------------------------------------


async def test_the_breaker_opens_after_failures_in_a_row_and_stops_asking(
    realm: FakeKeycloak, crm: ResilientCrm, clock: ManualClock
) -> None:
    await crm.find_account("ann")
    realm.set_mode("error")
    for _ in range(2):
        with pytest.raises(CrmUnavailable):
            await crm.lock_status("bob")
    assert crm.breaker.state is BreakerState.OPEN
    asked = len(realm.requests)
    with pytest.raises(CrmUnavailable, match="asking again after"):
        await crm.lock_status("bob")
    assert len(realm.requests) == asked  # refused at once, without asking the CRM
    reach = await crm.probe()
    assert reach.reachable is False
    assert len(realm.requests) == asked

    clock.advance(COOL_DOWN)
    realm.set_mode("up")
    assert (await crm.lock_status("bob")).locked is True  # the trial call
    assert crm.breaker.state is BreakerState.CLOSED


async def test_a_failed_trial_opens_the_breaker_again(
    realm: FakeKeycloak, crm: ResilientCrm, clock: ManualClock
) -> None:
    await crm.find_account("ann")
    realm.set_mode("error")
    for _ in range(2):
        with pytest.raises(CrmUnavailable):
            await crm.lock_status("bob")
    clock.advance(COOL_DOWN)
    realm.requests.clear()
    with pytest.raises(CrmUnavailable):
        await crm.lock_status("bob")
    assert len(realm.requests) == 1  # one trial, no retries while not closed
    assert crm.breaker.state is BreakerState.OPEN
    clock.advance(COOL_DOWN - timedelta(seconds=1))
    assert crm.breaker.state is BreakerState.OPEN


async def test_while_half_open_only_one_call_is_the_trial(
    realm: FakeKeycloak, crm: ResilientCrm, clock: ManualClock
) -> None:
    await crm.find_account("ann")
    realm.set_mode("error")
    for _ in range(2):
        with pytest.raises(CrmUnavailable):
            await crm.lock_status("bob")
    clock.advance(COOL_DOWN)
    realm.set_mode("hang")
    realm.requests.clear()
    outcomes = await asyncio.gather(crm.lock_status("bob"), crm.lock_status("ann"), return_exceptions=True)
    assert all(isinstance(outcome, CrmUnavailable) for outcome in outcomes)
    assert any("trial call" in str(outcome) for outcome in outcomes)
    assert len(realm.requests) == 1


# --- the outbox: an approved unlock waits and is carried out once ---------------------------------------------


async def approved_unlock(app: App, username: str) -> int:
    async with app.database.session() as session, session.begin():
        request = await file_request(
            session,
            now=app.clock.now(),
            username=username,
            reason=LockReason.FAILED_PASSWORD,
            evidence={},
            channel="console",
            requester=username,
        )
    async with app.database.session() as session, session.begin():
        decision = await decide(
            session,
            now=app.clock.now(),
            request_id=request.id,
            admin="sam",
            approve=True,
            note=None,
            admins=("sam", "tina"),
            via=ChatAccount("console", "", "sam"),
        )
    assert decision.verdict is Verdict.DECIDED
    return request.id


async def refuse(realm: FakeKeycloak) -> Callable[[], Awaitable[None]]:
    await realm.stop()
    return realm.come_back


async def hang(realm: FakeKeycloak) -> Callable[[], Awaitable[None]]:
    realm.set_mode("hang")
    return _up(realm)


async def error(realm: FakeKeycloak) -> Callable[[], Awaitable[None]]:
    realm.set_mode("error")
    return _up(realm)


async def flap(realm: FakeKeycloak) -> Callable[[], Awaitable[None]]:
    # It answers the lookups, fails the unlock itself, then answers again.
    realm.answer_next(500, {"error": "unknown_error"}, only="DELETE /admin/realms/acme/attack-detection/")
    return _up(realm)


async def answer_too_late(realm: FakeKeycloak) -> Callable[[], Awaitable[None]]:
    # The lock is cleared, but the answer never arrives: the bot cannot know it worked.
    realm.set_mode("late", only="DELETE /admin/realms/acme/attack-detection/")
    return _up(realm)


def _up(realm: FakeKeycloak) -> Callable[[], Awaitable[None]]:
    async def back() -> None:
        realm.set_mode("up")

    return back


OUTAGES = {"refuse": refuse, "hang": hang, "error": error, "flap": flap, "late": answer_too_late}
# How often the unlock itself reaches Keycloak: after a late answer it is sent again, and changes nothing.
UNLOCKS_SENT = {"refuse": 1, "hang": 1, "error": 1, "flap": 2, "late": 2}


@pytest.mark.parametrize("outage", sorted(OUTAGES))
async def test_an_approved_unlock_waits_out_the_outage_and_is_carried_out_once(
    app: App, realm: FakeKeycloak, crm: ResilientCrm, clock: ManualClock, outage: str
) -> None:
    request_id = await approved_unlock(app, "bob")
    worker = OutboxWorker(app.database, crm, clock, admins=("sam", "tina"))
    come_back = await OUTAGES[outage](realm)

    assert await worker.run_once() == 1
    async with app.database.session() as session:
        item = await session.scalar(select(OutboxItem))
        request = await session.get(UnlockRequest, request_id)
    assert item is not None
    assert request is not None
    assert (item.status, request.status) == ("pending", "executing")
    assert item.attempts == 1  # one try, given up on within its time limit, and why
    assert item.last_error
    assert item.available_at > clock.now()
    assert realm.is_locked("bob") is (outage != "late")
    assert await worker.run_once() == 0  # waiting out its back-off

    await come_back()
    clock.advance(timedelta(seconds=16))
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    clock.advance(timedelta(hours=1))
    assert await worker.run_once() == 0

    assert realm.is_locked("bob") is False
    assert realm.unlocks == 1
    assert realm.calls("DELETE", "/attack-detection/") == UNLOCKS_SENT[outage]
    async with app.database.session() as session:
        request = await session.get(UnlockRequest, request_id)
        told = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.crm_username == "bob", Notification.template == "requests/carried_out")
        )
    assert request is not None
    assert request.status == "done"
    assert told == 1


async def test_an_outage_longer_than_the_cool_down_loses_no_request(
    app: App, realm: FakeKeycloak, crm: ResilientCrm, clock: ManualClock
) -> None:
    requests = [await approved_unlock(app, "bob"), await approved_unlock(app, "ann")]
    worker = OutboxWorker(app.database, crm, clock, admins=("sam", "tina"))
    realm.set_mode("error")
    for _ in range(6):  # an hour of failures, the breaker opening and closing on trials
        await worker.run_once()
        clock.advance(timedelta(minutes=10))
    realm.set_mode("up")
    clock.advance(timedelta(minutes=11))
    assert await worker.run_once() == 2
    async with app.database.session() as session:
        statuses = list(await session.scalars(select(UnlockRequest.status).where(UnlockRequest.id.in_(requests))))
    assert statuses == ["done", "done"]
    assert realm.unlocks == 1  # ann was never locked; bob once


# --- the person is told, within seconds --------------------------------------------------------------------------


async def test_the_person_hears_plainly_that_the_crm_is_not_answering(
    settings: Settings, clock: ManualClock, realm: FakeKeycloak
) -> None:
    crm = crm_section(
        "keycloak", keycloak_settings(realm), timeout_seconds=SHORT, resilience={"failure_threshold": THRESHOLD}
    )
    configured = Settings.model_validate({**settings.model_dump(), "crm": crm})
    async with open_app(configured, clock=clock) as app:
        async with app.database.session() as session, session.begin():
            await link(
                session, now=clock.now(), channel="console", team_id="", user_id="bob", username="bob", by="test"
            )
        bob = Chat(app.engine, "bob", locale="en")
        await bob.start()

        realm.set_mode("hang")
        realm.requests.clear()
        said = await bob.press("why")
        assert "I can't reach the CRM right now" in said.text
        # Told after one time limit: the turn gave up on its first unanswered request and asked nothing more.
        assert len(realm.requests) == 1

        realm.set_mode("up")
        said = await bob.press("why")
        assert "can't reach" not in said.text
        assert "password" in said.text.lower()


# --- the operator asks: crm check ---------------------------------------------------------------------------------


async def crm_check(config: Path) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UNLOCKBOT_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--config",
        str(config),
        "crm",
        "check",
        cwd=config.parent,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_crm_check_prints_the_backend_what_it_can_do_and_whether_it_answers(
    tmp_path: Path, realm: FakeKeycloak
) -> None:
    config = tmp_path / "unlockbot.toml"
    (tmp_path / "data").mkdir()
    config.write_text(
        f"""
[bot]
data_dir = "{tmp_path / "data"}"

[crm]
backend = "keycloak"
timeout_seconds = 1.0

[crm.keycloak]
{chr(10).join(f'{key} = "{value}"' for key, value in keycloak_settings(realm).items())}
""",
        encoding="utf-8",
    )
    status, out = await crm_check(config)
    assert status == 0, out
    assert f"backend: keycloak at {realm.url} (realm acme)" in out
    assert "can:     lock_status, login_history, unlock, reset_password, probe" in out
    lacking = "trusted_ips, licences, licence_list, seat_usage, system_status, lock_statistics, lock_events"
    assert f"cannot:  {lacking}" in out
    assert "alerts:  no: the keycloak backend cannot tell about new locks, so nobody is messaged when locked" in out
    assert "note:    this CRM cannot list its licences: nobody is reminded before a licence or trial ends" in out
    assert "note:    this CRM cannot tell who holds the seats" in out
    assert "answers: yes" in out

    await realm.stop()
    status, out = await crm_check(config)
    assert status == 1
    assert "answers: no (Keycloak could not be reached" in out
