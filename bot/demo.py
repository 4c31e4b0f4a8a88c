"""The demo: an embedded CRM with one user locked for every reason, linked and enrolled.

``seed`` fills the embedded CRM and the bot's tables; the database is then
marked as a demo database, and only such a database lets ``demo code`` print
a user's current TOTP code. Demo TOTP secrets are fixed (derived from the
username) so a walkthrough can be repeated, and stored encrypted like any other.

Starting over (``demo seed --reset``) empties a database that holds the demo or
only what console chats left (``unlockbot chat`` before or after the demo); a
database any chat platform wrote to holds real data and is refused.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import App
from bot.config import Settings
from bot.crm.base import LockReason
from bot.crm.sql import SqlCrm
from bot.crm.sql_schema import (
    CrmBase,
    CrmFlaggedAction,
    CrmIncident,
    CrmLicence,
    CrmLockEvent,
    CrmLoginAttempt,
    CrmMaintenance,
    CrmSystemState,
    CrmUser,
)
from bot.errors import ConfigError, NotADemoDatabase
from bot.identity.linking import link
from bot.identity.secrets import create_key_file, load_key
from bot.requests.anchor import AnchorFile, anchor_path
from bot.storage.db import Database
from bot.storage.meta import DEMO_FLAG, clear_bot_tables, is_demo
from bot.storage.models import Base, BotMeta

CONSOLE = "console"


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name: str
    reason: LockReason | None
    admin: bool = False
    licence: str = "Sales Standard"
    detail: dict[str, Any] = field(default_factory=dict)


USERS = (
    DemoUser("alice", "Alice Wang", LockReason.FAILED_PASSWORD),
    DemoUser("bob", "Bob Li", LockReason.UNUSUAL_IP, detail={"ip": "198.51.100.23", "location": "Chengdu, CN"}),
    DemoUser("carol", "Carol Zhang", LockReason.LICENSE_EXPIRED, licence="Sales Partner"),
    DemoUser("dave", "Dave Chen", LockReason.SEAT_LIMIT),
    DemoUser("erin", "Erin Zhao", LockReason.SYSTEM_FAULT),
    DemoUser(
        "frank",
        "Frank Liu",
        LockReason.POLICY_VIOLATION,
        detail={"flagged": {"kind": "bulk_delete", "records": 312, "record_type": "customer"}},
    ),
    DemoUser(
        "grace",
        "Grace Huang",
        LockReason.NETWORK,
        detail={"detail": "the session dropped 4 times in 2 minutes and was closed"},
    ),
    DemoUser("heidi", "Heidi Wu", LockReason.RATE_LIMIT, detail={"operations": 480, "window_minutes": 10}),
    DemoUser("ivan", "Ivan Zhou", LockReason.TRIAL_LIMIT, licence="Marketing Trial"),
    DemoUser("judy", "Judy Xu", LockReason.MAINTENANCE),
    DemoUser("kim", "Kim Sun", None),
    DemoUser("sam", "Sam Ma", None, admin=True),
    DemoUser("tina", "Tina Guo", None, admin=True),
)


# Days since each demo user last signed in; kim never has.
LAST_SIGN_IN_DAYS = {
    "alice": 1,
    "dave": 2,
    "erin": 26,
    "frank": 3,
    "grace": 1,
    "heidi": 1,
    "judy": 38,
    "sam": 0,
    "tina": 4,
    "carol": 5,
    "ivan": 2,
}


def demo_secret(username: str) -> str:
    """A fixed 160-bit base32 secret per demo user."""
    digest = hashlib.sha256(f"unlockbot demo secret for {username}".encode()).digest()[:20]
    return base64.b32encode(digest).decode()


def ensure_key(settings: Settings) -> None:
    """Give the demo an encryption key file when no key is configured anywhere."""
    if load_key(settings) is None:
        create_key_file(settings.key_file)


async def has_bot_data(session: AsyncSession) -> bool:
    for table in Base.metadata.sorted_tables:
        if await session.scalar(select(table).limit(1)) is not None:
            return True
    return False


async def has_platform_data(session: AsyncSession) -> bool:
    """Whether any row names a channel other than the console: a chat platform's people, real data."""
    for table in Base.metadata.sorted_tables:
        if "channel" in table.c:
            other = select(table.c.channel).where(table.c.channel != CONSOLE).limit(1)
            if await session.scalar(other) is not None:
                return True
    return False


