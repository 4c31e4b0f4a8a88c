"""The ``sql`` backend: the embedded CRM, reached through SQLAlchemy.

The default backend, so that the whole product runs on a fresh machine. It
supports every capability; ``bot.demo`` fills it with demo users.

A user's ``lock_detail`` holds the facts of the lock: the rate-limit numbers,
the flagged IP and its ``location`` ("Chengdu, CN"), optionally a ``place``
with the city's names per locale, and under ``flagged`` the kind, record count
and record type of the flagged action whose own words are in
``crm_flagged_actions``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.clock import Clock
from bot.crm.base import (
    Account,
    ActionKind,
    Capability,
    Evidence,
    FlaggedAction,
    Incident,
    LicenceInfo,
    LockEvent,
    LockReason,
    LockStatus,
    LoginAttempt,
    MaintenanceWindow,
    PasswordReset,
    Place,
    Reachability,
    RecordType,
    SeatHolder,
    SystemStatus,
)
from bot.crm.sql_schema import (
    CrmAdminAction,
    CrmBase,
    CrmFlaggedAction,
    CrmIncident,
    CrmLicence,
    CrmLockEvent,
    CrmLoginAttempt,
    CrmMaintenance,
    CrmSystemState,
    CrmTrustedIp,
    CrmUser,
)
from bot.errors import AccountNotFound, CrmError, CrmUnavailable
from bot.storage.db import Database

# Statements asked on every "why am I locked", built once (building one costs more CPU than running it).
_SEAT_HOLDER = aliased(CrmUser)
# A user, their licence and the seats it has in use, in one query.
_USER_AND_LICENCE = (
    select(
        CrmUser,
        CrmLicence,
        select(func.count())
        .select_from(_SEAT_HOLDER)
        .where(_SEAT_HOLDER.licence_id == CrmLicence.id, _SEAT_HOLDER.active)
        .correlate(CrmLicence)
        .scalar_subquery()
        .label("seats_used"),
    )
    .outerjoin(CrmLicence, CrmLicence.id == CrmUser.licence_id)
    .where(CrmUser.username == bindparam("username"))
)
_FAILED_ATTEMPTS = (
    select(CrmLoginAttempt)
    .where(CrmLoginAttempt.user_id == bindparam("user_id"), CrmLoginAttempt.success.is_(False))
    .order_by(CrmLoginAttempt.at.desc())
    .limit(10)
)
_LAST_FLAGGED = (
    select(CrmFlaggedAction)
    .where(CrmFlaggedAction.user_id == bindparam("user_id"))
    .order_by(CrmFlaggedAction.at.desc())
    .limit(1)
)


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _place(location: str | None, given: Any) -> Place | None:
    """The lock's place: the one ``lock_detail`` spells out, else what its location text says."""
    if not isinstance(given, dict):
        return Place.read(location)
    names = given.get("city_names")
    return Place(
        country=given.get("country"),
        city=given.get("city"),
        city_names={str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {},
    )


def _licence_facts(licence: CrmLicence, seats_used: int) -> LicenceInfo:
    return LicenceInfo(
        name=licence.name,
        expires_at=licence.expires_at,
        seats_total=licence.seats_total,
        seats_used=seats_used,
        trial=licence.trial,
        usage_cap=licence.usage_cap,
        usage_used=licence.usage_used,
    )


def _reason(code: str | None) -> LockReason:
    return LockReason(code) if code in set(LockReason) else LockReason.UNKNOWN


def _flagged(row: CrmFlaggedAction, facts: Any) -> FlaggedAction:
    facts = facts if isinstance(facts, dict) else {}
    records = facts.get("records")
    return FlaggedAction(
        row.at,
        row.action,
        row.detail,
        kind=ActionKind.read(facts.get("kind") or row.action),
        records=int(records) if records is not None else None,
        record_type=RecordType.read(facts.get("record_type")),
    )


class SqlCrm:
    """The embedded CRM backend."""

    name = "sql"

    def __init__(self, database: Database, clock: Clock, *, timeout: float = 5.0) -> None:
        self._db = database
        self._clock = clock
        self._timeout = timeout

    @property
    def database(self) -> Database:
        return self._db

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(Capability)

    async def create_schema(self) -> None:
        async with self._db.engine.begin() as connection:
            await connection.run_sync(CrmBase.metadata.create_all)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        try:
            async with asyncio.timeout(self._timeout), self._db.session() as session, session.begin():
                yield session
        except TimeoutError as exc:
            raise CrmUnavailable("the embedded CRM did not answer in time") from exc
        except (OperationalError, InterfaceError) as exc:
            raise CrmUnavailable(f"the embedded CRM database failed: {exc.orig}") from exc
        except IntegrityError:
            raise  # the callers treat a duplicate idempotency key as "already done"
        except DBAPIError as exc:
            raise CrmError(f"the embedded CRM refused the query: {exc.orig}") from exc

    async def _user(self, session: AsyncSession, username: str) -> CrmUser:
        user = await session.scalar(select(CrmUser).where(CrmUser.username == username))
        if user is None:
            raise AccountNotFound(username)
        return user

    async def find_account(self, query: str) -> Account | None:
        async with self._session() as session:
            user = await session.scalar(
                select(CrmUser).where(
                    (func.lower(CrmUser.username) == query.lower()) | (func.lower(CrmUser.email) == query.lower())
                )
            )
            if user is None:
                return None
            return Account(user.username, user.email, user.display_name, user.active)

    async def lock_status(self, username: str) -> LockStatus:
        async with self._session() as session:
            user, licence = await self._user_and_licence(session, username)
            if not user.locked:
                return LockStatus(username=username, locked=False)
            reason = _reason(user.lock_reason)
            return LockStatus(
                username=username,
                locked=True,
                reason=reason,
                locked_at=user.locked_at,
                evidence=await self._evidence(session, user, reason, licence),
            )

    async def _evidence(
        self, session: AsyncSession, user: CrmUser, reason: LockReason, licence: LicenceInfo | None
    ) -> Evidence:
        detail = dict(user.lock_detail or {})
        since = user.locked_at or self._clock.now()
        attempts = (await session.scalars(_FAILED_ATTEMPTS, {"user_id": user.id})).all()
        flagged = await session.scalar(_LAST_FLAGGED, {"user_id": user.id})
        maintenance = incident = None
        if reason is LockReason.MAINTENANCE:
            maintenance = next(iter(await self._windows(session, since)), None)
        if reason is LockReason.SYSTEM_FAULT:
            incident = next(iter(await self._open_incidents(session)), None)
        lifts_at = detail.get("lifts_at")
        return Evidence(
            failed_attempts=tuple(
                LoginAttempt(a.at, a.ip, a.success, a.location) for a in sorted(attempts, key=lambda a: a.at)
            ),
            flagged_action=_flagged(flagged, detail.get("flagged")) if flagged else None,
            licence=licence,
            ip=detail.get("ip"),
            location=detail.get("location"),
            place=_place(detail.get("location"), detail.get("place")),
            operations=detail.get("operations"),
            window_minutes=detail.get("window_minutes"),
            lifts_at=datetime.fromisoformat(lifts_at) if lifts_at else None,
            maintenance=maintenance,
            incident=incident,
            detail=str(detail.get("detail", "")),
        )

    @staticmethod
    async def _user_and_licence(session: AsyncSession, username: str) -> tuple[CrmUser, LicenceInfo | None]:
        found = (await session.execute(_USER_AND_LICENCE, {"username": username})).first()
        if found is None:
            raise AccountNotFound(username)
        licence = found.CrmLicence
        return found.CrmUser, _licence_facts(licence, found.seats_used) if licence is not None else None

    @staticmethod
    async def _describe_licence(session: AsyncSession, licence: CrmLicence) -> LicenceInfo:
        used = await session.scalar(
            select(func.count()).select_from(CrmUser).where(CrmUser.licence_id == licence.id, CrmUser.active)
        )
        return _licence_facts(licence, used or 0)

    async def _windows(self, session: AsyncSession, since: datetime) -> list[MaintenanceWindow]:
        rows = await session.scalars(
            select(CrmMaintenance).where(CrmMaintenance.ends_at >= since).order_by(CrmMaintenance.starts_at)
        )
        return [MaintenanceWindow(w.starts_at, w.ends_at, w.note) for w in rows]

    async def _open_incidents(self, session: AsyncSession) -> list[Incident]:
        rows = await session.scalars(
            select(CrmIncident).where(CrmIncident.resolved_at.is_(None)).order_by(CrmIncident.started_at)
        )
        return [Incident(str(i.id), i.title, i.started_at, i.status, i.resolved_at) for i in rows]

    async def _record_once(self, session: AsyncSession, key: str, action: str, username: str) -> bool:
        """Record an admin action under its idempotency key; False when it was done before."""
        if await session.scalar(select(CrmAdminAction.id).where(CrmAdminAction.idempotency_key == key)):
            return False
        session.add(CrmAdminAction(idempotency_key=key, action=action, username=username, at=self._clock.now()))
        # A concurrent call with the same key makes this flush fail: see the callers.
        await session.flush()
        return True

    async def unlock(self, username: str, *, idempotency_key: str) -> None:
        try:
            async with self._session() as session:
                user = await self._user(session, username)
                if await self._record_once(session, idempotency_key, "unlock", username):
                    user.locked = False
                    user.lock_reason = None
                    user.locked_at = None
                    user.lock_detail = {}
        except IntegrityError:
            return  # a concurrent call with the same key did it

    async def reset_password(self, username: str, *, idempotency_key: str) -> PasswordReset:
        try:
            async with self._session() as session:
                user = await self._user(session, username)
                if await self._record_once(session, idempotency_key, "reset_password", username):
                    user.must_change_password = True
        except IntegrityError:
            pass  # a concurrent call with the same key did it
        account = await self.find_account(username)
        return PasswordReset(sent_to=mask_email(account.email) if account else None)

    async def add_trusted_ip(self, username: str, ip: str, *, note: str) -> None:
        async with self._session() as session:
            user = await self._user(session, username)
            exists = await session.scalar(
                select(CrmTrustedIp.id).where(CrmTrustedIp.user_id == user.id, CrmTrustedIp.ip == ip)
            )
            if exists is None:
                session.add(CrmTrustedIp(user_id=user.id, ip=ip, note=note))

    async def trusted_ips(self, username: str) -> list[str]:
        async with self._session() as session:
            user = await self._user(session, username)
            return list(await session.scalars(select(CrmTrustedIp.ip).where(CrmTrustedIp.user_id == user.id)))

    async def licence(self, username: str) -> LicenceInfo | None:
        async with self._session() as session:
            _, licence = await self._user_and_licence(session, username)
            return licence

    async def all_licences(self) -> list[LicenceInfo]:
        async with self._session() as session:
            licences = list(await session.scalars(select(CrmLicence).order_by(CrmLicence.name)))
            return [await self._describe_licence(session, licence) for licence in licences]

    async def inactive_users(self, licence: str, *, limit: int) -> list[SeatHolder]:
        last = (
            select(CrmLoginAttempt.user_id, func.max(CrmLoginAttempt.at).label("at"))
            .where(CrmLoginAttempt.success)
            .group_by(CrmLoginAttempt.user_id)
            .subquery()
        )
        query = (
            select(CrmUser.username, CrmUser.display_name, last.c.at)
            .join(CrmLicence, CrmLicence.id == CrmUser.licence_id)
            .outerjoin(last, last.c.user_id == CrmUser.id)
            .where(CrmLicence.name == licence, CrmUser.active)
            .order_by(last.c.at.asc().nulls_first(), CrmUser.username)
            .limit(limit)
        )
        async with self._session() as session:
            rows = (await session.execute(query)).all()
            return [SeatHolder(username, name, at) for username, name, at in rows]

    async def system_status(self) -> SystemStatus:
        async with self._session() as session:
            state = await session.scalar(select(CrmSystemState))
            return SystemStatus(
                maintenance=tuple(await self._windows(session, self._clock.now())),
                incidents=tuple(await self._open_incidents(session)),
                last_backup_at=state.last_backup_at if state else None,
                writes_paused=state.writes_paused if state else None,
                inbound_channels=dict(state.inbound_channels) if state else None,
            )

    async def locks_since(self, since: datetime) -> int:
        async with self._session() as session:
            count = await session.scalar(
                select(func.count()).select_from(CrmUser).where(CrmUser.locked, CrmUser.locked_at >= since)
            )
            return int(count or 0)

    async def lock_events(self, since: datetime) -> list[LockEvent]:
        async with self._session() as session:
            rows = await session.execute(
                select(CrmLockEvent.id, CrmUser.username, CrmLockEvent.reason, CrmLockEvent.at)
                .join(CrmUser, CrmUser.id == CrmLockEvent.user_id)
                .where(CrmLockEvent.at >= since)
                .order_by(CrmLockEvent.at, CrmLockEvent.id)
            )
            return [LockEvent(str(row.id), row.username, _reason(row.reason), row.at) for row in rows]

    async def lock(self, username: str, reason: LockReason, *, detail: dict[str, Any] | None = None) -> LockEvent:
        """Lock ``username`` now for ``reason``, as the embedded CRM's own security rules would; the lock event.

        Not part of ``CrmBackend``: the bot never locks anyone. The demo (``unlockbot demo lock``) and tests do.
        """
        now = self._clock.now()
        async with self._session() as session:
            user = await self._user(session, username)
            user.locked, user.lock_reason, user.locked_at = True, reason.value, now
            user.lock_detail = dict(detail or {})
            event = CrmLockEvent(user_id=user.id, reason=reason.value, at=now)
            session.add(event)
            await session.flush()
            return LockEvent(str(event.id), username, reason, now)

    async def probe(self) -> Reachability:
        started = time.perf_counter()
        try:
            async with self._session() as session:
                await session.scalar(select(func.count()).select_from(CrmSystemState))
        except CrmError as exc:  # down, or answering with errors: either way not usable
            return Reachability(False, None, str(exc))
        return Reachability(True, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await self._db.dispose()
