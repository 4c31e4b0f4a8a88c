"""TOTP: RFC 6238 timing, one use per step, throttling, and secrets kept encrypted."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from bot import demo
from bot.app import App, open_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.identity.totp import CodeCheck, matching_step, normalise_code, time_step
from bot.storage.models import TotpEnrolment

# RFC 6238 Appendix B, SHA-1 rows: the shared secret is the ASCII string "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("seconds", "expected"), RFC_VECTORS)
def test_rfc_6238_vectors(seconds: int, expected: str) -> None:
    assert pyotp.TOTP(RFC_SECRET, digits=8, interval=30).at(seconds) == expected


def test_one_step_either_side_is_accepted_and_two_are_not() -> None:
    secret = demo.demo_secret("alice")
    now = datetime(2026, 11, 29, 9, 0, 0, tzinfo=UTC)
    totp = pyotp.TOTP(secret)
    step = time_step(now)
    for offset in (-1, 0, 1):
        assert matching_step(secret, totp.at(now + timedelta(seconds=30 * offset)), now) == step + offset
    for offset in (-2, 2):
        assert matching_step(secret, totp.at(now + timedelta(seconds=30 * offset)), now) is None


def test_codes_are_read_leniently_but_must_be_six_digits() -> None:
    assert normalise_code(" 123 456 ") == "123456"
    assert normalise_code("123-456") == "123456"
    assert normalise_code("１２３４５６") == "123456"  # full-width digits from a Chinese keyboard
    assert normalise_code("١٢٣٤٥٦") is None  # other scripts' digits are not codes
    assert normalise_code("12345") is None
    assert normalise_code("abcdef") is None


async def verify(app: App, code: str, user: str = "alice") -> CodeCheck:
    async with app.database.session() as session, session.begin():
        return (await app.totp.verify(session, user, code, actor="test")).outcome


async def test_a_code_works_once(app: App, clock: ManualClock) -> None:
    code = await demo.current_code(app, "alice")
    assert await verify(app, code) is CodeCheck.OK
    assert await verify(app, code) is CodeCheck.REPLAYED
    # An older step is a replay too, even though it was never used.
    previous = pyotp.TOTP(demo.demo_secret("alice")).at(clock.now() - timedelta(seconds=30))
    assert await verify(app, previous) is CodeCheck.REPLAYED
    clock.advance(timedelta(seconds=30))
    assert await verify(app, await demo.current_code(app, "alice")) is CodeCheck.OK


async def test_two_parallel_submissions_of_one_code_give_one_success(app: App, clock: ManualClock) -> None:
    for _ in range(10):
        clock.advance(timedelta(seconds=30))
        code = await demo.current_code(app, "alice")
        results = await asyncio.gather(verify(app, code), verify(app, code))
        assert sorted(results) == [CodeCheck.OK, CodeCheck.REPLAYED]


async def test_throttling_survives_a_restart_and_grows(settings: Settings, clock: ManualClock) -> None:
    async with open_app(settings, clock=clock) as first:
        await demo.seed(first, reset=True)
        for _ in range(4):
            assert await verify(first, "000000") is CodeCheck.WRONG
        assert await verify(first, "000000") is CodeCheck.THROTTLED
    async with open_app(settings, clock=clock) as second:
        assert await verify(second, await demo.current_code(second, "alice")) is CodeCheck.THROTTLED
        clock.advance(timedelta(seconds=61))
        for _ in range(5):
            await verify(second, "000000")
        async with second.database.session() as session:
            enrolment = await session.get(TotpEnrolment, "alice")
            assert enrolment is not None
            assert enrolment.locked_until is not None
            assert enrolment.locked_until - clock.now() == timedelta(seconds=120)  # doubled


async def test_no_secret_is_stored_in_clear(app: App, settings: Settings) -> None:
    raw = Path(settings.database_url.removeprefix("sqlite:///"))
    if not raw.exists():
        pytest.skip("the file check applies to SQLite; PostgreSQL is checked through the column")
    wal = raw.with_name(raw.name + "-wal")  # with write-ahead logging, recent pages live here
    content = raw.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert b"totp_enrolments" in content  # the check reads the real database
    for user in ("alice", "bob", "sam"):
        assert demo.demo_secret(user).encode() not in content
    async with app.database.session() as session:
        stored = list(await session.scalars(select(TotpEnrolment.secret_ciphertext)))
    assert stored
    assert all(demo.demo_secret("alice").encode() not in blob for blob in stored)


async def test_an_enrolment_never_shows_its_secret(app: App) -> None:
    async with app.database.session() as session:
        enrolment = await session.get(TotpEnrolment, "alice")
    assert "secret" not in repr(enrolment).lower() or demo.demo_secret("alice") not in repr(enrolment)
    assert "hidden" in repr(app.box)


async def test_a_lockout_does_not_hand_out_fresh_tries(app: App, clock: ManualClock) -> None:
    for _ in range(4):
        assert await verify(app, "000000") is CodeCheck.WRONG
    assert await verify(app, "000000") is CodeCheck.THROTTLED
    clock.advance(timedelta(seconds=61))
    # The lock-out is over, but the guesses before it still count: one more wrong code locks again, for longer.
    async with app.database.session() as session, session.begin():
        again = await app.totp.verify(session, "alice", "000000", actor="test")
    assert again.outcome is CodeCheck.THROTTLED
    assert again.lockout_started
    assert again.retry_after == timedelta(seconds=120)
    assert again.attempts_left is None
    clock.advance(timedelta(seconds=121))
    # Only a right code clears the count: after it, a wrong one is the first of five again.
    assert await verify(app, await demo.current_code(app, "alice")) is CodeCheck.OK
    async with app.database.session() as session, session.begin():
        fresh = await app.totp.verify(session, "alice", "000000", actor="test")
    assert fresh.outcome is CodeCheck.WRONG
    assert fresh.attempts_left == 4


def test_the_enrolment_uri_names_the_period_and_the_digits() -> None:
    from urllib.parse import parse_qs, urlsplit

    from bot.identity.enrolment import provisioning

    uri = provisioning(demo.demo_secret("kim"), account="kim", issuer="Acme CRM").uri
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/Acme%20CRM:kim"
    query = parse_qs(parts.query)
    assert query["secret"] == [demo.demo_secret("kim")]
    assert query["issuer"] == ["Acme CRM"]
    assert query["period"] == ["30"]
    assert query["digits"] == ["6"]
    assert query["algorithm"] == ["SHA1"]
    # What an authenticator app builds from the URI gives the codes the bot expects.
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.interval == 30
    assert parsed.digits == 6
    assert parsed.now() == pyotp.TOTP(demo.demo_secret("kim")).now()