async def _may_seed(session: AsyncSession, *, reset: bool) -> bool:
    """``True`` to (re)seed, ``False`` when the demo is there and no reset was asked; refuses real data."""
    if await is_demo(session):
        return reset
    if not await has_bot_data(session):
        return True
    if await has_platform_data(session):
        raise NotADemoDatabase("this database holds real data; refusing to seed a demo into it")
    if not reset:
        raise NotADemoDatabase(
            "this database holds console chats but no demo; run `unlockbot demo seed --reset` to delete them "
            "and start the demo"
        )
    return True


def _require_embedded_crm(settings: Settings) -> None:
    if settings.crm.backend != "sql":
        raise ConfigError("crm.backend: the demo runs on the embedded 'sql' backend only")


async def start_over(settings: Settings) -> None:
    """Empty a demo (or console-only) database before the app opens it, so nothing left in it can stop a reset.

    ``open_app`` refuses a signed audit trail whose key file is gone; the demo's trail is not worth
    keeping, so it goes with the rest, and the anchor with it. Real data is refused and left as it is.
    """
    _require_embedded_crm(settings)
    database = Database(settings.database_url)
    try:
        await database.upgrade()
        async with database.session() as session, session.begin():
            if await _may_seed(session, reset=True):
                await clear_bot_tables(session)
    finally:
        await database.dispose()
    AnchorFile(anchor_path(settings)).forget()


async def require_demo(session: AsyncSession) -> None:
    if not await is_demo(session):
        raise NotADemoDatabase("this is not a demo database: demo commands refuse to run on it")


def _crm_rows(now: datetime) -> list[Any]:
    licences = {
        "Sales Standard": CrmLicence(name="Sales Standard", expires_at=now + timedelta(days=200), seats_total=10),
        "Sales Partner": CrmLicence(name="Sales Partner", expires_at=now - timedelta(days=3), seats_total=5),
        # Nobody is locked by it yet: it is there so that the admins are reminded before it ends.
        "Service Desk": CrmLicence(name="Service Desk", expires_at=now + timedelta(days=20), seats_total=5),
        "Marketing Trial": CrmLicence(
            name="Marketing Trial", expires_at=now + timedelta(days=9), trial=True, usage_cap=1000, usage_used=1000
        ),
    }
    rows: list[Any] = list(licences.values())
    users: dict[str, CrmUser] = {}
    for demo in USERS:
        locked_at = now - timedelta(minutes=12) if demo.reason else None
        detail = dict(demo.detail)
        if demo.reason is LockReason.RATE_LIMIT:
            detail["lifts_at"] = (now + timedelta(minutes=45)).isoformat()
        user = CrmUser(
            username=demo.username,
            email=f"{demo.username}@example.com",
            display_name=demo.display_name,
            is_admin=demo.admin,
            licence=licences[demo.licence],
            locked=demo.reason is not None,
            lock_reason=demo.reason.value if demo.reason else None,
            locked_at=locked_at,
            lock_detail=detail,
        )
        users[demo.username] = user
        rows.append(user)
        if demo.reason is not None and locked_at is not None:
            # The CRM's own log of the lock: what lock alerts read (``unlockbot demo lock`` adds more).
            rows.append(CrmLockEvent(user=user, reason=demo.reason.value, at=locked_at))
    rows += [
        CrmLoginAttempt(user=users["alice"], at=now - timedelta(minutes=16 - i), ip="203.0.113.7", success=False)
        for i in range(5)
    ]
    rows += [
        CrmLoginAttempt(
            user=users["bob"], at=now - timedelta(days=1), ip="192.0.2.10", success=True, location="Shanghai"
        ),
        CrmLoginAttempt(
            user=users["bob"], at=now - timedelta(minutes=13), ip="198.51.100.23", success=False, location="Chengdu, CN"
        ),
        CrmFlaggedAction(
            user=users["frank"],
            at=now - timedelta(minutes=13),
            action="bulk delete of customer records",
            detail="312 customer records deleted in one batch",
        ),
        CrmMaintenance(
            starts_at=now - timedelta(minutes=30),
            ends_at=now + timedelta(minutes=90),
            note="Database upgrade of the reporting module",
        ),
        CrmIncident(
            title="Database storage fault in the orders module",
            status="investigating",
            started_at=now - timedelta(minutes=40),
        ),
        CrmSystemState(
            last_backup_at=now.replace(hour=2, minute=0, second=0, microsecond=0)
            - (timedelta(days=1) if now.hour < 2 else timedelta()),
            writes_paused=False,
            inbound_channels={"email": True, "web_forms": True, "phone_sync": False},
        ),
    ]
    # Last successful sign-ins: a seat-limit card names the licensed accounts that have gone longest without one.
    rows += [
        CrmLoginAttempt(user=users[name], at=now - timedelta(days=days, hours=3), ip="192.0.2.10", success=True)
        for name, days in LAST_SIGN_IN_DAYS.items()
    ]
    return rows


async def seed(app: App, *, reset: bool) -> bool:
    """Fill the demo; ``False`` when it was already there and ``reset`` was not asked for.

    With ``reset`` it starts over in a database holding the demo or only console chats; real data is refused.
    """
    now = app.clock.now()
    if not isinstance(app.crm, SqlCrm):
        raise ConfigError("crm.backend: the demo runs on the embedded 'sql' backend only")
    async with app.database.session() as session, session.begin():
        if not await _may_seed(session, reset=reset):
            return False
        await clear_bot_tables(session)
    app.audit.anchor.forget()  # the trail starts over on purpose: the old anchor names a chain that is gone
    crm_db = app.crm.database
    async with crm_db.engine.begin() as connection:
        await connection.run_sync(CrmBase.metadata.drop_all)
        await connection.run_sync(CrmBase.metadata.create_all)
    async with crm_db.session() as session, session.begin():
        session.add_all(_crm_rows(now))
    async with app.database.session() as session, session.begin():
        session.add(BotMeta(key=DEMO_FLAG, value="true"))
        for demo_user in USERS:
            await link(
                session,
                now=now,
                channel=CONSOLE,
                team_id="",
                user_id=demo_user.username,
                username=demo_user.username,
                by="demo",
            )
            await app.totp.enrol(
                session, demo_user.username, demo_secret(demo_user.username), active=True, actor="demo"
            )
    return True


async def lock_now(app: App, username: str, reason: str) -> LockReason:
    """Lock a demo user in the embedded CRM now, for ``reason`` (a reason code), so lock alerts can be tried."""
    if not isinstance(app.crm, SqlCrm):
        raise ConfigError("crm.backend: the demo runs on the embedded 'sql' backend only")
    async with app.database.session() as session:
        await require_demo(session)
    if reason not in set(LockReason):
        raise ConfigError(f"reason: expected one of {', '.join(r.value for r in LockReason)}; got {reason!r}")
    code = LockReason(reason)
    demo_user = next((u for u in USERS if u.username == username), None)
    if demo_user is None:
        raise ConfigError(f"user: expected a demo user ({', '.join(u.username for u in USERS)}); got {username!r}")
    detail = dict(demo_user.detail) if demo_user.reason is code else {}
    if code is LockReason.RATE_LIMIT:
        detail.setdefault("operations", 480)
        detail.setdefault("window_minutes", 10)
        detail["lifts_at"] = (app.clock.now() + timedelta(minutes=45)).isoformat()
    await app.crm.lock(username, code, detail=detail)
    return code


async def current_code(app: App, username: str) -> str:
    async with app.database.session() as session:
        await require_demo(session)
        enrolment = await app.totp.enrolment(session, username)
        if enrolment is None or not enrolment.active:
            raise NotADemoDatabase(f"{username!r} is not an enrolled demo user")
        return app.totp.current_code(enrolment)
